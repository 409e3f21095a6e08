r"""GMN-Embed baseline: the embedding model of the
`"Graph Matching Networks for Learning the Similarity of Graph Structured Objects" <https://arxiv.org/abs/1904.12787>`_
paper, used as a GED regressor in the GraphEdX paper's comparisons (arXiv 2409.17687).

Each graph is encoded alone (:class:`~graphalign.models.encoder.GMNEncoder`) and pooled by GMN's gated sum,
:math:`g = \mathrm{MLP}\big(\sum_u \sigma(W_g h_u) \odot W h_u\big)`; the distance is the asymmetric hinge norm of the
reference baselines, with deletion and insertion weights averaged over nodes and edges:

.. math::
    \widehat{\mathrm{GED}}(G \to G') = \tfrac{c^V_{\mathrm{del}} + c^E_{\mathrm{del}}}{2} \|[g - g']_+\|_1
    + \tfrac{c^V_{\mathrm{ins}} + c^E_{\mathrm{ins}}}{2} \|[g' - g]_+\|_1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aligncore.config import field

from ..costs import EditCosts
from .base import GEDModel
from .batch import PairBatch
from .encoder import GMNEncoder

__all__ = ["GMNEmbedConfig", "GMNEmbed"]


@dataclass
class GMNEmbedConfig:
    """Hyper-parameters of :class:`GMNEmbed`."""

    node_dim: int = field(10, help="node state size (as GraphEdX's encoder)")
    prop_steps: int = field(5, help="message-passing steps")
    graph_dim: int = field(20, help="graph embedding size")


class GMNEmbed(GEDModel):
    r"""GMN-Embed GED regressor (see the module docstring).

    Shapes:
        - input: :class:`~graphalign.models.PairBatch`; output: :math:`(B,)`
    """

    def __init__(self, config: GMNEmbedConfig | None = None, costs: EditCosts | None = None,
                 node_label: str | None = None, label_vocab: Sequence[str] | None = None) -> None:
        super().__init__(costs, node_label, label_vocab)
        cfg = config or GMNEmbedConfig()
        self.config = cfg
        self.encoder = GMNEncoder(self.in_dim, cfg.node_dim, 2 * cfg.node_dim, cfg.prop_steps)
        self.gate = nn.Linear(cfg.node_dim, cfg.graph_dim)
        self.value = nn.Linear(cfg.node_dim, cfg.graph_dim)
        self.out = nn.Sequential(nn.Linear(cfg.graph_dim, cfg.graph_dim), nn.ReLU(),
                                 nn.Linear(cfg.graph_dim, cfg.graph_dim))

    def embed(self, x: Tensor, adj: Tensor, mask: Tensor) -> Tensor:
        """Graph embeddings :math:`(B, \\text{graph\\_dim})`."""
        h = self.encoder(x, adj, mask)
        g = (torch.sigmoid(self.gate(h)) * self.value(h) * mask.unsqueeze(-1).to(h.dtype)).sum(1)
        return self.out(g)

    def forward(self, batch: PairBatch) -> Tensor:
        B = len(batch)
        g = self.embed(torch.cat([batch.x1, batch.x2]), torch.cat([batch.adj1, batch.adj2]),
                       torch.cat([batch.mask1, batch.mask2]))
        z = g[:B] - g[B:]
        node_del, node_ins, edge_del, edge_ins, _ = self.cost_vector.to(z.dtype).unbind()
        return (node_del + edge_del) / 2 * torch.relu(z).sum(-1) + (node_ins + edge_ins) / 2 * torch.relu(-z).sum(-1)
