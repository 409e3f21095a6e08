r"""Fast GED bounds without search: one linear sum assignment per pair, in the manner of the
`"Approximate graph edit distance computation by means of bipartite graph matching"
<https://doi.org/10.1016/j.imavis.2008.04.004>`_ paper (Riesen & Bunke, 2009).

The LSAP cost of mapping :math:`u \to v` is the node cost plus half the cheapest way to reconcile their degrees
(:math:`\tfrac12 (c^E_{\mathrm{del}} (d_u - d_v)_+ + c^E_{\mathrm{ins}} (d_v - d_u)_+)`), deletion and insertion cost
the node cost plus half their incident edges. Every edit path pays at least its assignment's LSAP cost (each edge is
counted from both end points), so the LSAP optimum is a **lower bound**; the exact cost of the optimal assignment,
read as a node map, is an **upper bound**. The lower bound is also raised to the node-count / edge-count bound

.. math::
    c^V_{\mathrm{del}} (n_1 - n_2)_+ + c^V_{\mathrm{ins}} (n_2 - n_1)_+ + c^E_{\mathrm{del}} (m_1 - m_2)_+
    + c^E_{\mathrm{ins}} (m_2 - m_1)_+ .
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .costs import UNIT, EditCosts
from .exact import _improve_map, _Search, _sub_matrix, as_graph_arrays, mapping_cost

__all__ = ["GEDBounds", "ged_bounds"]


@dataclass
class GEDBounds:
    """Bounds for a batch of pairs: ``lower`` and ``upper`` of shape :math:`(P,)` (float64), and ``maps`` (the node
    map whose cost is ``upper``, as ``f[u]`` = node index of :math:`G_2` or ``-1``, in the graphs' node order)."""

    lower: np.ndarray
    upper: np.ndarray
    maps: list[np.ndarray]


def ged_bounds(pairs: Sequence[tuple[Any, Any]], costs: EditCosts | None = None, *,
               node_label: str | None = None, improve: bool = True) -> GEDBounds:
    r"""Lower and upper bounds on :math:`\mathrm{GED}(G_1 \to G_2)` for many pairs, without search.

    Args:
        pairs: a sequence of ``(g1, g2)`` (networkx graphs or torch_geometric ``Data``).
        costs (EditCosts, optional): edit costs. (default: :obj:`graphalign.UNIT`)
        node_label (str, optional): node attribute holding the label. (default: :obj:`None`)
        improve (bool, optional): refine the LSAP map by local search (image swaps and moves, steepest descent)
            before costing it; a tighter upper bound for a little more time. (default: :obj:`True`)

    Returns:
        GEDBounds: ``lower <= GED <= upper`` elementwise.
    """
    costs = UNIT if costs is None else costs
    lo = np.zeros(len(pairs))
    hi = np.zeros(len(pairs))
    maps = []
    for p, (g1, g2) in enumerate(pairs):
        a = as_graph_arrays(g1, node_label, name=f"pairs[{p}][0]")
        b = as_graph_arrays(g2, node_label, name=f"pairs[{p}][1]")
        sub, _, _ = _sub_matrix(a, b, costs, node_label is not None)
        s = _Search(a.adj, b.adj, sub, costs, None)
        free = np.ones(b.n, dtype=bool)
        img = np.zeros(0, dtype=np.int64)
        if a.n == 0:
            lo[p] = hi[p] = s.leaf_cost(img, free)
            maps.append(np.zeros(0, dtype=np.int64))
            continue
        h, _, assign = s.lsap_bound(0, img, free)
        if improve:
            assign = _improve_map(s.A1, s.A2p, s.Sp, costs, assign)
        f = np.full(a.n, -1, dtype=np.int64)
        f[s.order] = np.where(assign >= b.n, -1, assign)
        hi[p] = mapping_cost(a.adj, b.adj, sub, costs, f)
        lo[p] = min(h, hi[p])
        maps.append(f)
    return GEDBounds(lo, hi, maps)
