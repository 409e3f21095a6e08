import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graphalign_exact import graphs

from graphalign import GRAPHEDX, UNIT, EditCosts, apply_edit_path, edit_path, exact_ged, path_cost


def same_labels(a, b):
    return a.get("l") == b.get("l")


@settings(max_examples=40, deadline=None)
@given(graphs(7), graphs(7), st.sampled_from([UNIT, GRAPHEDX, EditCosts(0.5, 2.0, 1.5, 0.2, 3.0)]), st.booleans())
def test_optimal_path_sums_to_value_and_yields_g2(g1, g2, c, labelled):
    lab = "l" if labelled else None
    r = exact_ged(g1, g2, c, node_label=lab)
    ops = edit_path(g1, g2, r.node_map, c, node_label=lab)
    assert path_cost(ops) == pytest.approx(r.value)
    h = apply_edit_path(g1, ops, r.node_map, node_label=lab)
    assert nx.is_isomorphic(h, g2, node_match=same_labels if labelled else None)


@settings(max_examples=30, deadline=None)
@given(graphs(6), graphs(6), st.data())
def test_any_map_path_cost_matches_counting(g1, g2, data):
    # a random injective partial map; its cost counted by hand from the definition
    v2 = list(g2)
    f = {}
    for u in g1:
        choices = [None] + [v for v in v2 if v not in f.values()]
        f[u] = data.draw(st.sampled_from(choices))
    c = EditCosts(3.0, 1.0, 2.0, 1.0, 0.7)
    ops = edit_path(g1, g2, f, c, node_label="l")
    kept = sum(1 for u, w in g1.edges() if f[u] is not None and f[w] is not None and g2.has_edge(f[u], f[w]))
    mapped = sum(v is not None for v in f.values())
    expect = (3.0 * (len(g1) - mapped) + 1.0 * (len(g2) - mapped) + 2.0 * (g1.number_of_edges() - kept)
              + 1.0 * (g2.number_of_edges() - kept)
              + 0.7 * sum(1 for u, v in f.items() if v is not None and g1.nodes[u]["l"] != g2.nodes[v]["l"]))
    assert path_cost(ops) == pytest.approx(expect)
    h = apply_edit_path(g1, ops, f, node_label="l")
    assert nx.is_isomorphic(h, g2, node_match=same_labels)


def test_operations_by_hand():
    g1 = nx.Graph([(0, 1), (1, 2)])
    g2 = nx.Graph([("a", "b")])
    ops = edit_path(g1, g2, {0: "a", 1: "b", 2: None}, GRAPHEDX)
    kinds = sorted((op.kind, op.target) for op in ops)
    assert kinds == [("edge_del", (1, 2)), ("node_del", 2)]
    assert path_cost(ops) == 2 + 3


def test_bad_maps_raise():
    g = nx.path_graph(3)
    with pytest.raises(ValueError, match="injective"):
        edit_path(g, g, {0: 1, 1: 1})
    with pytest.raises(ValueError, match="not a node of g2"):
        edit_path(g, g, {0: 7})


def test_path_compares_labels_as_the_solver_does():
    import numpy as np
    # a list label and the equal tuple, and numpy-array labels: exact_ged treats them as equal values, so
    # the optimal path must carry no relabel and still sum to the value
    for la, lb in (([1, 2], (1, 2)), (np.array([1, 2]), np.array([1, 2]))):
        g1, g2 = nx.path_graph(2), nx.path_graph(2)
        nx.set_node_attributes(g1, {0: la, 1: la}, "l")
        nx.set_node_attributes(g2, {0: lb, 1: lb}, "l")
        r = exact_ged(g1, g2, UNIT, node_label="l")
        ops = edit_path(g1, g2, r.node_map, UNIT, node_label="l")
        assert r.value == 0.0 and ops == [] and path_cost(ops) == r.value
