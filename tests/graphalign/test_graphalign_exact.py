import itertools
import random

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphalign import GRAPHEDX, UNIT, EditCosts, exact_ged, mapping_cost
from graphalign.exact import as_graph_arrays


def nx_ged(g1, g2, c, labelled, timeout=None):
    kw = dict(node_del_cost=lambda a: c.node_del, node_ins_cost=lambda a: c.node_ins,
              edge_del_cost=lambda a: c.edge_del, edge_ins_cost=lambda a: c.edge_ins)
    if labelled:
        kw["node_subst_cost"] = lambda a, b: 0.0 if a["l"] == b["l"] else c.node_sub
    return nx.graph_edit_distance(g1, g2, timeout=timeout, **kw)


def brute_ged(g1, g2, c, labelled):
    """Minimum over every partial injective node map, costed from the definition (independent of the solver)."""
    v1, v2 = list(g1), list(g2)
    best = np.inf
    for k in range(min(len(v1), len(v2)) + 1):
        for s1 in itertools.combinations(v1, k):
            for s2 in itertools.permutations(v2, k):
                f = dict(zip(s1, s2, strict=True))
                cost = c.node_del * (len(v1) - k) + c.node_ins * (len(v2) - k)
                if labelled:
                    cost += sum(c.node_sub for u in s1 if g1.nodes[u]["l"] != g2.nodes[f[u]]["l"])
                kept = sum(1 for u, w in g1.edges() if u in f and w in f and g2.has_edge(f[u], f[w]))
                cost += c.edge_del * (g1.number_of_edges() - kept) + c.edge_ins * (g2.number_of_edges() - kept)
                best = min(best, cost)
    return best


@st.composite
def graphs(draw, max_nodes=6, n_labels=3):
    n = draw(st.integers(0, max_nodes))
    pairs = list(itertools.combinations(range(n), 2))
    mask = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    g = nx.Graph()
    g.add_nodes_from((i, {"l": draw(st.integers(0, n_labels - 1))}) for i in range(n))
    g.add_edges_from(p for p, m in zip(pairs, mask, strict=True) if m)
    return g


costs_st = st.sampled_from([UNIT, GRAPHEDX])


@settings(max_examples=40, deadline=None)
@given(graphs(), graphs(), costs_st, st.booleans())
def test_equals_networkx(g1, g2, c, labelled):
    r = exact_ged(g1, g2, c, node_label="l" if labelled else None)
    assert r.optimal
    assert r.value == pytest.approx(nx_ged(g1, g2, c, labelled))
    assert r.lower_bound == r.upper_bound == r.value


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("c", [UNIT, GRAPHEDX], ids=["unit", "graphedx"])
def test_equals_networkx_on_7_nodes(seed, c):
    rng = random.Random(seed)
    g1 = nx.gnp_random_graph(7, 0.35, seed=rng.randint(0, 10**6))
    g2 = nx.gnp_random_graph(rng.choice([5, 6, 7]), 0.35, seed=rng.randint(0, 10**6))
    for g in (g1, g2):
        for u in g:
            g.nodes[u]["l"] = rng.randint(0, 1)
    assert exact_ged(g1, g2, c, node_label="l").value == pytest.approx(nx_ged(g1, g2, c, True))


general_costs = st.builds(EditCosts, *[st.sampled_from([0.0, 0.3, 1.0, 2.5, 4.0])] * 5)


@settings(max_examples=40, deadline=None)
@given(graphs(5), graphs(5), general_costs, st.booleans())
def test_equals_brute_force_with_any_costs(g1, g2, c, labelled):
    # networkx is not a reference here: it never deletes + inserts where relabelling costs more than both
    r = exact_ged(g1, g2, c, node_label="l" if labelled else None)
    assert r.value == pytest.approx(brute_ged(g1, g2, c, labelled))


