"""graphalign.align: the edit path of GraphEdX's rounded alignment is feasible and its cost is a certified upper bound
(>= the exact GED: published AIDS700nef values, and exact_ged with the GraphEdX costs); ged_bounds' lower bound below."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphalign import GRAPHEDX, UNIT, apply_edit_path, exact_ged
from graphalign.align import align
from graphalign.data import load_ged_dataset
from graphalign.models import GraphEdX, GraphEdXConfig, GraphStore


def _iso(h: nx.Graph, g2: nx.Graph, label: str | None) -> bool:
    nm = None if label is None else (lambda a, b: a[label] == b[label])
    return nx.is_isomorphic(h, g2, node_match=nm)


def test_certified_upper_bound_on_published_aids700nef_pairs():
    ds = load_ged_dataset("aids700nef")
    vocab = GraphStore(ds.graphs, "label").label_vocab
    torch.manual_seed(0)
    m = GraphEdX(costs=UNIT, node_label="label", label_vocab=vocab).eval()
    rng = np.random.default_rng(0)
    tr = np.flatnonzero(ds.split == "train")
    checked = 0
    for i, j in rng.choice(tr, size=(25, 2)):
        pub = ds.ged[i, j]
        r = align(m, ds.graphs[i], ds.graphs[j])
        assert r.lower <= pub + 1e-9 <= r.upper + 2e-9, (i, j, r.lower, pub, r.upper)
        assert r.best_upper >= pub and r.upper <= r.upper_rounded + 1e-9
        h = apply_edit_path(ds.graphs[i], r.edit_path, r.node_map, node_label="label")
        assert _iso(h, ds.graphs[j], "label")
        n = max(ds.graphs[i].number_of_nodes(), ds.graphs[j].number_of_nodes())
        assert r.soft.shape == r.hard.shape == (n, n)
        assert torch.equal(r.hard.sum(0), torch.ones(n)) and torch.equal(r.hard.sum(1), torch.ones(n))
        checked += 1
    assert checked == 25


@st.composite
def graphs(draw, max_n=6):
    n = draw(st.integers(0, max_n))
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(e for e in itertools.combinations(range(n), 2) if draw(st.booleans()))
    return g


@settings(max_examples=25, deadline=None)
@given(g1=graphs(), g2=graphs())
def test_certified_upper_bound_with_graphedx_costs(g1, g2):
    torch.manual_seed(1)
    m = GraphEdX(GraphEdXConfig(), costs=GRAPHEDX).eval()
    r = align(m, g1, g2)
    exact = exact_ged(g1, g2, GRAPHEDX).value
    assert r.lower - 1e-9 <= exact <= r.upper + 1e-9 <= r.upper_rounded + 2e-9
    assert exact <= align(m, g1, g2, refine=False).upper == r.upper_rounded
    assert _iso(apply_edit_path(g1, r.edit_path, r.node_map), g2, None)
    assert sum(1 for v in r.node_map.values() if v is None) >= g1.number_of_nodes() - g2.number_of_nodes()


def test_align_rejects_models_without_alignment():
    from graphalign.models import SimGNN

    with pytest.raises(TypeError, match="GraphEdX"):
        align(SimGNN(), nx.path_graph(2), nx.path_graph(3))
