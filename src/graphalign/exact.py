r"""Exact graph edit distance with general edit costs: depth-first branch and bound over node maps.

The search maps the nodes of the smaller graph one by one (in a connectivity order) to a node of the other graph or to
deletion. Every search node is bounded below by a linear sum assignment problem (LSAP) over the unmapped nodes whose
costs hold the exact node cost, the exact cost of the edges towards already mapped nodes, and half a degree-based
bound on the edges among unmapped nodes (the bipartite bound of Riesen & Bunke, 2009, made exact on the mapped part
as in the branch-match bound "BM" of Chang et al., 2020), raised to a node-count / edge-count bound. Upper bounds:
the root LSAP assignment refined by local search (image swaps and moves), then the LSAP completion at every search
node. Twin nodes (same label, same neighbours) are branched once (a lexicographically smallest optimal map always
survives). The bound is admissible for any non-negative costs, so the result is exact; on timeout the proven lower
bound is the least bound over the untried children of the nodes on the search stack.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .costs import EditCosts

__all__ = ["GEDResult", "GraphArrays", "as_graph_arrays", "exact_ged", "mapping_cost"]

_BIG = 1e12


@dataclass
class GraphArrays:
    """A graph as arrays: ``adj`` (n, n) 0/1 float64 symmetric, ``labels`` (n,) object labels or None, ``nodes`` ids."""

    adj: np.ndarray
    labels: np.ndarray | None
    nodes: list[Hashable]

    @property
    def n(self) -> int:
        return int(self.adj.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.adj.sum() // 2)


def _check_label_key(key: str, have: Any, what: str) -> None:
    raise KeyError(f"node_label={key!r} not found on {what}; available: {have}")


def as_graph_arrays(g: Any, node_label: str | None = None, *, name: str = "graph") -> GraphArrays:
    """Convert a networkx ``Graph`` or a torch_geometric ``Data`` into :class:`GraphArrays`, validating it.

    Raises:
        ValueError: directed graphs, multigraphs, self-loops, duplicated or one-directional ``edge_index`` entries.
        KeyError: ``node_label`` is not an attribute of every node.
    """
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover
        nx = None
    if isinstance(g, GraphArrays):
        if node_label is not None and g.labels is None:
            raise KeyError(f"node_label={node_label!r} given but {name} (GraphArrays) has no labels")
        return g
    if nx is not None and isinstance(g, nx.Graph):
        if g.is_directed():
            raise ValueError(f"{name} is directed ({type(g).__name__}); GED here is for undirected simple graphs: "
                             f"convert with g.to_undirected()")
        if g.is_multigraph():
            raise ValueError(f"{name} is a multigraph ({type(g).__name__}); GED here is for simple graphs")
        nodes = list(g.nodes())
        idx = {u: i for i, u in enumerate(nodes)}
        n = len(nodes)
        adj = np.zeros((n, n), dtype=np.float64)
        for u, v in g.edges():
            if u == v:
                raise ValueError(f"{name} has a self-loop at node {u!r}; GED here is for simple graphs")
            adj[idx[u], idx[v]] = adj[idx[v], idx[u]] = 1.0
        labels = None
        if node_label is not None:
            missing = [u for u in nodes if node_label not in g.nodes[u]]
            if missing:
                have = sorted({k for u in nodes for k in g.nodes[u]})
                raise KeyError(f"node_label={node_label!r} missing on node {missing[0]!r} of {name}; "
                               f"node attributes present: {have}")
            labels = np.empty(n, dtype=object)
            for i, u in enumerate(nodes):
                labels[i] = _hashable(g.nodes[u][node_label])
        return GraphArrays(adj, labels, nodes)
    # torch_geometric Data (duck-typed: edge_index + num_nodes)
    if hasattr(g, "edge_index") and hasattr(g, "num_nodes"):
        import torch

        n = int(g.num_nodes)
        ei = g.edge_index
        ei = ei.detach().cpu().numpy() if isinstance(ei, torch.Tensor) else np.asarray(ei)
        if ei.ndim != 2 or ei.shape[0] != 2:
            raise ValueError(f"{name}.edge_index must have shape (2, E), got {tuple(ei.shape)}")
        if ei.size and (ei.min() < 0 or ei.max() >= n):
            raise ValueError(f"{name}.edge_index has node ids outside [0, {n})")
        if np.any(ei[0] == ei[1]):
            k = int(np.flatnonzero(ei[0] == ei[1])[0])
            raise ValueError(f"{name} has a self-loop at node {int(ei[0, k])}; GED here is for simple graphs")
        pairs = ei[0].astype(np.int64) * n + ei[1]
        if np.unique(pairs).size != pairs.size:
            raise ValueError(f"{name}.edge_index has repeated entries (a multigraph); GED here is for simple graphs")
        adj = np.zeros((n, n), dtype=np.float64)
        adj[ei[0], ei[1]] = 1.0
        if not np.array_equal(adj, adj.T):
            raise ValueError(f"{name}.edge_index is not symmetric (a directed graph); GED here is for undirected graphs:"
                             f" store both directions (torch_geometric.utils.to_undirected)")
        labels = None
        if node_label is not None:
            x = getattr(g, node_label, None) if node_label in g.keys() else None
            if x is None:
                raise KeyError(f"node_label={node_label!r} not an attribute of {name}; attributes: {sorted(g.keys())}")
            x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            if x.shape[0] != n:
                raise ValueError(f"{name}.{node_label} has {x.shape[0]} rows for {n} nodes")
            labels = np.empty(n, dtype=object)
            for i in range(n):
                labels[i] = _hashable(x[i])
        return GraphArrays(adj, labels, list(range(n)))
    raise TypeError(f"{name} must be a networkx.Graph or a torch_geometric Data, got {type(g).__name__}")


def _hashable(v: Any) -> Hashable:
    if isinstance(v, np.ndarray):
        return tuple(v.reshape(-1).tolist()) if v.ndim else v.item()
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def _sub_matrix(g1: GraphArrays, g2: GraphArrays, costs: EditCosts,
                labelled: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Relabel cost matrix (n1, n2) and integer label codes (None when labels do not matter)."""
    if not labelled or costs.node_sub == 0.0:
        return np.zeros((g1.n, g2.n)), None, None
    vocab: dict[Hashable, int] = {}
    l1 = np.array([vocab.setdefault(v, len(vocab)) for v in g1.labels], dtype=np.int64)
    l2 = np.array([vocab.setdefault(v, len(vocab)) for v in g2.labels], dtype=np.int64)
    return costs.node_sub * (l1[:, None] != l2[None, :]).astype(np.float64), l1, l2


