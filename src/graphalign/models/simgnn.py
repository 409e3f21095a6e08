r"""SimGNN baseline, from the `"SimGNN: A Neural Network Approach to Fast Graph Similarity Computation"
<https://arxiv.org/abs/1808.05689>`_ paper (Bai et al., WSDM 2019), regressing GED directly as in the GraphEdX paper's
comparisons (arXiv 2409.17687).

GCN node embeddings :math:`H`; attention pooling :math:`g = \sum_u \sigma(h_u^\top \tanh(\bar h W)) h_u`; a neural
tensor network :math:`s_k = \mathrm{ReLU}(g^\top W_k g' + V [g; g'] + b_k)`, :math:`k = 1..K`; the normalised
histogram of the node-node similarities :math:`\sigma(H H'^\top)` (not differentiated, as in the paper); an MLP on
their concatenation gives the prediction. It learns the costs only from its training labels.
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

__all__ = ["SimGNNConfig", "SimGNN"]


@dataclass
class SimGNNConfig:
    """Hyper-parameters of :class:`SimGNN` (defaults from the paper)."""

    gcn_dims: tuple[int, ...] = field((64, 32, 16), help="GCN layer sizes (SimGNN: 64, 32, 16)")
    tensor_neurons: int = field(16, help="NTN slices K (SimGNN: 16)")
    bins: int = field(16, help="histogram bins of node-node similarities (SimGNN: 16; 0 turns it off)")
    hidden: int = field(16, help="hidden size of the scoring MLP")


class SimGNN(GEDModel):
    r"""SimGNN GED regressor (see the module docstring).

    Shapes:
        - input: :class:`~graphalign.models.PairBatch`; output: :math:`(B,)`
    """

    def __init__(self, config: SimGNNConfig | None = None, costs: EditCosts | None = None,
                 node_label: str | None = None, label_vocab: Sequence[str] | None = None) -> None:
        super().__init__(costs, node_label, label_vocab)
        cfg = config or SimGNNConfig()
        self.config = cfg
        dims = [self.in_dim, *cfg.gcn_dims]
        self.gcn = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        d, K = dims[-1], cfg.tensor_neurons
        self.att = nn.Linear(d, d, bias=False)
        self.ntn_w = nn.Parameter(torch.randn(K, d, d) * (1.0 / d))
        self.ntn_v = nn.Linear(2 * d, K)
        self.mlp = nn.Sequential(nn.Linear(K + cfg.bins, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def node_embeddings(self, x: Tensor, adj: Tensor, mask: Tensor) -> Tensor:
        keep = mask.to(x.dtype)
        a = adj + torch.diag_embed(keep)  # self loops on real nodes
        dinv = a.sum(-1).clamp(min=1).rsqrt()
        a = dinv.unsqueeze(-1) * a * dinv.unsqueeze(-2)
        h = x
        for k, lin in enumerate(self.gcn):
            h = a @ lin(h)
            if k < len(self.gcn) - 1:
                h = torch.relu(h)
        return h * keep.unsqueeze(-1)

    def pool(self, h: Tensor, mask: Tensor) -> Tensor:
        keep = mask.to(h.dtype).unsqueeze(-1)
        mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        ctx = torch.tanh(self.att(mean))
        w = torch.sigmoid((h * ctx.unsqueeze(1)).sum(-1, keepdim=True)) * keep
        return (w * h).sum(1)

    def forward(self, batch: PairBatch) -> Tensor:
        B = len(batch)
        mask = torch.cat([batch.mask1, batch.mask2])
        h = self.node_embeddings(torch.cat([batch.x1, batch.x2]), torch.cat([batch.adj1, batch.adj2]), mask)
        g = self.pool(h, mask)
        g1, g2 = g[:B], g[B:]
        bil = torch.einsum("bi,kij,bj->bk", g1, self.ntn_w, g2)
        feats = [torch.relu(bil + self.ntn_v(torch.cat([g1, g2], -1)))]
        if self.config.bins > 0:
            with torch.no_grad():
                sim = torch.sigmoid(h[:B] @ h[B:].transpose(1, 2))
                both = batch.mask1[:, :, None] & batch.mask2[:, None, :]
                idx = (sim * self.config.bins).long().clamp(max=self.config.bins - 1)
                hist = torch.zeros(B, self.config.bins, dtype=h.dtype, device=h.device)
                hist.scatter_add_(1, idx.reshape(B, -1), both.reshape(B, -1).to(h.dtype))
                hist = hist / hist.sum(-1, keepdim=True).clamp(min=1)
            feats.append(hist)
        return self.mlp(torch.cat(feats, -1)).squeeze(-1)
