"""GraphEdX: invariances (permutation, padding), cost scaling, insert/delete swap symmetry, the set divergences
against explicit float64 loops, the consistent edge alignment, shapes and gradients."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphalign import GRAPHEDX, EditCosts
from graphalign.models import (
    GraphEdX,
    GraphEdXConfig,
    GraphStore,
    align_diff,
    diff_align,
    encode_pairs,
    pair_alignment,
)

VOCAB = ["C", "N", "O"]


VARIANTS = [("AD", "XOR"), ("DA", "DA"), ("XOR", "AD")]


@st.composite
def graphs(draw, min_n=1, max_n=7):
    n = draw(st.integers(min_n, max_n))
    g = nx.Graph()
    for u in range(n):
        g.add_node(u, label=draw(st.sampled_from(VOCAB)))
    for u, v in itertools.combinations(range(n), 2):
        if draw(st.booleans()):
            g.add_edge(u, v)
    return g


def relabel(g: nx.Graph, seed: int) -> nx.Graph:
    """The same graph with its nodes listed in a random order under new ids."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(g.number_of_nodes())
    h = nx.Graph()
    for k in perm:  # insertion order = node order of the model's input
        u = list(g.nodes())[k]
        h.add_node(f"n{u}", **g.nodes[u])
    h.add_edges_from((f"n{u}", f"n{v}") for u, v in g.edges())
    return h


def model(variant=("AD", "XOR"), costs=GRAPHEDX, seed=0, **kw) -> GraphEdX:
    torch.manual_seed(seed)
    cfg = GraphEdXConfig(node_variant=variant[0], edge_variant=variant[1], **kw)
    return GraphEdX(cfg, costs=costs, node_label="label", label_vocab=VOCAB).double().eval()


def pred(m: GraphEdX, pairs) -> torch.Tensor:
    b = encode_pairs(pairs, "label", VOCAB)
    return m(_double(b))


def _double(b):
    b.x1, b.x2, b.adj1, b.adj2 = b.x1.double(), b.x2.double(), b.adj1.double(), b.adj2.double()
    return b


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=12, deadline=None)
@given(g1=graphs(), g2=graphs(), seed=st.integers(0, 10_000))
def test_permutation_invariance(variant, g1, g2, seed):
    m = model(variant)
    with torch.no_grad():
        y = pred(m, [(g1, g2), (relabel(g1, seed), g2), (g1, relabel(g2, seed + 1))])
    assert torch.allclose(y[1:], y[:1].expand(2), atol=1e-5, rtol=0), y


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=5, deadline=None)
@given(ps=st.lists(st.tuples(graphs(), graphs()), min_size=2, max_size=4), extra=st.integers(1, 6))
def test_padding_and_batch_composition_do_not_change_the_prediction(variant, ps, extra):
    m = model(variant)
    with torch.no_grad():
        b = _double(encode_pairs(ps, "label", VOCAB))
        y = m(b)
        y_pad = m(b.padded(b.x1.shape[1] + extra))
        y_one = torch.cat([pred(m, [p]) for p in ps])
    assert torch.allclose(y, y_pad, atol=1e-5, rtol=0)
    assert torch.allclose(y, y_one, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=5, deadline=None)
@given(g1=graphs(), g2=graphs(), c=st.floats(0.1, 10.0))
def test_scaling_all_costs_scales_the_prediction(variant, g1, g2, c):
    m = model(variant)
    with torch.no_grad():
        y = pred(m, [(g1, g2)])
        k = GRAPHEDX
        m.set_costs(EditCosts(c * k.node_del, c * k.node_ins, c * k.edge_del, c * k.edge_ins, c * k.node_sub))
        yc = pred(m, [(g1, g2)])
    assert torch.allclose(yc, c * y, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=12, deadline=None)
