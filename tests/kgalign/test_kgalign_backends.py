from __future__ import annotations

import re

import pytest
import torch

from kgalign.backends import CachedBackend, LLMRequestError, LocalLM, OpenAIChat, ResponseCache
from kgalign.inference import Candidates
from kgalign.prompt import EntityView
from kgalign.voting import VotingConfig, rerank


def echo_number(prompt: str) -> str:
    """Answer with the number found after 'Q' in the prompt."""
    return re.search(r"Q(\d+)", prompt).group(1)


def test_http_backend_answers_in_order_with_bounded_concurrency(scripted_server):
    srv = scripted_server(echo_number)
    client = OpenAIChat(srv.url, "m1", concurrency=3, timeout=5, max_retries=0)
    prompts = [f"Q{i}" for i in range(12)]
    out = client.complete(prompts)
    assert [c.text for c in out] == [str(i) for i in range(12)]
    assert client.stats.calls == 12 and client.stats.completion_tokens == 12
    assert {r["path"] for r in srv.requests} == {"/v1/chat/completions"}
    assert all(r["body"]["model"] == "m1" and r["body"]["temperature"] == 0.0 for r in srv.requests)


def test_http_retries_500s_and_timeouts_nothing_lost_cache_filled(scripted_server, tmp_path):
    srv = scripted_server(echo_number)
    srv.fail_first = {"Q3": 2, "Q7": 1}  # two and one injected HTTP 500s
    srv.slow = {"Q5": 1.5}  # first reply of Q5 arrives after the client's timeout
    client = OpenAIChat(srv.url, "m1", concurrency=4, timeout=0.5, max_retries=3, backoff=0.01)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = CachedBackend(client, cache)
    prompts = [f"Q{i}" for i in range(10)]
    out = backend.complete(prompts)
    assert [c.text for c in out] == [str(i) for i in range(10)]  # nothing lost
    assert client.stats.retries == 4 and client.stats.failures == 0
    assert client.stats.calls == 14
    assert len(cache) == 10
    # a second run is answered from the cache: no request reaches the server
    n_req = len(srv.requests)
    again = CachedBackend(OpenAIChat(srv.url, "m1"), ResponseCache(tmp_path / "cache.sqlite"))
    out2 = again.complete(prompts)
    assert [c.text for c in out2] == [str(i) for i in range(10)] and all(c.cached for c in out2)
    assert len(srv.requests) == n_req and again.stats.cache_hits == 10 and again.stats.calls == 0
    # another model name is another cache key
    other = CachedBackend(OpenAIChat(srv.url, "m2"), ResponseCache(tmp_path / "cache.sqlite"))
    other.complete(prompts[:2])
    assert other.stats.calls == 2


def test_http_gives_up_and_failed_answers_are_not_cached(scripted_server, tmp_path):
    srv = scripted_server(echo_number)
    srv.fail_first = {"Q1": 10}
    client = OpenAIChat(srv.url, "m", max_retries=2, backoff=0.01, timeout=5)
    backend = CachedBackend(client, ResponseCache(tmp_path / "c.sqlite"))
    out = backend.complete(["Q0", "Q1"])
    assert out[0].text == "0" and out[1].text == "" and out[1].failed
    assert client.stats.failures == 1 and client.stats.retries == 2
    assert len(backend.cache) == 1  # the failure will be retried by a later run
    strict = OpenAIChat(srv.url, "m", max_retries=1, backoff=0.01, raise_on_failure=True)
    with pytest.raises(LLMRequestError, match="giving up after 2 attempts"):
        strict.complete(["Q1"])


def test_http_client_error_is_not_retried_connection_error_is(scripted_server):
    srv = scripted_server(echo_number)
    bad_path = OpenAIChat(srv.url + "/wrong", "m", max_retries=3, backoff=0.01)
    bad_path.url = srv.url + "/wrong"  # the server answers 404 here
    with pytest.raises(LLMRequestError, match="HTTP 404"):
        bad_path.complete(["Q1"])
    assert bad_path.stats.retries == 0 and bad_path.stats.calls == 1
    client = OpenAIChat(srv.url, "m", max_retries=3, backoff=0.01)
    srv.close()  # connection refused: retried, then given up
    out = client.complete(["Q1"])
    assert out[0].failed and client.stats.retries == 3 and client.stats.failures == 1


