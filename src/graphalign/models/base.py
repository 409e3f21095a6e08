"""What every neural GED estimator of :mod:`graphalign.models` shares: the edit costs it answers for, the node-label
vocabulary of its input features, and batched prediction on explicit graph pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..costs import UNIT, EditCosts
from .batch import PairBatch, encode_pairs

__all__ = ["GEDModel"]


class GEDModel(nn.Module):
    """Base class: ``forward(batch: PairBatch) -> (B,)`` predicted :math:`\\mathrm{GED}(G_1 \\to G_2)`.

    Args:
        costs (EditCosts, optional): the edit costs the model predicts for; kept in the buffer ``cost_vector``
            (node_del, node_ins, edge_del, edge_ins, node_sub), so a checkpoint carries them. (default: UNIT)
        node_label (str, optional): node attribute holding labels (:obj:`None`: unlabelled). (default: :obj:`None`)
        label_vocab (list, optional): label vocabulary of the one-hot node features. (default: :obj:`None`)
    """

    def __init__(self, costs: EditCosts | None = None, node_label: str | None = None,
                 label_vocab: Sequence[str] | None = None) -> None:
        super().__init__()
        if node_label is not None and label_vocab is None:
            raise ValueError("a labelled model (node_label given) needs label_vocab")
        self.node_label = node_label
        self.label_vocab = None if label_vocab is None else [str(v) for v in label_vocab]
        self.register_buffer("cost_vector", torch.zeros(5))
        self.set_costs(UNIT if costs is None else costs)

    @property
    def in_dim(self) -> int:
        """Node feature size: one-hot labels plus an out-of-vocabulary column, or the constant 1."""
        return 1 if self.label_vocab is None else len(self.label_vocab) + 1

    @property
    def labelled(self) -> bool:
        return self.label_vocab is not None

    @property
    def costs(self) -> EditCosts:
        return EditCosts(*[float(v) for v in self.cost_vector.tolist()])

    def set_costs(self, costs: EditCosts) -> None:
        """Answer for other edit costs from now on (the weights stay as they are)."""
        c = costs
        self.cost_vector.copy_(torch.tensor([c.node_del, c.node_ins, c.edge_del, c.edge_ins, c.node_sub],
                                            dtype=self.cost_vector.dtype))

    def forward(self, batch: PairBatch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, pairs: Sequence[tuple[Any, Any]] | PairBatch, *, batch_size: int = 256) -> Tensor:
        """Predicted GED of explicit ``(g1, g2)`` pairs (networkx graphs or ``Data``), in eval mode, batched.

        Returns:
            Tensor: :math:`(P,)` float predictions, on the CPU.
        """
        was = self.training
        self.eval()
        dev = self.cost_vector.device
        try:
            if isinstance(pairs, PairBatch):
                return self(pairs.to(dev)).cpu()
            out = [self(encode_pairs(pairs[a:a + batch_size], self.node_label, self.label_vocab).to(dev)).cpu()
                   for a in range(0, len(pairs), batch_size)]
            return torch.cat(out) if out else torch.zeros(0)
        finally:
            self.train(was)
