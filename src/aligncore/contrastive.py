"""Contrastive objectives shared by the alignment packages (InfoNCE with in-batch negatives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(q: Tensor, k: Tensor, tau: float) -> Tensor:
    r"""One-way InfoNCE with in-batch negatives, from
    `"Representation Learning with Contrastive Predictive Coding" <https://arxiv.org/abs/1807.03748>`_:

    .. math::
        \mathcal L(q, k) = -\frac1B \sum_i \log \frac{\exp(S_{ii})}{\sum_j \exp(S_{ij})}, \qquad
        S = \frac{\bar q\, \bar k^\top}{\tau}

    with :math:`\bar q, \bar k` the L2-normalised rows (cosine similarity).

    Args:
        q (Tensor): queries; row :math:`i` is paired with row :math:`i` of :obj:`k`.
        k (Tensor): keys.
        tau (float): temperature :math:`\tau > 0`.

    Shapes:
        - q, k: :math:`(B, d)`; output: scalar
    """
    if q.shape != k.shape or q.dim() != 2:
        raise ValueError(f"q and k must both have shape (B, d), got {tuple(q.shape)} and {tuple(k.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / tau
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


def symmetric_info_nce(q: Tensor, k: Tensor, tau: float) -> Tensor:
    r"""Symmetric InfoNCE :math:`\frac12(\mathcal L(q, k) + \mathcal L(k, q))` (CLIP's loss)."""
    return 0.5 * (info_nce(q, k, tau) + info_nce(k, q, tau))
