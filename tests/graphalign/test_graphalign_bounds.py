import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graphalign_exact import graphs

from graphalign import GRAPHEDX, UNIT, EditCosts, exact_ged, ged_bounds, mapping_cost
from graphalign.exact import as_graph_arrays

costs_st = st.sampled_from([UNIT, GRAPHEDX, EditCosts(0.5, 2.0, 1.5, 0.2, 3.0)])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(graphs(7), graphs(7)), min_size=1, max_size=4), costs_st, st.booleans())
def test_lower_le_exact_le_upper(pairs, c, labelled):
    lab = "l" if labelled else None
    b = ged_bounds(pairs, c, node_label=lab)
    assert b.lower.shape == b.upper.shape == (len(pairs),)
    for p, (g1, g2) in enumerate(pairs):
        v = exact_ged(g1, g2, c, node_label=lab).value
        assert b.lower[p] <= v + 1e-9
        assert v <= b.upper[p] + 1e-9


@settings(max_examples=20, deadline=None)
@given(graphs(7), graphs(7), costs_st)
def test_upper_is_the_cost_of_the_returned_map(g1, g2, c):
    b = ged_bounds([(g1, g2)], c)
    a1, a2 = as_graph_arrays(g1), as_graph_arrays(g2)
    assert mapping_cost(a1.adj, a2.adj, np.zeros((a1.n, a2.n)), c, b.maps[0]) == pytest.approx(b.upper[0])


def test_count_bound_by_hand():
    # K5 vs one node: the bound must reach 4 node deletions and 10 edge deletions under GRAPHEDX
    b = ged_bounds([(nx.complete_graph(5), nx.empty_graph(1))], GRAPHEDX)
    assert b.lower[0] == pytest.approx(4 * 3 + 10 * 2) == b.upper[0]
