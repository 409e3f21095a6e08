"""Frozen encoders: masked pooling of a (tiny random) LM, matrix factorisation, spectral structure; frozen
encoders receive no gradient when a connector is trained through them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from aligncore.training import TrainConfig, fit
from mmalign.altmoe.encoders import LMTextEncoder, freeze, mf_item_embeddings, spectral_structure_embeddings
from mmalign.altmoe.schedule import AlternatingSchedule, all_directions


class CharTokenizer:
    """A tiny tokenizer (one id per character) with the slice of the HF interface the encoder uses."""

    pad_token, eos_token = "<pad>", "<pad>"
    pad_token_id = 0
    padding_side = "right"

    def __call__(self, texts, return_tensors="pt", padding=True, truncation=True, max_length=64):
        ids = [[1 + (ord(c) % 60) for c in t][:max_length] for t in texts]
        n = max(len(i) for i in ids)
        return _Batch({"input_ids": torch.tensor([i + [0] * (n - len(i)) for i in ids]),
                       "attention_mask": torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids])})


class _Batch(dict):
    def to(self, device):
        return _Batch({k: v.to(device) for k, v in self.items()})


def tiny_lm(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


def test_lm_encoder_pools_only_real_tokens():
    lm = tiny_lm()
    enc = LMTextEncoder(lm, CharTokenizer(), n_layers=2)
    texts = ["hello world", "hi", "a much longer sentence here"]
    batched = enc(texts)
    assert batched.shape == (3, 32) and batched.dtype == torch.float32
    for i, t in enumerate(texts):  # reference: each text alone (no padding), mean of last two layers' states
        ids = torch.tensor([[1 + (ord(c) % 60) for c in t]])
        hs = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
        ref = torch.stack(hs[-2:]).mean(0)[0].mean(0)
        torch.testing.assert_close(batched[i], ref, atol=1e-4, rtol=1e-4)
    assert all(not p.requires_grad for p in enc.parameters())


def test_lm_encoder_max_layers_truncates_depth():
    lm = tiny_lm(1)
    abc = torch.tensor([[1 + (ord(c) % 60) for c in "abc"]])
    full = [h.detach() for h in lm.model(input_ids=abc, output_hidden_states=True)
            .hidden_states]
    enc = LMTextEncoder(lm, CharTokenizer(), n_layers=1, max_layers=2)
    assert len(enc.lm.model.layers) == 2
    out = enc(["abc"])
    # with 2 layers the last state is the normed output of layer 2: compare with norm(raw layer-2 state)
    raw2 = full[2]
    torch.testing.assert_close(out[0], lm.model.norm(raw2)[0].mean(0).detach(), atol=1e-4, rtol=1e-4)


class EndToEnd(nn.Module):
    """A frozen encoder inside the trained module: only the head may learn."""

    def __init__(self):
        super().__init__()
        self.encoder = LMTextEncoder(tiny_lm(2), CharTokenizer())
        self.head = nn.Linear(32, 4)
        self.schedule = AlternatingSchedule(all_directions(2))

    def forward(self, idx):
        texts = [["red apple", "blue sky", "green tea", "dark night"][int(i) % 4] for i in idx]
        z = self.head(self.encoder(texts))
        return nn.functional.cross_entropy(z, idx % 4)


def test_frozen_encoder_receives_no_gradient_through_fit(tmp_path):
    model = EndToEnd()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head.weight.detach().clone()
    data = torch.utils.data.TensorDataset(torch.arange(16))
    fit(model, data, loss_fn=lambda m, b: m(b[0]),
        config=TrainConfig(out_dir=str(tmp_path), max_epochs=2, batch_size=4, lr=1e-2, progress=False))
    for p in model.encoder.parameters():
        assert p.grad is None and not p.requires_grad
    for k, v in model.encoder.state_dict().items():  # fit() may have moved the model to CUDA
        assert torch.equal(v.cpu(), before[k]), k
    assert not torch.equal(model.head.weight.detach().cpu(), head_before)
    assert not model.encoder.training  # stays in eval mode although fit() calls model.train()


def test_freeze_helper():
    m = freeze(nn.Linear(2, 2).train())
    assert not m.training and all(not p.requires_grad for p in m.parameters())


def test_mf_embeddings_reproduce_the_centred_rating_svd():
    rng = np.random.default_rng(0)
    n_u, n_i, k = 30, 20, 4
    dense = rng.integers(1, 6, size=(n_u, n_i)).astype(float)
    mask = rng.random((n_u, n_i)) < 0.6
    users, items = np.nonzero(mask)
    r = dense[users, items]
    emb = mf_item_embeddings(users, items, r, n_u, n_i, k).double().numpy()
    # independent: dense user-centred matrix (means over observed ratings, zeros elsewhere), full numpy SVD
    cen = np.zeros((n_u, n_i))
    for u in range(n_u):
        obs = mask[u]
        if obs.any():
            cen[u, obs] = dense[u, obs] - dense[u, obs].mean()
    _, s, vt = np.linalg.svd(cen)
    ref = vt[:k].T * np.sqrt(s[:k])
    np.testing.assert_allclose(emb @ emb.T, ref @ ref.T, atol=1e-5)  # sign-free comparison
    with pytest.raises(ValueError, match="dim"):
        mf_item_embeddings(users, items, r, n_u, n_i, 20)


def test_spectral_structure_matches_dense_svd_up_to_sign():
    rng = np.random.default_rng(3)
    n = 40
    ring = [(i, (i + 1) % n) for i in range(n)]  # connected: singular value 1 is simple
    edges = np.array(ring + [(i, j) for i in range(n) for j in range(i + 2, n) if rng.random() < 0.12])
    emb = spectral_structure_embeddings(edges, n, dim=3).double().numpy()
    a = np.zeros((n, n))
    a[edges[:, 0], edges[:, 1]] = a[edges[:, 1], edges[:, 0]] = 1
    a += np.eye(n)
    d = a.sum(1)
    norm = a / np.sqrt(d[:, None] * d[None, :])
    u, s, _ = np.linalg.svd(norm)
    assert min(s[0] - s[1], s[1] - s[2], s[2] - s[3]) > 1e-3  # distinct singular values: components are defined up to sign
    for j in range(3):
        c = np.corrcoef(emb[:, j], u[:, j])[0, 1]
        assert abs(c) == pytest.approx(1.0, abs=1e-6)
    rel = rng.integers(0, 5, len(edges))
    both = spectral_structure_embeddings(edges, n, dim=3, relations=rel, rel_dim=2)
    assert both.shape == (n, 5)
    np.testing.assert_allclose(both.numpy().mean(0), 0, atol=1e-5)
    with pytest.raises(ValueError, match="endpoints"):
        spectral_structure_embeddings(np.array([[0, n]]), n, dim=2)


def test_top_svd_randomized_path_agrees_with_dense_svd():
    import scipy.sparse as sp

    from mmalign.altmoe.encoders import top_svd

    rng = np.random.default_rng(0)
    low = rng.standard_normal((300, 6)) @ np.diag([10, 8, 6, 4, 3, 2]) @ rng.standard_normal((6, 200)) / 10
    mat = sp.csr_matrix(low + 0.01 * rng.standard_normal((300, 200)))
    u, s, vt = top_svd(mat, 4, dense_below=10)  # forces the randomized path
    u_ref, s_ref, vt_ref = np.linalg.svd(mat.toarray(), full_matrices=False)
    np.testing.assert_allclose(s, s_ref[:4], rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(u * u_ref[:, :4], axis=0)), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="k must"):
        top_svd(mat, 200)


def test_transe_embeddings_fit_the_triples_and_are_seeded():
    from mmalign.altmoe.encoders import _transe, transe_embeddings

    # two relations on 40 entities: r0 = i -> i+1, r1 = i -> i+5 (chains, no wrap-around)
    n = 40
    trip = np.array([(i, 0, i + 1) for i in range(n - 1)] + [(i, 1, i + 5) for i in range(n - 5)])
    ent, rel = _transe(trip, n, 32, epochs=200, lr=1e-2, batch_size=64, margin=1.0, seed=0, progress=False)
    # tail prediction on the training triples: the true tail ranks near the top among all 40 entities (the
    # margin loss stops pushing once a corruption is a margin away, so rank 1 is not required)
    h, r, t = (torch.as_tensor(trip[:, k]) for k in range(3))
    dist = (ent[h][:, None, :] + rel[r][:, None, :] - ent[None, :, :]).norm(dim=-1)  # (T, n)
    rank = (dist < dist.gather(1, t[:, None])).sum(1) + 1
    assert (1.0 / rank.float()).mean() > 0.25 and rank.float().median() <= 5  # random: about 0.11 and 20
    e = transe_embeddings(trip, n, dim=32, epochs=20, seed=0)
    assert e.shape == (n, 32) and e.dtype == torch.float32
    torch.testing.assert_close(e.mean(0), torch.zeros(32), atol=1e-5, rtol=0)
    assert torch.equal(e, transe_embeddings(trip, n, dim=32, epochs=20, seed=0))
    assert not torch.equal(e, transe_embeddings(trip, n, dim=32, epochs=20, seed=1))
    with pytest.raises(ValueError, match="shape"):
        transe_embeddings(trip[:, :2], n)
    with pytest.raises(ValueError, match="entities"):
        transe_embeddings(trip, 10)
