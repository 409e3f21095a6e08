r"""The non-neural baseline: the bipartite (LSAP) bounds of :func:`graphalign.ged_bounds`, in the manner of the
`"Approximate graph edit distance computation by means of bipartite graph matching"
<https://doi.org/10.1016/j.imavis.2008.04.004>`_ paper (Riesen & Bunke, 2009), behind the same ``forward(PairBatch)``
interface as the neural estimators so that the trainer and the benchmark evaluate it the same way.

Its prediction is the cost of the node map of the optimal assignment (an upper bound on GED, ``bound="upper"``), or the
LSAP lower bound (``bound="lower"``). It has no parameters and needs no training.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import torch
from torch import Tensor

from ..bounds import ged_bounds
from ..costs import EditCosts
from .base import GEDModel
from .batch import PairBatch

__all__ = ["Bipartite", "batch_to_graphs"]


def batch_to_graphs(x: Tensor, adj: Tensor, n: Tensor, label_vocab: Sequence[str] | None,
                    node_label: str | None) -> list[nx.Graph]:
    """The networkx graphs (nodes ``0..n-1``) of one side of a :class:`PairBatch`; labels from the one-hot features
    (the out-of-vocabulary column becomes the label ``"<unk>"``)."""
    out = []
    x, adj, n = x.detach().cpu(), adj.detach().cpu(), n.cpu()
    for k in range(len(n)):
        m = int(n[k])
        g = nx.Graph()
        if node_label is not None and label_vocab is not None:
            cols = x[k, :m].argmax(-1).tolist()
            names = [*label_vocab, "<unk>"]
            g.add_nodes_from((u, {node_label: names[c]}) for u, c in enumerate(cols))
        else:
            g.add_nodes_from(range(m))
        r, c = torch.nonzero(torch.triu(adj[k, :m, :m], 1), as_tuple=True)
        g.add_edges_from(zip(r.tolist(), c.tolist(), strict=True))
        out.append(g)
    return out


class Bipartite(GEDModel):
    """Bipartite-matching GED estimate (see the module docstring).

    Args:
        costs (EditCosts, optional): edit costs. (default: UNIT)
        node_label, label_vocab: as for the neural models.
        bound (str): ``"upper"`` (a feasible edit path's cost) or ``"lower"``. (default: ``"upper"``)
    """

    def __init__(self, costs: EditCosts | None = None, node_label: str | None = None,
                 label_vocab: Sequence[str] | None = None, bound: str = "upper") -> None:
        super().__init__(costs, node_label, label_vocab)
        if bound not in ("upper", "lower"):
            raise ValueError(f"bound must be 'upper' or 'lower', got {bound!r}")
        self.bound = bound

    def forward(self, batch: PairBatch) -> Tensor:
        g1 = batch_to_graphs(batch.x1, batch.adj1, batch.n1, self.label_vocab, self.node_label)
        g2 = batch_to_graphs(batch.x2, batch.adj2, batch.n2, self.label_vocab, self.node_label)
        b = ged_bounds(list(zip(g1, g2, strict=True)), self.costs, node_label=self.node_label)
        val = b.upper if self.bound == "upper" else b.lower
        return torch.as_tensor(val, dtype=batch.x1.dtype, device=batch.x1.device)