@given(g1=graphs(), g2=graphs())
def test_swapping_insert_delete_and_the_graphs_gives_the_same_prediction(variant, g1, g2):
    m = model(variant)
    with torch.no_grad():
        y = pred(m, [(g1, g2)])
        m.set_costs(GRAPHEDX.swapped())
        y_rev = pred(m, [(g2, g1)])
    assert torch.allclose(y, y_rev, atol=1e-6, rtol=0)


def test_asymmetric_costs_give_asymmetric_predictions():
    g1, g2 = nx.path_graph(6), nx.path_graph(3)
    for g in (g1, g2):
        nx.set_node_attributes(g, "C", "label")
    m = model()
    with torch.no_grad():
        y = pred(m, [(g1, g2), (g2, g1)])
    assert abs(float(y[0] - y[1])) > 1e-3  # deleting (cost 3) is dearer than inserting (cost 1)


def test_set_divergences_against_explicit_loops():
    g = torch.Generator().manual_seed(0)
    B, N, D = 2, 4, 3
    X, Xp = torch.randn(B, N, D, generator=g, dtype=torch.float64), torch.randn(B, N, D, generator=g, dtype=torch.float64)
    P = torch.rand(B, N, N, generator=g, dtype=torch.float64)
    cd, ci = torch.tensor(3.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    rho = lambda z: (cd * z.clamp(min=0) + ci * (-z).clamp(min=0)).sum()  # noqa: E731
    rho_rev = lambda z: (ci * z.clamp(min=0) + cd * (-z).clamp(min=0)).sum()  # noqa: E731
    for b in range(B):
        ad = rho(X[b] - P[b] @ Xp[b])
        ad_sym = 0.5 * (ad + rho_rev(Xp[b] - P[b].T @ X[b]))
        da = sum(P[b, u, w] * rho(X[b, u] - Xp[b, w]) for u in range(N) for w in range(N))
        assert torch.isclose(align_diff(X, Xp, P, cd, ci, symmetric=False)[b], ad)
        assert torch.isclose(align_diff(X, Xp, P, cd, ci, symmetric=True)[b], ad_sym)
        assert torch.isclose(diff_align(X, Xp, P, cd, ci)[b], da)


def test_align_diff_is_direction_free_on_permutations():
    g = torch.Generator().manual_seed(1)
    X, Xp = torch.randn(1, 5, 3, generator=g, dtype=torch.float64), torch.randn(1, 5, 3, generator=g, dtype=torch.float64)
    P = torch.eye(5, dtype=torch.float64)[torch.randperm(5, generator=g)][None]
    cd, ci = torch.tensor(2.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    assert torch.isclose(align_diff(X, Xp, P, cd, ci, symmetric=True), align_diff(X, Xp, P, cd, ci, symmetric=False))


def test_pair_alignment_of_a_permutation_is_the_induced_pair_permutation():
    perm = [2, 0, 3, 1]
    P = torch.eye(4)[perm][None]  # P[u, perm[u]] = 1
    S, iu = pair_alignment(P)
    pairs = [tuple(p) for p in iu.tolist()]
    assert len(pairs) == 6
    for a, (u, v) in enumerate(pairs):
        for b, (x, y) in enumerate(pairs):
            want = float({perm[u], perm[v]} == {x, y})
            assert float(S[0, a, b]) == want


def test_plan_is_zero_outside_each_pairs_block_and_rows_of_real_nodes_sum_to_one():
    gs = [nx.path_graph(2), nx.cycle_graph(5), nx.star_graph(3)]
    for g in gs:
        nx.set_node_attributes(g, "C", "label")
    m = model()
    b = _double(encode_pairs([(gs[0], gs[1]), (gs[0], gs[2])], "label", VOCAB))
    with torch.no_grad():
        P = m.compute(b).plan
    for k, mm in enumerate([5, 4]):
        assert float(P[k, mm:].abs().sum() + P[k, :, mm:].abs().sum()) == 0.0
        assert torch.allclose(P[k, :mm].sum(-1), torch.ones(mm, dtype=P.dtype), atol=1e-4)


def test_shapes_and_gradients():
    gs = [nx.gnp_random_graph(n, 0.4, seed=n) for n in (3, 6, 8, 5)]
    for g in gs:
        nx.set_node_attributes(g, "N", "label")
    torch.manual_seed(0)
    m = GraphEdX(GraphEdXConfig(noise_factor=1.0, tau=0.1), costs=GRAPHEDX, node_label="label", label_vocab=VOCAB)
    m.train()
    b = encode_pairs(list(zip(gs, gs[::-1], strict=True)), "label", VOCAB)
    out = m.compute(b)
    assert out.ged.shape == (4,) and out.plan.shape == (4, 8, 8)
    assert out.node_cost.shape == out.edge_cost.shape == out.label_cost.shape == (4,)
    assert torch.allclose(out.ged, out.edge_cost + out.node_cost + out.label_cost)
    out.ged.sum().backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads.values()), \
        [n for n, gr in grads.items() if gr is None]
    for prefix in ("encoder.", "pair_mlp.", "perm_mlp."):
        assert any(float(gr.abs().sum()) > 0 for n, gr in grads.items() if n.startswith(prefix)), prefix


def test_store_features_and_adjacency_match_networkx():
    gs = [nx.gnp_random_graph(n, 0.5, seed=n) for n in (1, 4, 7)]
    for g in gs:
        nx.set_node_attributes(g, {u: VOCAB[u % 3] for u in g}, "label")
    gs[2].nodes[0]["label"] = "Xx"  # out of vocabulary -> last column
    st_ = GraphStore(gs, "label", label_vocab=VOCAB)
    assert st_.x.shape == (3, 7, 4) and st_.n.tolist() == [1, 4, 7]
    for k, g in enumerate(gs):
        n = g.number_of_nodes()
        assert np.array_equal(st_.adj[k, :n, :n].numpy(), nx.to_numpy_array(g, nodelist=range(n)))
        assert float(st_.adj[k].sum()) == 2 * g.number_of_edges()
    assert st_.x[2, 0].tolist() == [0, 0, 0, 1] and st_.x[1, 2].tolist() == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="max_nodes"):
        GraphStore(gs, "label", label_vocab=VOCAB, max_nodes=5)
    with pytest.raises(ValueError, match="node_variant"):
        GraphEdX(GraphEdXConfig(node_variant="XX"))


