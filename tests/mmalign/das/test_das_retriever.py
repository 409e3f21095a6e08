import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.das.retriever import (
    GenerativeRetriever,
    PrefixTrie,
    constrained_beam_search,
    evaluate_retrieval,
    pad_histories,
    ranks_from_beams,
)


def test_prefix_trie_by_hand():
    t = PrefixTrie(np.array([[0, 1], [0, 2], [1, 0]]))
    assert t.level_sizes == [2, 3]
    assert t.allowed[0].tolist() == [[True, True]]
    # prefixes of length 1: (0) -> 0, (1) -> 1
    assert t.allowed[1].tolist() == [[False, True, True], [True, False, False]]
    assert t.child[1].tolist() == [[-1, 0, 1], [2, -1, -1]]
    with pytest.raises(ValueError, match="duplicate"):
        PrefixTrie(np.array([[0, 1], [0, 1]]))


def _unique_codes(draw_rows):
    return np.unique(np.array(draw_rows), axis=0)


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=25),
       st.integers(1, 12), st.integers(0, 1000))
def test_beam_search_emits_only_valid_ids_and_is_exact_with_a_wide_beam(rows, beam, seed):
    codes = torch.as_tensor(_unique_codes(rows))
    n = codes.shape[0]
    trie = PrefixTrie(codes)
    torch.manual_seed(seed)
    model = GenerativeRetriever(trie.level_sizes, max_history=3, d_model=16, n_heads=2, n_layers=1, dim_ff=16).eval()
    hist = torch.tensor([[-1, 0, n - 1], [0, 0, 0]])
    items, scores = constrained_beam_search(model, hist, codes, trie, beam=beam)
    assert items.shape == (2, beam)
    for r in range(2):
        got = items[r][items[r] >= 0].tolist()
        assert len(got) == min(beam, n) and len(set(got)) == len(got)  # valid, distinct items
        s = scores[r][: len(got)]
        assert bool((s[:-1] >= s[1:] - 1e-6).all())
    # independent brute force: exact log-probability of every valid ID by teacher forcing
    mem, pad = model.encode(hist, codes)
    exact = torch.zeros(2, n)
    with torch.no_grad():
        for lvl in range(codes.shape[1]):
            pre = codes[:, :lvl]
            for r in range(2):
                logits = model.decode(mem[r:r + 1].expand(n, -1, -1), pad[r:r + 1].expand(n, -1), pre)
                exact[r] += torch.log_softmax(logits, -1).gather(1, codes[:, lvl:lvl + 1]).squeeze(1)
    for r in range(2):
        got = items[r][items[r] >= 0]
        assert torch.allclose(scores[r][: len(got)], exact[r][got], atol=1e-4)
    if beam >= n * 4:  # wider than every level's number of prefixes: the search is exhaustive, hence exact
        order = torch.sort(exact, dim=1, descending=True, stable=True).indices
        assert torch.allclose(exact.gather(1, order[:, :n]), scores[:, :n], atol=1e-4)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(0, 2), st.integers(0, 1000))
def test_decode_beams_equals_decode_on_copied_memory(b, nb, lvl, seed):
    torch.manual_seed(seed)
    sizes = [4, 3, 5]
    model = GenerativeRetriever(sizes, max_history=4, d_model=16, n_heads=2, n_layers=2, dim_ff=32).eval()
    codes = torch.stack([torch.randint(0, k, (9,)) for k in sizes], 1)
    hist = torch.randint(-1, 9, (b, 4))
    hist[:, -1] = torch.randint(0, 9, (b,))  # at least one real item per history
    prefix = torch.stack([torch.randint(0, k, (b, nb)) for k in sizes[:lvl]], 2) if lvl else \
        torch.zeros(b, nb, 0, dtype=torch.long)
    with torch.no_grad():
        mem, pad = model.encode(hist, codes)
        fast = model.decode_beams(mem, pad, prefix)
        ref = model.decode(mem.repeat_interleave(nb, 0), pad.repeat_interleave(nb, 0), prefix.reshape(b * nb, lvl))
    assert fast.shape == (b, nb, sizes[lvl])
    assert torch.allclose(fast.reshape(b * nb, -1), ref, atol=1e-5)


def test_ranks_and_metrics_by_hand():
    items = torch.tensor([[3, 1, 2, 0, 4, 5, 6, 7, 8, 9, 10], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10]])
    r = ranks_from_beams(items, torch.tensor([2, 11]))
    assert r[0] == 3 and math.isinf(float(r[1]))


def test_evaluate_retrieval_on_a_trivial_catalogue():
    codes = torch.tensor([[0, 0], [0, 1], [1, 0]])
    trie = PrefixTrie(codes)
    model = GenerativeRetriever(trie.level_sizes, max_history=2, d_model=8, n_heads=2, n_layers=1, dim_ff=8)
    res = evaluate_retrieval(model, pad_histories([[0], [1, 2]], 2), torch.tensor([1, 2]), codes, trie, beam=10)
    # three items, beam 10: every target is within the top 3, so Recall@5 = Recall@10 = 1
    assert res.values["recall@5"] == 1.0 and res.values["recall@10"] == 1.0
    assert 1 / math.log2(4) <= res.values["ndcg@10"] <= 1.0
    assert res.n_users == 2
    # per-user ranks agree with the aggregates: both targets within the 3 items
    assert res.ranks.shape == (2,) and bool((res.ranks >= 1).all()) and bool((res.ranks <= 3).all())
    assert res.values["ndcg@10"] == pytest.approx(float((1 / torch.log2(res.ranks + 1)).mean()))


def test_teacher_forced_loss_falls_when_fitting_one_example():
    codes = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    model = GenerativeRetriever([2, 2], max_history=2, d_model=16, n_heads=2, n_layers=1, dim_ff=16, dropout=0.0)
    hist, tgt = pad_histories([[0, 1]], 2), torch.tensor([3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model(hist, codes[tgt], codes))
    for _ in range(30):
        opt.zero_grad()
        model(hist, codes[tgt], codes).backward()
        opt.step()
    assert float(model(hist, codes[tgt], codes)) < 0.2 * first
    items, _ = constrained_beam_search(model.eval(), hist, codes, PrefixTrie(codes), beam=2)
    assert int(items[0, 0]) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_beam_search_on_cuda_matches_cpu():
    torch.manual_seed(0)
    codes = torch.as_tensor(np.unique(np.random.default_rng(0).integers(0, 8, (300, 3)), axis=0))
    trie = PrefixTrie(codes)
    model = GenerativeRetriever(trie.level_sizes, max_history=5, d_model=32, n_heads=4, n_layers=2, dim_ff=64).eval()
    hist = torch.randint(-1, codes.shape[0], (64, 5))
    hist[:, -1] = torch.randint(0, codes.shape[0], (64,))
    items, scores = constrained_beam_search(model, hist, codes, trie, beam=12)
    items_g, scores_g = constrained_beam_search(model.cuda(), hist.cuda(), codes.cuda(), trie.to("cuda"), beam=12)
    assert torch.allclose(scores_g.cpu(), scores, atol=1e-4)
    assert (items_g.cpu() == items).float().mean() > 0.99  # near-ties may swap under different kernels
