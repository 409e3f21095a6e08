r"""Baselines for Alt-MoE connectors, with the same interface as
:class:`~mmalign.altmoe.connector.AltMoEConnector` (``forward(x, src, tgt)`` and ``key(y, tgt)``):

- :class:`LinearProjection`: one linear map per modality into a shared space, trained CLIP-style
  (`"Learning Transferable Visual Models From Natural Language Supervision" <https://arxiv.org/abs/2103.00020>`_):
  :math:`q = W_s x`, :math:`k = W_t y`, scored by cosine; no regression head, no router;
- :func:`mlp_connector`: the Alt-MoE connector with a single always-on MLP expert (no routing) whose hidden
  width is :math:`k \times` the MoE expert width, so the per-input compute matches the MoE with top-:math:`k`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .connector import AltMoEConnector, ConnectorOutput, TokenBatch, source_features

__all__ = ["LinearProjection", "mlp_connector"]


class LinearProjection(nn.Module):
    r"""CLIP-style linear projections :math:`z_m = W_m x_m` of every modality into a shared :math:`d`-space.

    Args:
        dims (dict[str, int] or list[int]): each modality's embedding width.
        latent (int, optional): shared width :math:`d`. (default: :obj:`256`)

    Shapes:
        - x: :math:`(N, d_s)` (or a :class:`~mmalign.altmoe.connector.TokenBatch`: its mean is used); query and
          key: :math:`(N, d)`
    """

    def __init__(self, dims: dict[str, int] | list[int], latent: int = 256) -> None:
        super().__init__()
        self.names = list(dims) if isinstance(dims, dict) else [str(i) for i in range(len(dims))]
        self.dims = list(dims.values()) if isinstance(dims, dict) else list(dims)
        if len(self.dims) < 2:
            raise ValueError(f"needs at least two modalities, got {len(self.dims)}")
        self.latent = latent
        self.proj = nn.ModuleList(nn.Linear(w, latent) for w in self.dims)

    def _index(self, m: int | str) -> int:
        return self.names.index(m) if isinstance(m, str) else int(m)

    def forward(self, x: Tensor | TokenBatch, src: int | str, tgt: int | str, *,
                pred: bool = True) -> ConnectorOutput:
        s = self._index(src)
        feats, tokens = source_features(x, self.dims[s], self.names[s])
        # a linear map of the tokens' mean is the mean of the mapped tokens: tokens change nothing here
        q = self.proj[s](tokens.mean() if tokens is not None else feats)
        return ConnectorOutput(q, None, torch.zeros((), device=q.device))

    def key(self, y: Tensor, tgt: int | str) -> Tensor:
        t = self._index(tgt)
        if y.dim() != 2 or y.shape[1] != self.dims[t]:
            raise ValueError(f"y must have shape (N, {self.dims[t]}), got {tuple(y.shape)}")
        return self.proj[t](y)


def mlp_connector(dims: dict[str, int] | list[int], latent: int = 256, hidden: int = 512, top_k: int = 4, *,
                  dropout: float = 0.1, multi_gate: bool = False) -> AltMoEConnector:
    """The single-MLP connector: :class:`AltMoEConnector` with one expert of hidden width ``top_k * hidden``
    (its router is then the constant gate 1); ``multi_gate`` gives it the two objective passes too."""
    return AltMoEConnector(dims, latent, hidden * top_k, n_experts=1, top_k=1, dropout=dropout,
                           multi_gate=multi_gate)
