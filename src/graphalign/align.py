r"""Certified GED predictions: the neural estimate of :class:`~graphalign.models.GraphEdX` next to bounds that hold
for sure.

GraphEdX's soft node alignment :math:`P` (arXiv 2409.17687) is rounded to a permutation by the Hungarian method
(:func:`aligncore.ot.hungarian`), read as a node map (a node of :math:`G_1` matched to a dummy is deleted, a node of
:math:`G_2` matched to a dummy is inserted), and turned into an explicit edit path (:func:`graphalign.edit_path`).
Any edit path's cost is an upper bound on the GED, so

.. math::
    \mathrm{lower}_{\mathrm{LSAP}}(G_1, G_2) \;\le\; \mathrm{GED}(G_1 \to G_2) \;\le\; c(\text{path of } \mathrm{round}(P))

with the lower bound from :func:`graphalign.ged_bounds`, whatever the network predicts. With ``refine=True``
(default) the rounded map is first improved by pairwise swaps of its assignments (first improvement, exact costs by
:func:`graphalign.mapping_cost`) until no swap helps: still a feasible edit path, so still certified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aligncore.ot import hungarian

from .bounds import ged_bounds
from .edit_path import EditOp, edit_path, path_cost
from .exact import as_graph_arrays, mapping_cost
from .models import GraphEdX, encode_pairs

__all__ = ["AlignResult", "align"]


@dataclass
class AlignResult:
    """What :func:`align` returns.

    Attributes:
        ged: the network's predicted GED.
        soft: soft node alignment, :math:`(m, m)` with :math:`m = \\max(n_1, n_2)`: rows are the nodes of ``g1``
            (in ``g1.nodes()`` order) then dummies, columns the nodes of ``g2`` then dummies.
        hard: the Hungarian rounding of ``soft`` (0/1, same shape).
        node_map: ``{u: v or None}`` from node ids of ``g1`` to node ids of ``g2`` (``None``: deleted).
        edit_path: the edit operations of ``node_map`` (:func:`graphalign.edit_path`).
        upper: their total cost: a certified upper bound on the GED.
        upper_rounded: the cost of the plain Hungarian rounding (before ``refine``), also an upper bound.
        lower: the LSAP lower bound of :func:`graphalign.ged_bounds` (certified).
        bipartite_upper: the upper bound of :func:`graphalign.ged_bounds` (its own node map), for comparison.
    """

    ged: float
    soft: Tensor
    hard: Tensor
    node_map: dict[Any, Any]
    edit_path: list[EditOp]
    upper: float
    lower: float
    bipartite_upper: float
    upper_rounded: float

    @property
    def best_upper(self) -> float:
        """The tighter of the two certified upper bounds."""
        return min(self.upper, self.bipartite_upper)


def _refine(perm: np.ndarray, a: Any, b: Any, sub: np.ndarray, costs: Any, max_passes: int = 50) -> tuple[np.ndarray, float]:
    """Pairwise-swap local search on a padded assignment ``perm`` (row u -> column perm[u]; rows >= n1 and columns
    >= n2 are dummies); returns the improved assignment and its exact cost."""
    n1, n2 = a.n, b.n

    def cost(p: np.ndarray) -> float:
        f = p[:n1].copy()
        f[f >= n2] = -1
        return mapping_cost(a.adj, b.adj, sub, costs, f)

    best = cost(perm)
    m = len(perm)
    for _ in range(max_passes):
        improved = False
        for x in range(min(n1, m)):
            for y in range(x + 1, m):
                if perm[x] >= n2 and perm[y] >= n2:
                    continue  # both deleted / dummy: nothing changes
                perm[x], perm[y] = perm[y], perm[x]
                c = cost(perm)
                if c < best - 1e-12:
                    best, improved = c, True
                else:
                    perm[x], perm[y] = perm[y], perm[x]
        if not improved:
            break
    return perm, best


@torch.no_grad()
def align(model: GraphEdX, g1: Any, g2: Any, *, refine: bool = True) -> AlignResult:
    """Predicted GED of ``g1 -> g2`` with GraphEdX, its soft and hard node alignments, the edit path of the hard one
    and certified bounds (see the module docstring).

    Args:
        model (GraphEdX): a (trained) model; its ``costs`` and ``node_label`` define the GED.
        g1, g2: networkx graphs (or torch_geometric ``Data``).
        refine (bool, optional): improve the rounded map by pairwise swaps (see the module docstring).
            (default: :obj:`True`)
    """
    if not isinstance(model, GraphEdX):
        raise TypeError(f"align needs a GraphEdX model (it aligns nodes), got {type(model).__name__}")
    a = as_graph_arrays(g1, model.node_label, name="g1")
    b = as_graph_arrays(g2, model.node_label, name="g2")
    n1, n2 = a.n, b.n
    m = max(n1, n2)
    was = model.training
    model.eval()
    try:
        batch = encode_pairs([(g1, g2)], model.node_label, model.label_vocab).to(model.cost_vector.device)
        out = model.compute(batch)
    finally:
        model.train(was)
    soft = out.plan[0, :m, :m].float().cpu()
    hard = hungarian(soft) if m > 0 else soft.clone()
    perm = hard.argmax(-1).numpy().astype(np.int64) if m > 0 else np.zeros(0, dtype=np.int64)
    c = model.costs
    if model.node_label is not None and c.node_sub != 0:
        sub = c.node_sub * (a.labels[:, None] != b.labels[None, :]).astype(np.float64)
    else:
        sub = np.zeros((n1, n2))
    f0 = perm[:n1].copy()
    f0[f0 >= n2] = -1
    rounded = mapping_cost(a.adj, b.adj, sub, c, f0)
    if refine and m > 1:
        perm, _ = _refine(perm.copy(), a, b, sub, c)
    node_map = {a.nodes[u]: (b.nodes[int(perm[u])] if perm[u] < n2 else None) for u in range(n1)}
    ops = edit_path(g1, g2, node_map, c, node_label=model.node_label)
    bounds = ged_bounds([(g1, g2)], c, node_label=model.node_label)
    return AlignResult(ged=float(out.ged[0]), soft=soft, hard=hard, node_map=node_map, edit_path=ops,
                       upper=path_cost(ops), lower=float(bounds.lower[0]), bipartite_upper=float(bounds.upper[0]),
                       upper_rounded=rounded)