def mapping_cost(adj1: np.ndarray, adj2: np.ndarray, sub: np.ndarray, costs: EditCosts, f: np.ndarray) -> float:
    r"""Exact cost of the node map ``f`` (``f[u]`` = node of :math:`G_2` or ``-1`` for deletion); see :class:`EditCosts`.

    Args:
        adj1, adj2: 0/1 adjacency matrices :math:`(n_1, n_1)`, :math:`(n_2, n_2)`.
        sub: relabel costs :math:`(n_1, n_2)`.
        f: the map, integers of shape :math:`(n_1,)`.
    """
    n1, n2 = adj1.shape[0], adj2.shape[0]
    f = np.asarray(f, dtype=np.int64)
    mapped = f >= 0
    node = sub[np.flatnonzero(mapped), f[mapped]].sum() + costs.node_del * (n1 - mapped.sum()) \
        + costs.node_ins * (n2 - mapped.sum())
    a2p = np.zeros((n2 + 1, n2 + 1))
    a2p[:n2, :n2] = adj2
    fi = np.where(mapped, f, n2)
    kept = float((adj1 * a2p[np.ix_(fi, fi)]).sum() / 2)
    m1, m2 = adj1.sum() / 2, adj2.sum() / 2
    return float(node + costs.edge_del * (m1 - kept) + costs.edge_ins * (m2 - kept))