def test_predict_batches_explicit_pairs_like_forward():
    gs = [nx.gnp_random_graph(n, 0.5, seed=n) for n in (2, 5, 7, 3, 6)]
    for g in gs:
        nx.set_node_attributes(g, "O", "label")
    m = GraphEdX(costs=GRAPHEDX, node_label="label", label_vocab=VOCAB)
    m.train()
    ps = list(zip(gs, gs[1:] + gs[:1], strict=True))
    y = m.predict(ps, batch_size=2)
    assert m.training  # predict restores the mode
    m.eval()
    with torch.no_grad():
        assert torch.allclose(y, m(encode_pairs(ps, "label", VOCAB)), atol=1e-5)
    assert m.predict([]).shape == (0,)


def test_gmn_encoder_runs_under_bf16_autocast():
    """fit() autocasts on CUDA: bf16 messages must aggregate into a buffer of their own dtype (a float32 buffer
    made index_add_ fail there; CPU autocast fails the same way)."""
    from graphalign.models.encoder import GMNEncoder

    torch.manual_seed(0)
    enc = GMNEncoder(3, node_dim=8, steps=2)
    x = torch.randn(2, 4, 3)
    adj = torch.zeros(2, 4, 4)
    adj[:, 0, 1] = adj[:, 1, 0] = adj[:, 1, 2] = adj[:, 2, 1] = 1
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(x, adj, mask)
    torch.testing.assert_close(out.float(), enc(x, adj, mask), atol=5e-2, rtol=0)
