import math

import pytest

from graphalign import GRAPHEDX, UNIT, EditCosts, get_costs


def test_presets_match_the_issue():
    assert (GRAPHEDX.node_del, GRAPHEDX.node_ins, GRAPHEDX.edge_del, GRAPHEDX.edge_ins) == (3, 1, 2, 1)
    assert (UNIT.node_del, UNIT.node_ins, UNIT.edge_del, UNIT.edge_ins, UNIT.node_sub) == (1, 1, 1, 1, 1)
    assert UNIT.symmetric and not GRAPHEDX.symmetric


def test_swapped_exchanges_delete_and_insert():
    c = EditCosts(1.5, 2.5, 3.5, 4.5, 0.5).swapped()
    assert (c.node_del, c.node_ins, c.edge_del, c.edge_ins, c.node_sub) == (2.5, 1.5, 4.5, 3.5, 0.5)
    assert c.swapped() == EditCosts(1.5, 2.5, 3.5, 4.5, 0.5)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_costs_raise(bad):
    with pytest.raises(ValueError, match="node_ins"):
        EditCosts(node_ins=bad)


def test_non_numbers_raise():
    with pytest.raises(TypeError, match="edge_del"):
        EditCosts(edge_del="2")
    with pytest.raises(TypeError):
        EditCosts(edge_del=True)


def test_get_costs_parses_presets_and_lists():
    assert get_costs("GraphEdX") is GRAPHEDX
    assert get_costs("3,1,2,1") == EditCosts(3, 1, 2, 1)
    assert get_costs("3,1,2,1,0.5").node_sub == 0.5
    with pytest.raises(ValueError, match="unknown costs"):
        get_costs("cheap")


def test_cache_key_distinguishes_costs():
    assert GRAPHEDX.key() == "nd3-ni1-ed2-ei1-ns1"
    assert EditCosts(0.5).key() != EditCosts(1.5).key()