@dataclass
class GEDResult:
    """Result of :func:`exact_ged`.

    Attributes:
        value: the GED when ``optimal``; otherwise the best upper bound found (the cost of ``node_map``).
        lower_bound, upper_bound: proven bounds on the GED (equal when ``optimal``).
        node_map: an edit path's node operations as ``(u, v)`` pairs in the style of networkx: ``(u, v)`` maps
            node ``u`` of ``g1`` to ``v`` of ``g2``, ``(u, None)`` deletes ``u``, ``(None, v)`` inserts ``v``.
        optimal: True when the search finished (value proven optimal), False on timeout.
        nodes_expanded: search nodes whose bound was computed.
        seconds: wall time.
    """

    value: float
    lower_bound: float
    upper_bound: float
    node_map: list[tuple[Hashable | None, Hashable | None]]
    optimal: bool
    nodes_expanded: int = 0
    seconds: float = 0.0
    mapping: dict[Hashable, Hashable | None] = field(default_factory=dict, repr=False)


class _Timeout(Exception):
    pass


class _Search:
    """Branch and bound for GED(A -> B) with |A| <= |B| preferred (any sizes work)."""

    def __init__(self, a1: np.ndarray, a2: np.ndarray, sub: np.ndarray, costs: EditCosts, deadline: float | None,
                 sub_labels1: np.ndarray | None = None, sub_labels2: np.ndarray | None = None,
                 clock: Any = time.perf_counter):
        self.c = costs
        self.clock = clock
        n1, n2 = a1.shape[0], a2.shape[0]
        self.n1, self.n2 = n1, n2
        order = _search_order(a1)
        self.order = order
        self.A1 = a1[np.ix_(order, order)]
        self.A2 = a2
        self.A2p = np.zeros((n2 + 1, n2 + 1))  # index n2 stands for "deleted" (no edges)
        self.A2p[:n2, :n2] = a2
        self.S = sub[order]
        self.Sp = np.concatenate([self.S, np.full((n1, 1), costs.node_del)], axis=1)  # column n2 = delete
        self.m2 = a2.sum() / 2
        # per search depth k: inner degrees of the unmapped g1 nodes, their edges to mapped ones, inner edge count
        deg1 = self.A1.sum(1)
        self.d1 = [self.A1[k:, k:].sum(1) for k in range(n1 + 1)]
        self.p1 = [deg1[k:] - self.d1[k] for k in range(n1 + 1)]
        self.e1 = [0.5 * float(self.d1[k].sum()) for k in range(n1 + 1)]
        self.ar = np.arange(max(n1, 1))
        c = costs
        self.deg2 = a2.sum(1)
        self.m1 = float(a1.sum() / 2)
        # half the cheapest reconciliation of inner degrees a (g1) and b (g2), looked up as T[a, b]
        dmax = int(max(a1.sum(1).max(initial=0), self.deg2.max(initial=0))) + 1
        da = np.arange(dmax)[:, None] - np.arange(dmax)[None, :]
        self.T = 0.5 * (c.edge_del * np.maximum(da, 0) + c.edge_ins * np.maximum(-da, 0))
        self.d1i = [d.astype(np.int64) for d in self.d1]
        # per depth k: the deletion block of the LSAP matrix (row u may only use its own deletion column)
        self.Dk = []
        for k in range(n1 + 1):
            r = n1 - k
            blk = np.full((r, r), _BIG)
            blk[np.arange(r), np.arange(r)] = c.node_del + c.edge_del * (self.p1[k] + 0.5 * self.d1[k])
            self.Dk.append(blk)
        self.deadline = deadline
        self.expanded = 0
        self.ub = math.inf
        self.best: np.ndarray | None = None  # in search order: best[k] = image of order[k] (n2 = deleted)
        self.frames: list[list[Any]] = []
        self.tw2 = _twin_classes(a2, sub_labels2)
        tw1 = _twin_classes(self.A1, sub_labels1[order] if sub_labels1 is not None else None)
        self.prev_twin1 = np.full(n1, -1, dtype=np.int64)  # previous search position of the same g1 twin class
        last: dict[int, int] = {}
        for k in range(n1):
            c_ = int(tw1[k])
            self.prev_twin1[k] = last.get(c_, -1)
            last[c_] = k

    # ---- bound --------------------------------------------------------------------------------------------------
    def lsap_bound(self, k: int, img: np.ndarray, free: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Lower bound on the cost still to pay below a node where ``order[:k]`` map to ``img`` (n2 = deleted).

        LSAP over the unmapped g1 nodes (rows) and the free g2 nodes plus one private deletion column per row. Entry
        (u, v): relabel cost + exact cost of u's edges to mapped nodes against v's edges to their images + half the
        cheapest reconciliation of the inner degrees - v's insertion cost (paid by every free column left unused,
        added back as a constant). Raised to the node-count / inner-edge-count bound. Returns (bound, row-0 LSAP
        costs over the free nodes + [delete], LSAP image of each remaining node: a free node id or n2).
        """
        c = self.c
        r = self.n1 - k
        fr = np.flatnonzero(free)
        f = fr.size
        Q = self.A2p[fr[:, None], img[None, :]]  # (f, k) edges free -> images, in g2 (deleted images: 0)
        pq = self.A1[k:, :k] @ Q.T               # (r, f) cross edges that would be kept
        d2 = self.A2[fr[:, None], fr[None, :]].sum(1)   # inner degrees in g2
        q1 = self.deg2[fr] - d2                  # edges free -> images
        ins_v = c.node_ins + c.edge_ins * (q1 + 0.5 * d2)
        sub = (self.S[k:, fr] + self.T[self.d1i[k][:, None], d2.astype(np.int64)[None, :]]
               - (c.edge_del + c.edge_ins) * pq + (c.edge_del * self.p1[k])[:, None]
               - (c.node_ins + 0.5 * c.edge_ins * d2)[None, :])
        m = np.concatenate([sub, self.Dk[k]], axis=1)
        rows, cols = linear_sum_assignment(m)
        h = float(m[rows, cols].sum() + ins_v.sum())
        assign = np.where(cols < f, fr[np.minimum(cols, f - 1)] if f else 0, self.n2)
        row0 = m[0, :f + 1]
        # count bound: node numbers and inner edge numbers
        nb = c.node_del * (r - f) if r > f else c.node_ins * (f - r)
        e1, e2 = self.e1[k], 0.5 * float(d2.sum())
        eb = c.edge_del * (e1 - e2) if e1 > e2 else c.edge_ins * (e2 - e1)
        return max(h, nb + eb), row0, assign

    def leaf_cost(self, img: np.ndarray, free: np.ndarray) -> float:
        """Cost still to pay when every g1 node is mapped: insert the free nodes and their edges."""
        fr = np.flatnonzero(free)
        if fr.size == 0:
            return 0.0
        inner = self.A2[fr[:, None], fr[None, :]].sum() / 2
        cross = self.A2p[fr[:, None], img[None, :]].sum() if img.size else 0.0
        return float(self.c.node_ins * fr.size + self.c.edge_ins * (inner + cross))

    # ---- search -------------------------------------------------------------------------------------------------
    def run(self) -> tuple[float, float, np.ndarray, bool]:
        n1, n2 = self.n1, self.n2
        free = np.ones(n2, dtype=bool)
        img = np.zeros(0, dtype=np.int64)
        if n1 == 0:
            v = self.leaf_cost(img, free)
            return v, v, np.zeros(0, dtype=np.int64), True
        h0, _, assign = self.lsap_bound(0, img, free)
        self.ub = self._full_cost(assign)
        self.best = assign.copy()
        better = _improve_map(self.A1, self.A2p, self.Sp, self.c, assign)
        cost = self._full_cost(better)
        if cost < self.ub - 1e-9:
            self.ub, self.best = cost, better
        self.root_lb = h0
        if h0 >= self.ub - 1e-9:
            return self.ub, self.ub, self.best, True
        try:
            self._dfs(0, img, free, 0.0, (h0, assign))
        except _Timeout:
            # every unexplored map lies below an untried child of a node still on the stack
            return self.ub, max(min(self.timeout_lower_bound(), self.ub), min(h0, self.ub)), self.best, False
        return self.ub, self.ub, self.best, True

    def _full_cost(self, assign_order: np.ndarray) -> float:
        """Exact cost of a complete map in search order (``n2`` = deleted)."""
        n_mapped = int((assign_order < self.n2).sum())
        kept = float((self.A1 * self.A2p[assign_order[:, None], assign_order[None, :]]).sum()) / 2
        c = self.c
        return float(self.Sp[self.ar[:self.n1], assign_order].sum() + c.node_ins * (self.n2 - n_mapped)
                     + c.edge_del * (self.m1 - kept) + c.edge_ins * (self.m2 - kept))

    def _dfs(self, k: int, img: np.ndarray, free: np.ndarray, g: float, pre: tuple[float, np.ndarray] | None) -> None:
        self.expanded += 1
        if self.deadline is not None and (self.expanded & 31) == 0 and self.clock() > self.deadline:
            raise _Timeout
        if k == self.n1:
            total = g + self.leaf_cost(img, free)
            if total < self.ub - 1e-9:
                self.ub = total
                self.best = img.copy()
            return
        h, row0, assign = self.lsap_bound(k, img, free)
        if pre is not None:
            h = max(h, pre[0])
        if g + h >= self.ub - 1e-9:
            return
        # a complete map from the LSAP assignment improves the upper bound cheaply
        cand = np.concatenate([img, assign])
        cost = self._full_cost(cand)
        if cost < self.ub - 1e-9:
            self.ub = cost
            self.best = cand
            if g + h >= self.ub - 1e-9:
                return
        # children: map order[k] to a free g2 node (one per class of interchangeable twins) or delete it
        cands = self._children(k, img, free)
        a = self.A1[k, :k]
        B = self.A2p[:, img]                            # (n2+1, k)
        ba = B @ a
        inc = self.Sp[k] + self.c.edge_del * (a.sum() - ba) + self.c.edge_ins * (B.sum(1) - ba)
        # order: the LSAP choice first, then by the LSAP row cost (node + cross edges + half inner degree gap)
        fr = np.flatnonzero(free)
        col = np.full(self.n2 + 1, row0.size - 1)
        col[fr] = np.arange(fr.size)
        key = row0[col[cands]]
        key[cands == int(assign[0])] = -_BIG
        cands = cands[np.argsort(key, kind="stable")]
        frame = [k, img, free.copy(), g, cands, inc, 0]
        self.frames.append(frame)
        for pos, v in enumerate(cands):
            frame[6] = pos
            gc = g + inc[v]
            if gc >= self.ub - 1e-9:
                continue
            if v < self.n2:
                free[v] = False
            self._dfs(k + 1, np.append(img, v), free, gc, None)
            if v < self.n2:
                free[v] = True
            if g + h >= self.ub - 1e-9:
                break
        self.frames.pop()

    def _children(self, k: int, img: np.ndarray, free: np.ndarray) -> np.ndarray:
        """Candidate images of ``order[k]``, with symmetry breaking that keeps at least one optimal completion:

        - twins of g2 (same label, same neighbours) are interchangeable while both free: keep the smallest free one;
        - twins of g1: their images must increase along the search order (deletion counts as the largest image).
        """
        fr = np.flatnonzero(free)
        if fr.size:
            cls = self.tw2[fr]
            _, first = np.unique(cls, return_index=True)
            fr = fr[np.sort(first)]
        cands = np.concatenate([fr, [self.n2]])
        prev = self.prev_twin1[k]
        if prev >= 0:
            cands = cands[cands > img[prev]] if img[prev] < self.n2 else cands[cands == self.n2]
        return cands

    def timeout_lower_bound(self) -> float:
        """min(UB, bound of every subtree not yet explored): the untried children of every frame on the stack."""
        lb = self.ub
        last = len(self.frames) - 1
        for d, (k, img, free, g, cands, inc, pos) in enumerate(self.frames):
            for v in cands[pos + (0 if d == last else 1):]:
                gc = g + inc[v]
                if gc >= lb:
                    continue
                img_c = np.append(img, v)
                free_c = free.copy()
                if v < self.n2:
                    free_c[v] = False
                if k + 1 == self.n1:
                    hc = self.leaf_cost(img_c, free_c)
                else:
                    hc = self.lsap_bound(k + 1, img_c, free_c)[0]
                lb = min(lb, gc + hc)
        return lb


def _improve_map(a1: np.ndarray, a2p: np.ndarray, sp: np.ndarray, costs: EditCosts, f: np.ndarray,
                 max_iter: int = 100) -> np.ndarray:
    """Steepest-descent local search on a node map (upper-bound heuristic): repeatedly apply the best of all
    image swaps between two nodes of g1 and all moves of one node to an unused node of g2 or to deletion.

    ``f[u]`` in ``0..n2`` (``n2`` = deleted); ``a2p`` is g2's adjacency padded with a zero row/column ``n2``; ``sp``
    is (n1, n2 + 1) node costs with the deletion cost in column ``n2``. Every accepted move lowers the exact cost.
    """
    n1 = a1.shape[0]
    n2 = a2p.shape[0] - 1
    if n1 < 1:
        return f
    f = f.copy()
    w = costs.edge_del + costs.edge_ins
    ar = np.arange(n1)
    for _ in range(max_iter):
        K = a1 @ a2p[:, f].T                      # K[u, x]: edges of u kept if u sat at x (others fixed)
        Kf = K[:, f]
        dk = K[ar, f]
        spf = sp[:, f]
        ds = sp[ar, f]
        bff = a2p[np.ix_(f, f)]
        # swaps of the images of u and u'
        dkept = Kf + Kf.T - dk[:, None] - dk[None, :] + 2 * a1 * bff
        dswap = spf + spf.T - ds[:, None] - ds[None, :] - w * dkept
        best_swap = np.unravel_index(int(np.argmin(dswap)), dswap.shape)
        v_swap = dswap[best_swap]
        # moves of u to an unused node of g2 or to deletion
        used = np.zeros(n2 + 1, dtype=bool)
        used[f[f < n2]] = True
        xs = np.flatnonzero(~used)                # includes n2 (deletion)
        dmapped = (xs[None, :] < n2).astype(np.float64) - (f[:, None] < n2)
        dmove = sp[:, xs] - ds[:, None] - costs.node_ins * dmapped - w * (K[:, xs] - dk[:, None])
        dmove[f[:, None] == xs[None, :]] = 0.0
        best_move = np.unravel_index(int(np.argmin(dmove)), dmove.shape)
        v_move = dmove[best_move]
        if min(v_swap, v_move) > -1e-9:
            break
        if v_swap <= v_move:
            u, u2 = best_swap
            f[u], f[u2] = f[u2], f[u]
        else:
            u, j = best_move
            f[u] = xs[j]
    return f


def _twin_classes(adj: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Class id per node: nodes with the same label and the same open neighbourhood share a class.

    Swapping two such twins is an automorphism of the graph, so they are interchangeable in any node map.
    """
    n = adj.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows = adj.astype(np.float64)
    if labels is not None:
        rows = np.concatenate([rows, labels.reshape(-1, 1).astype(np.float64)], axis=1)
    _, inv = np.unique(rows, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def _search_order(adj: np.ndarray) -> np.ndarray:
    """Nodes by decreasing degree, each next node the one with most edges to those already chosen."""
    n = adj.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    deg = adj.sum(1)
    chosen = np.zeros(n, dtype=bool)
    conn = np.zeros(n)
    out = []
    for _ in range(n):
        score = np.where(chosen, -np.inf, conn * (n + 1) + deg)
        u = int(np.argmax(score))
        out.append(u)
        chosen[u] = True
        conn += adj[u]
    return np.array(out, dtype=np.int64)


def exact_ged(g1: Any, g2: Any, costs: EditCosts | None = None, *, timeout: float | None = None,
              node_label: str | None = None, timeout_clock: str = "wall") -> GEDResult:
    r"""Exact graph edit distance :math:`\mathrm{GED}(G_1 \to G_2)` with general edit costs, by depth-first branch
    and bound with LSAP lower bounds (Riesen & Bunke's bipartite bound, exact on the mapped part), in the setting of the
    `"Graph Edit Distance with General Costs Using Neural Set Divergence" <https://arxiv.org/abs/2409.17687>`_ paper.

    .. math::
        \mathrm{GED}(G_1 \to G_2) = \min_{\pi} \; c(\pi)

    over node maps :math:`\pi: V_1 \to V_2 \cup \{\varepsilon\}` with :math:`c(\pi)` as in :class:`EditCosts`
    (deleting a node of :math:`G_1` costs ``node_del``, inserting a node of :math:`G_2` costs ``node_ins``).
    The search branches over the nodes of the smaller graph (swapping the graphs and
    :meth:`EditCosts.swapped` when :math:`|V_1| > |V_2|`, which leaves the value unchanged).

    Args:
        g1 (networkx.Graph or torch_geometric.data.Data): source graph, undirected and simple.
        g2 (networkx.Graph or torch_geometric.data.Data): target graph.
        costs (EditCosts, optional): edit costs. (default: :obj:`graphalign.UNIT`)
        timeout (float, optional): seconds; on expiry the best bounds are returned with ``optimal=False``.
            (default: :obj:`None`, no limit)
        node_label (str, optional): node attribute holding the label (networkx node attribute, or a ``Data``
            attribute with one row per node, e.g. ``"x"``); relabelling costs ``costs.node_sub``.
            (default: :obj:`None`, unlabelled)

    Returns:
        GEDResult: ``value``, ``lower_bound``, ``upper_bound``, ``node_map``, ``optimal``.
    """
    from .costs import UNIT

    costs = UNIT if costs is None else costs
    if not isinstance(costs, EditCosts):
        raise TypeError(f"costs must be an EditCosts, got {type(costs).__name__}")
    if timeout is not None and not (timeout > 0):
        raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    if timeout_clock not in clocks:
        raise ValueError(f"timeout_clock must be 'wall' or 'cpu', got {timeout_clock!r}")
    clock = clocks[timeout_clock]
    t0 = time.perf_counter()
    c0 = clock()
    a = as_graph_arrays(g1, node_label, name="g1")
    b = as_graph_arrays(g2, node_label, name="g2")
    labelled = node_label is not None
    swap = a.n > b.n
    if swap:
        a, b, c = b, a, costs.swapped()
    else:
        c = costs
    sub, la, lb_ = _sub_matrix(a, b, c, labelled)
    s = _Search(a.adj, b.adj, sub, c, None if timeout is None else c0 + timeout, la, lb_, clock)
    ub, lb, best, optimal = s.run()
    # best[k] is the image of node order[k] of the branching graph a (b.n = deleted)
    f = np.full(a.n, -1, dtype=np.int64)
    if a.n:
        f[s.order] = np.where(best >= b.n, -1, best)
    value = mapping_cost(a.adj, b.adj, sub, c, f)
    if abs(value - ub) > 1e-6 * max(1.0, abs(ub)):  # internal consistency: the map must cost what the search says
        raise RuntimeError(f"internal error: map cost {value} != search upper bound {ub}")
    pairs: list[tuple[Hashable | None, Hashable | None]] = []
    used = set()
    for i in range(a.n):
        if f[i] >= 0:
            pairs.append((a.nodes[i], b.nodes[f[i]]))
            used.add(int(f[i]))
        else:
            pairs.append((a.nodes[i], None))
    pairs.extend((None, b.nodes[j]) for j in range(b.n) if j not in used)
    if swap:
        pairs = [(v, u) for u, v in pairs]
        pairs.sort(key=lambda p: (p[0] is None,))
    mapping = {u: v for u, v in pairs if u is not None}
    lb = min(lb, value)
    return GEDResult(value=float(value), lower_bound=float(lb), upper_bound=float(value), node_map=pairs,
                     optimal=bool(optimal), nodes_expanded=s.expanded, seconds=time.perf_counter() - t0,
                     mapping=mapping)