def test_relabel_dearer_than_delete_plus_insert_by_hand():
    """Why brute force, not networkx, is the reference when node_sub > node_del + node_ins.

    g1 = edge between labels 1 and 0; g2 = edge between labels 0 and 0. Relabelling node 0 costs 3; deleting it
    (0.5) with its edge (1.5) and inserting a node (2) with its edge (0.2) costs 4.2. networkx 3.6 answers 4.2: it
    skips substitutions dearer than deletion + insertion, which is unsafe once edges are attached.
    """
    g1 = nx.Graph([(0, 1)])
    nx.set_node_attributes(g1, {0: 1, 1: 0}, "l")
    g2 = nx.Graph([(0, 1)])
    nx.set_node_attributes(g2, {0: 0, 1: 0}, "l")
    c = EditCosts(node_del=0.5, node_ins=2.0, edge_del=1.5, edge_ins=0.2, node_sub=3.0)
    assert exact_ged(g1, g2, c, node_label="l").value == pytest.approx(3.0) == brute_ged(g1, g2, c, True)


@settings(max_examples=30, deadline=None)
@given(graphs(7), costs_st, st.booleans())
def test_self_distance_is_zero(g, c, labelled):
    h = nx.relabel_nodes(g, {u: 10 + (u * 3) % 7 for u in g})  # a relabelled copy
    assert exact_ged(g, h, c, node_label="l" if labelled else None).value == 0


@settings(max_examples=30, deadline=None)
@given(graphs(7), graphs(7), st.booleans())
def test_symmetric_under_symmetric_costs(g1, g2, labelled):
    c = EditCosts(2.0, 2.0, 0.5, 0.5, 1.5)
    lab = "l" if labelled else None
    assert exact_ged(g1, g2, c, node_label=lab).value == pytest.approx(exact_ged(g2, g1, c, node_label=lab).value)


@settings(max_examples=30, deadline=None)
@given(graphs(7), graphs(7), general_costs)
def test_swap_costs_and_arguments(g1, g2, c):
    assert exact_ged(g1, g2, c).value == pytest.approx(exact_ged(g2, g1, c.swapped()).value)


@settings(max_examples=25, deadline=None)
@given(graphs(6), graphs(6), graphs(6), st.booleans())
def test_triangle_inequality_under_symmetric_costs(g1, g2, g3, labelled):
    c = UNIT
    lab = "l" if labelled else None
    d12 = exact_ged(g1, g2, c, node_label=lab).value
    d23 = exact_ged(g2, g3, c, node_label=lab).value
    d13 = exact_ged(g1, g3, c, node_label=lab).value
    assert d13 <= d12 + d23 + 1e-9


@settings(max_examples=30, deadline=None)
@given(graphs(7), graphs(7), costs_st)
def test_node_map_costs_the_value(g1, g2, c):
    r = exact_ged(g1, g2, c, node_label="l")
    a, b = as_graph_arrays(g1), as_graph_arrays(g2)
    pos1, pos2 = {u: i for i, u in enumerate(a.nodes)}, {v: i for i, v in enumerate(b.nodes)}
    f = np.full(a.n, -1)
    for u, v in r.node_map:
        if u is not None and v is not None:
            f[pos1[u]] = pos2[v]
    l1 = np.array([g1.nodes[u]["l"] for u in a.nodes])
    l2 = np.array([g2.nodes[v]["l"] for v in b.nodes])
    sub = c.node_sub * (l1[:, None] != l2[None, :])
    assert mapping_cost(a.adj, b.adj, sub, c, f) == pytest.approx(r.value)
    # every node appears exactly once
    assert sorted(u for u, _ in r.node_map if u is not None) == sorted(g1)
    assert sorted(v for _, v in r.node_map if v is not None) == sorted(g2)


def test_twins_symmetry_breaking_stays_exact():
    # stars and complete bipartite graphs are full of interchangeable twins
    for g1, g2 in [(nx.star_graph(5), nx.star_graph(3)), (nx.complete_bipartite_graph(2, 3), nx.star_graph(4)),
                   (nx.complete_bipartite_graph(3, 3), nx.complete_bipartite_graph(2, 4))]:
        for c in (UNIT, GRAPHEDX, EditCosts(0.2, 3, 1, 0.1)):
            assert exact_ged(g1, g2, c).value == pytest.approx(brute_ged(g1, g2, c, False))


