"""Baselines under the same interface: GMN-Embed and SimGNN (invariances, shapes, gradients, cost scaling of
GMN-Embed) and the bipartite wrapper (equal to graphalign.ged_bounds on the same pairs)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from graphalign import GRAPHEDX, EditCosts, ged_bounds
from graphalign.data import load_ged_dataset
from graphalign.models import Bipartite, GMNEmbed, GraphStore, SimGNN, encode_pairs

VOCAB = ["C", "N", "O"]




def _pairs(seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(4):
        gs = []
        for _ in range(2):
            g = nx.gnp_random_graph(int(rng.integers(1, 8)), 0.5, seed=int(rng.integers(1 << 30)))
            nx.set_node_attributes(g, {u: VOCAB[int(rng.integers(3))] for u in g}, "label")
            gs.append(g)
        out.append(tuple(gs))
    return out


def _shuffle(g: nx.Graph, seed: int) -> nx.Graph:
    perm = np.random.default_rng(seed).permutation(g.number_of_nodes())
    h = nx.Graph()
    h.add_nodes_from((int(perm[u]), g.nodes[u]) for u in sorted(g, key=lambda u: perm[u]))
    h.add_edges_from((int(perm[u]), int(perm[v])) for u, v in g.edges())
    return h


@pytest.mark.parametrize("cls", [GMNEmbed, SimGNN])
def test_neural_baselines_invariances_shapes_and_gradients(cls):
    torch.manual_seed(0)
    m = cls(costs=GRAPHEDX, node_label="label", label_vocab=VOCAB)
    ps = _pairs()
    b = encode_pairs(ps, "label", VOCAB)
    y = m(b)
    assert y.shape == (4,)
    y.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    m.eval()
    with torch.no_grad():
        y = m(b)
        assert torch.allclose(m(b.padded(b.x1.shape[1] + 3)), y, atol=1e-5)
        shuffled = [(_shuffle(g1, 1), _shuffle(g2, 2)) for g1, g2 in ps]
        assert torch.allclose(m(encode_pairs(shuffled, "label", VOCAB)), y, atol=1e-4)


def test_gmn_embed_scales_with_costs_and_is_swap_consistent():
    torch.manual_seed(0)
    m = GMNEmbed(costs=GRAPHEDX, node_label="label", label_vocab=VOCAB).eval()
    b = encode_pairs(_pairs(1), "label", VOCAB)
    with torch.no_grad():
        y = m(b)
        m.set_costs(EditCosts(6, 2, 4, 2, 2))
        assert torch.allclose(m(b), 2 * y, rtol=1e-5)
        m.set_costs(GRAPHEDX.swapped())
        assert torch.allclose(m(b.swapped()), y, rtol=1e-5, atol=1e-6)


def test_bipartite_wrapper_equals_ged_bounds_on_aids700nef():
    ds = load_ged_dataset("aids700nef")
    store = GraphStore(ds.graphs[:40], "label")
    i, j = torch.arange(0, 20), torch.arange(20, 40)
    for bound in ("upper", "lower"):
        m = Bipartite(costs=GRAPHEDX, node_label="label", label_vocab=store.label_vocab, bound=bound)
        got = m(store.batch(i, j))
        ref = ged_bounds([(ds.graphs[a], ds.graphs[b]) for a, b in zip(i.tolist(), j.tolist(), strict=True)],
                         GRAPHEDX, node_label="label")
        assert np.allclose(got.numpy(), getattr(ref, bound))
    with pytest.raises(ValueError, match="bound"):
        Bipartite(bound="middle")