def test_rerank_over_http_end_to_end(scripted_server, tmp_path):
    # the server picks the candidate whose name ends with '*'
    def pick_star(prompt):
        for num, name in re.findall(r"^(\d+)\. (\S+)", prompt, flags=re.M):
            if name.endswith("*"):
                return f"Answer: {num}"
        return "none"
    srv = scripted_server(pick_star)
    cands = Candidates(torch.arange(3), torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]]), torch.rand(3, 3))
    star = {2, 3, 7}

    def describe(s, cs):
        return EntityView(f"s{s}", []), [EntityView(f"e{c}" + ("*" if c in star else ""), []) for c in cs]
    backend = CachedBackend(OpenAIChat(srv.url, "m", concurrency=2), ResponseCache(tmp_path / "c.sqlite"))
    res = rerank(cands, describe, backend, VotingConfig(rounds=3), progress=False)
    assert res.candidates.target[:, 0].tolist() == [2, 3, 7]
    assert res.llm_calls == 6  # early stop after two agreeing rounds
    res2 = rerank(cands, describe, backend, VotingConfig(rounds=3), progress=False)
    assert res2.candidates.target[:, 0].tolist() == [2, 3, 7] and backend.stats.cache_hits == 6


def test_local_lm_with_tiny_random_model_counts_calls():
    transformers = pytest.importorskip("transformers")

    class Tok:
        """A character tokenizer with the transformers call conventions that LocalLM uses."""

        pad_token = "<pad>"
        eos_token = "<pad>"
        pad_token_id = 0
        chat_template = None
        padding_side = "left"

        def __call__(self, texts, return_tensors, padding, add_special_tokens):
            ids = [[3 + (ord(c) % 60) for c in t] for t in texts]
            n = max(map(len, ids))
            inp = torch.tensor([[0] * (n - len(x)) + x for x in ids])
            mask = torch.tensor([[0] * (n - len(x)) + [1] * len(x) for x in ids])
            return transformers.BatchEncoding({"input_ids": inp, "attention_mask": mask})

        def batch_decode(self, rows, skip_special_tokens):
            return ["".join(chr(48 + int(t) % 10) for t in r if int(t) != 0) for r in rows]

    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    lm = LocalLM("tiny", max_new_tokens=3, batch_size=2, lm=(model, Tok()))
    out = lm.complete(["abc", "hello", "x"])
    assert len(out) == 3 and lm.stats.calls == 3
    assert lm.stats.prompt_tokens == 3 + 5 + 1
    assert all(len(c.text) <= 3 for c in out)


@pytest.mark.slow
def test_real_smollm2_reranks_a_few_zh_en_entities(tmp_path):
    pytest.importorskip("transformers")
    from kgalign.data import load_dbp15k
    from kgalign.llm_align import Describer
    from kgalign.names import CharNgramTfidf, sparse_similarity

    data = load_dbp15k("zh_en")
    enc = CharNgramTfidf().fit(data.kg1.names + data.kg2.names)
    src = data.test_links[:3, 0]
    sim = sparse_similarity(enc.transform(data.kg1.names), enc.transform(data.kg2.names), src.numpy())
    val, idx = sim.topk(5, dim=1)
    cands = Candidates(src, idx, val)
    lm = LocalLM("smollm2", max_new_tokens=6, batch_size=3)
    backend = CachedBackend(lm, ResponseCache(tmp_path / "c.sqlite"))
    res = rerank(cands, Describer(data), backend, VotingConfig(rounds=2), progress=False)
    assert lm.stats.calls == res.llm_calls == 6 and lm.stats.completion_tokens > 0
    assert all(len(v.answers) == 2 for v in res.votes)
    # whatever the model says, the reranked lists are permutations of the base lists
    assert torch.equal(res.candidates.target.sort(1).values, cands.target.sort(1).values)
    assert len(backend.cache) == 6
