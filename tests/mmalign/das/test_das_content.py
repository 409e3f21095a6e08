import math

import numpy as np
import pytest

from mmalign.das.content import item_content, resolve_encoder, tfidf_matrix, tfidf_svd, user_content


def test_tfidf_by_hand():
    m = tfidf_matrix(["red apple", "red red pear"]).toarray()
    # vocab sorted: apple, pear, red; idf = log((1+n)/(1+df)) + 1
    idf = {"apple": math.log(3 / 2) + 1, "pear": math.log(3 / 2) + 1, "red": math.log(3 / 3) + 1}
    r0 = np.array([idf["apple"], 0, idf["red"]])
    r1 = np.array([0, idf["pear"], 2 * idf["red"]])
    assert np.allclose(m[0], r0 / np.linalg.norm(r0))
    assert np.allclose(m[1], r1 / np.linalg.norm(r1))


def test_tfidf_svd_matches_dense_svd():
    rng = np.random.default_rng(0)
    words = [f"w{k}" for k in range(30)]
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(40)]
    z = tfidf_svd(texts, dim=5)
    s = np.linalg.svd(tfidf_matrix(texts).toarray(), compute_uv=False)
    assert z.shape == (40, 5)
    assert np.allclose(np.linalg.norm(z, axis=0), s[:5], rtol=1e-4)  # columns are u_k * s_k


def test_item_content_cache_roundtrip(tmp_path):
    texts = ["a b c", "b c d", "c d e", "d e f", "e f a"]
    x = item_content(texts, encoder="tfidf", dim=3, cache=tmp_path)
    assert len(list(tmp_path.glob("content-tfidf-*.npy"))) == 1
    assert np.array_equal(item_content(texts, encoder="tfidf", dim=3, cache=tmp_path), x)
    item_content(texts, encoder="tfidf", dim=3, seed=1, cache=tmp_path)  # the SVD seed and the width are keyed
    item_content(texts, encoder="tfidf", dim=2, cache=tmp_path)
    assert len(list(tmp_path.glob("content-tfidf-*.npy"))) == 3


def test_user_content_is_mean_of_training_items():
    items = np.arange(12, dtype=np.float32).reshape(4, 3)
    u = user_content([[0, 2], [3]], items)
    assert np.allclose(u, [items[[0, 2]].mean(0), items[3]])
    with pytest.raises(ValueError, match="user 0 has no training items"):
        user_content([[]], items)


def test_beauty_never_uses_the_lm():
    assert resolve_encoder("auto", "beauty") == "tfidf"
    with pytest.raises(ValueError):
        resolve_encoder("bert", "beauty")


@pytest.mark.slow  # importing transformers takes ~20 s on the shared CPU
def test_lm_embeddings_mask_padding(tmp_path):
    """A tiny random Llama (no weights needed): an item's pooled embedding must not depend on the padding its
    batch adds, and must equal the mean of its own last hidden states."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from mmalign.das.content import lm_embeddings

    vocab = {"[PAD]": 0, "[UNK]": 1, "red": 2, "apple": 3, "pear": 4, "sweet": 5}
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]")
    tok.padding_side = "right"
    tok.save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=6, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, pad_token_id=0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    model.save_pretrained(tmp_path)
    batch = lm_embeddings(["red sweet apple pear", "pear"], model=str(tmp_path), progress=False)
    alone = lm_embeddings(["pear"], model=str(tmp_path), progress=False)
    assert batch.shape == (2, 16)
    assert np.allclose(batch[1], alone[0], atol=1e-5)
    with torch.no_grad():
        hid = model(torch.tensor([[2, 5, 3, 4]]), output_hidden_states=True).hidden_states[-1][0]
    assert np.allclose(batch[0], hid.mean(0).numpy(), atol=1e-5)
