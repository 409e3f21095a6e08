"""Explicit edit paths: the list of edit operations a node map stands for, and applying them to a graph."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from .costs import UNIT, EditCosts
from .exact import _hashable, as_graph_arrays

__all__ = ["EditOp", "edit_path", "apply_edit_path", "path_cost"]


@dataclass(frozen=True)
class EditOp:
    """One edit operation.

    Attributes:
        kind: ``"node_sub"`` (relabel ``target`` node of G1 to ``label``), ``"node_del"`` (delete node ``target`` of
            G1), ``"node_ins"`` (insert node ``target`` of G2, with ``label``), ``"edge_del"`` (delete edge
            ``target`` = (u, u') of G1), ``"edge_ins"`` (insert edge ``target`` = (v, v') of G2, between the images).
        target: node id or edge (pair of node ids) in the graph the operation refers to.
        cost: the operation's cost.
        label: the new label (``node_sub`` and ``node_ins`` on labelled graphs).
    """

    kind: str
    target: Any
    cost: float
    label: Any = None


def _norm_map(g1: nx.Graph, g2: nx.Graph, node_map: Any) -> dict[Hashable, Hashable | None]:
    if isinstance(node_map, dict):
        pairs = list(node_map.items())
    else:
        pairs = [(u, v) for u, v in node_map if u is not None]
    f: dict[Hashable, Hashable | None] = {}
    for u, v in pairs:
        if u not in g1:
            raise ValueError(f"node_map maps {u!r}, which is not a node of g1")
        if v is not None and v not in g2:
            raise ValueError(f"node_map maps {u!r} to {v!r}, which is not a node of g2")
        f[u] = v
    for u in g1:
        f.setdefault(u, None)
    images = [v for v in f.values() if v is not None]
    if len(images) != len(set(images)):
        raise ValueError("node_map is not injective: two nodes of g1 map to the same node of g2")
    return f


def _to_nx(g: Any, node_label: str | None, name: str) -> nx.Graph:
    if isinstance(g, nx.Graph):
        as_graph_arrays(g, node_label, name=name)  # validation only
        return g
    a = as_graph_arrays(g, node_label, name=name)
    out = nx.Graph()
    for i, u in enumerate(a.nodes):
        out.add_node(u, **({} if a.labels is None else {node_label: a.labels[i]}))
    rows, cols = (a.adj > 0).nonzero()
    out.add_edges_from((a.nodes[i], a.nodes[j]) for i, j in zip(rows, cols, strict=True) if i < j)
    return out


def edit_path(g1: Any, g2: Any, node_map: Any, costs: EditCosts | None = None, *,
              node_label: str | None = None) -> list[EditOp]:
    r"""The edit operations that turn ``g1`` into ``g2`` along ``node_map``; their costs sum to the map's cost
    :math:`c(\pi)` of :class:`~graphalign.EditCosts` (so the path of :func:`~graphalign.exact_ged`'s map sums to its
    ``value``).

    Order: edge deletions, node deletions, relabels, node insertions, edge insertions (each step valid on the
    graph left by the previous ones).

    Args:
        g1, g2: networkx graphs or torch_geometric ``Data``.
        node_map: ``{u: v or None}`` or a list of ``(u, v)`` pairs as in :attr:`GEDResult.node_map`
            (nodes of ``g1`` left out are deleted; nodes of ``g2`` not hit are inserted).
        costs (EditCosts, optional): edit costs. (default: :obj:`graphalign.UNIT`)
        node_label (str, optional): node attribute holding the label. (default: :obj:`None`)
    """
    costs = UNIT if costs is None else costs
    g1 = _to_nx(g1, node_label, "g1")
    g2 = _to_nx(g2, node_label, "g2")
    f = _norm_map(g1, g2, node_map)
    inv = {v: u for u, v in f.items() if v is not None}
    ops: list[EditOp] = []
    for u, w in g1.edges():
        fu, fw = f[u], f[w]
        if fu is None or fw is None or not g2.has_edge(fu, fw):
            ops.append(EditOp("edge_del", (u, w), costs.edge_del))
    ops.extend(EditOp("node_del", u, costs.node_del) for u in g1 if f[u] is None)
    if node_label is not None:
        for u in g1:
            v = f[u]
            # compared as exact_ged compares them (lists / arrays as tuples, numpy scalars as Python values)
            if v is not None and _hashable(g1.nodes[u][node_label]) != _hashable(g2.nodes[v][node_label]):
                ops.append(EditOp("node_sub", u, costs.node_sub, g2.nodes[v][node_label]))
    ops.extend(EditOp("node_ins", v, costs.node_ins, g2.nodes[v].get(node_label) if node_label else None)
               for v in g2 if v not in inv)
    for v, x in g2.edges():
        if v not in inv or x not in inv or not g1.has_edge(inv[v], inv[x]):
            ops.append(EditOp("edge_ins", (v, x), costs.edge_ins))
    return ops


def path_cost(ops: Sequence[EditOp]) -> float:
    """Total cost of an edit path."""
    return float(sum(op.cost for op in ops))


def apply_edit_path(g1: nx.Graph, ops: Sequence[EditOp], node_map: Any, *, node_label: str | None = None) -> nx.Graph:
    """Apply :func:`edit_path`'s operations to a copy of ``g1``; the result is isomorphic to ``g2`` (inserted nodes
    get ids ``("ins", v)``; nodes of ``g1`` keep theirs).
    """
    h = nx.Graph(g1)
    f = dict(node_map) if isinstance(node_map, dict) else {u: v for u, v in node_map if u is not None}
    here = {v: u for u, v in f.items() if v is not None}  # g2 node -> node of h
    for op in ops:
        if op.kind == "edge_del":
            if not h.has_edge(*op.target):
                raise ValueError(f"cannot delete missing edge {op.target!r}")
            h.remove_edge(*op.target)
        elif op.kind == "node_del":
            if h.degree(op.target):
                raise ValueError(f"cannot delete node {op.target!r}: it still has edges")
            h.remove_node(op.target)
        elif op.kind == "node_sub":
            h.nodes[op.target][node_label] = op.label
        elif op.kind == "node_ins":
            here[op.target] = ("ins", op.target)
            h.add_node(("ins", op.target), **({node_label: op.label} if node_label else {}))
        elif op.kind == "edge_ins":
            a, b = here[op.target[0]], here[op.target[1]]
            if h.has_edge(a, b):
                raise ValueError(f"cannot insert existing edge {op.target!r}")
            h.add_edge(a, b)
        else:
            raise ValueError(f"unknown edit operation {op.kind!r}")
    return h