def test_hand_computed_values():
    # triangle -> path of 3 nodes: delete one edge
    tri, path = nx.cycle_graph(3), nx.path_graph(3)
    assert exact_ged(tri, path, GRAPHEDX).value == 2.0  # one edge deletion (2)
    assert exact_ged(path, tri, GRAPHEDX).value == 1.0  # one edge insertion (1)
    # single node -> empty graph and back
    one, empty = nx.empty_graph(1), nx.empty_graph(0)
    assert exact_ged(one, empty, GRAPHEDX).value == 3.0
    assert exact_ged(empty, one, GRAPHEDX).value == 1.0
    assert exact_ged(empty, empty, GRAPHEDX).value == 0.0
    # K4 -> empty: 4 node deletions (12) + 6 edge deletions (12)
    assert exact_ged(nx.complete_graph(4), empty, GRAPHEDX).value == 24.0


def test_pyg_data_equals_networkx():
    pytest.importorskip("torch_geometric")
    from torch_geometric.utils import from_networkx

    rng = random.Random(3)
    for _ in range(5):
        g1 = nx.gnp_random_graph(6, 0.4, seed=rng.randint(0, 999))
        g2 = nx.gnp_random_graph(5, 0.4, seed=rng.randint(0, 999))
        for g in (g1, g2):
            for u in g:
                g.nodes[u]["x"] = [float(rng.randint(0, 1)), 1.0]
        d1, d2 = from_networkx(g1), from_networkx(g2)
        assert exact_ged(d1, d2, GRAPHEDX, node_label="x").value == pytest.approx(
            exact_ged(g1, g2, GRAPHEDX, node_label="x").value)


def test_timeout_returns_valid_bounds():
    rng = random.Random(0)
    g1 = nx.gnp_random_graph(13, 0.3, seed=rng.randint(0, 999))
    g2 = nx.gnp_random_graph(13, 0.3, seed=rng.randint(0, 999))
    full = exact_ged(g1, g2, UNIT)
    assert full.optimal and full.nodes_expanded > 64
    cut = exact_ged(g1, g2, UNIT, timeout=1e-4)
    assert not cut.optimal
    assert cut.lower_bound <= full.value + 1e-9 <= cut.upper_bound + 1e-9
    assert cut.value == cut.upper_bound
    cpu = exact_ged(g1, g2, UNIT, timeout=1e-4, timeout_clock="cpu")
    assert not cpu.optimal and cpu.lower_bound <= full.value + 1e-9 <= cpu.upper_bound + 1e-9
    with pytest.raises(ValueError, match="timeout_clock"):
        exact_ged(g1, g2, UNIT, timeout=1, timeout_clock="gpu")


def test_bad_input_raises_clear_errors():
    g = nx.path_graph(3)
    with pytest.raises(ValueError, match="directed"):
        exact_ged(nx.DiGraph([(0, 1)]), g)
    with pytest.raises(ValueError, match="multigraph"):
        exact_ged(g, nx.MultiGraph([(0, 1), (0, 1)]))
    loop = nx.Graph([(0, 1), (1, 1)])
    with pytest.raises(ValueError, match="self-loop"):
        exact_ged(loop, g)
    with pytest.raises(KeyError, match="colour"):
        exact_ged(g, g, node_label="colour")
    with pytest.raises(ValueError, match="non-negative"):
        exact_ged(g, g, EditCosts(node_del=-1))
    with pytest.raises(TypeError, match="networkx"):
        exact_ged([[0, 1]], g)
    with pytest.raises(ValueError, match="timeout"):
        exact_ged(g, g, timeout=0)


def test_bad_pyg_input_raises():
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Data

    with pytest.raises(ValueError, match="not symmetric"):
        exact_ged(Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2), nx.path_graph(2))
    with pytest.raises(ValueError, match="repeated"):
        exact_ged(Data(edge_index=torch.tensor([[0, 1, 0], [1, 0, 1]]), num_nodes=2), nx.path_graph(2))
    with pytest.raises(ValueError, match="self-loop"):
        exact_ged(Data(edge_index=torch.tensor([[0], [0]]), num_nodes=2), nx.path_graph(2))
    with pytest.raises(KeyError, match="label"):
        exact_ged(Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2), nx.path_graph(2), node_label="z")
