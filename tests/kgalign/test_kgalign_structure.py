from __future__ import annotations

import networkx as nx
import numpy as np
import torch

from aligncore.training import TrainConfig
from kgalign.data import load_openea
from kgalign.structure import (
    GCNAlignEncoder,
    LinearAligner,
    StructureConfig,
    alignment_loss,
    joint_graph,
    normalized_adjacency,
    propagate,
    train_linear,
    train_structure,
)


def test_normalized_adjacency_matches_networkx():
    edges = [(0, 1), (1, 2), (2, 0), (2, 3), (0, 1)]  # a duplicate edge is merged
    g = nx.Graph(edges)
    a = normalized_adjacency(torch.tensor(edges).t().repeat(1, 2).reshape(2, -1), 5).to_dense()
    dense = nx.to_numpy_array(g, nodelist=range(4))
    expected = np.zeros((5, 5))
    expected[:4, :4] = dense / dense.sum(1, keepdims=True)
    # edges given one way only: make them symmetric as joint_graph does
    sym = normalized_adjacency(torch.cat([torch.tensor(edges).t(), torch.tensor(edges).t().flip(0)], 1), 5)
    assert np.allclose(sym.to_dense().numpy(), expected)
    assert a.shape == (5, 5)


def test_propagate_is_normalised_neighbour_mean():
    a = normalized_adjacency(torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), 3)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    h = propagate(x, a, 1)
    mean = torch.stack([x[1], (x[0] + x[2]) / 2, x[1]])
    assert torch.allclose(h[1], mean / mean.norm(dim=1, keepdim=True))
    assert torch.allclose(h[0].norm(dim=1), torch.ones(3))


def test_alignment_loss_matches_formula():
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    left, right, neg = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    tau = 0.1
    total = 0.0
    for i in range(2):
        a, b = emb[left[i]], emb[right[i]]
        cr = torch.stack([emb[2], emb[3], emb[4], emb[5]])
        cl = torch.stack([emb[0], emb[1], emb[4], emb[5]])
        total += -torch.log_softmax(cr @ a / tau, 0)[i] - torch.log_softmax(cl @ b / tau, 0)[i]
    assert torch.allclose(alignment_loss(emb, left, right, neg, tau=tau), total / 4, atol=1e-6)


def test_joint_graph_offsets_kg2(tiny_openea):
    d = load_openea(tiny_openea)
    ei = joint_graph(d)
    assert ei.shape == (2, 2 * (len(d.kg1.triples) + len(d.kg2.triples)))
    assert int(ei.max()) < d.kg1.num_entities + d.kg2.num_entities
    assert int(ei[:, 2 * len(d.kg1.triples):].min()) >= 0


def test_structure_encoders_learn_isomorphic_copies(tiny_openea, tmp_path):
    """Two identical graphs: with seed links, the trained encoder must align more test entities than
    chance (1/12)."""
    d = load_openea(tiny_openea)
    cfg = TrainConfig(out_dir=str(tmp_path / "gcn"), max_epochs=20, batch_size=4, lr=0.1, progress=False,
                      resume=False, monitor="val_hits@1", mode="max", eval_every=10)
    res = train_structure(d, StructureConfig(ent_dim=16, dropout=0.0, negatives=8, tau=0.1), cfg,
                          evaluate_links=d.valid_links)
    assert (tmp_path / "gcn" / "metrics.jsonl").exists() and res.fit.epochs == 20
    hist = [h["train_loss"] for h in res.fit.history]
    assert hist[-1] < hist[0]
    s = res.emb1[d.test_links[:, 0]] @ res.emb2.t()
    hits = (s.argmax(1) == d.test_links[:, 1]).float().mean()
    assert hits > 1 / 12
    assert isinstance(res.model, GCNAlignEncoder)


def test_linear_aligner_trains_with_fit(tiny_openea, tmp_path):
    d = load_openea(tiny_openea)
    n = d.kg1.num_entities + d.kg2.num_entities
    torch.manual_seed(0)
    base = torch.randn(d.kg1.num_entities, 8)
    feats = torch.cat([base, base + 0.5 * torch.randn_like(base)])  # KG2 = noisy copy
    cfg = TrainConfig(out_dir=str(tmp_path / "lin"), max_epochs=30, batch_size=4, lr=0.02, progress=False,
                      resume=False, restore_best=False)
    e1, e2, fr = train_linear(d, feats, out_dim=8, negatives=8, train_config=cfg)
    assert e1.shape == (12, 8) and e2.shape == (12, 8) and fr.steps == 30
    assert torch.allclose(e1.norm(dim=1), torch.ones(12), atol=1e-5)
    assert LinearAligner(8, 4, feats)(torch.tensor([0, n - 1])).shape == (2, 4)


def test_gcn_encoder_runs_under_bf16_autocast(monkeypatch):
    """fit() autocasts on CUDA, where no bf16 sparse matmul exists (addmm_sparse_cuda): the encoder keeps its
    sparse products in float32. CPU has a bf16 sparse matmul, so here the dtype reaching the sparse product is
    recorded under CPU autocast; the CUDA failure itself shows only in the GPU run (tools/gpu_check.sh)."""
    adj = normalized_adjacency(torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]]), 4)
    enc = GCNAlignEncoder(4, adj, StructureConfig(ent_dim=8, num_layers=2, dropout=0.0))
    seen, spmm = [], torch.sparse.mm

    def recording_spmm(a, x):
        seen.append(x.dtype)
        return spmm(a, x)

    monkeypatch.setattr(torch.sparse, "mm", recording_spmm)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc()
    assert seen == [torch.float32, torch.float32]  # the dense operands, not autocast's bf16
    ref = enc()
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=5e-2, rtol=0)
