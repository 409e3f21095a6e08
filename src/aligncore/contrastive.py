"""Contrastive objectives shared by the alignment packages (InfoNCE with in-batch negatives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def same_entity(*ids: Tensor) -> Tensor:
    r"""Pairs of batch rows that share an entity: :math:`M_{ij} = \bigvee_t [\text{ids}_t[i] = \text{ids}_t[j]]`.

    Pass it as :obj:`exclude` to :func:`info_nce` so that a row is never a negative of another row with the same
    query or key entity (e.g. the same user twice in a batch sampled from interactions).

    Shapes:
        - each of ids: :math:`(B,)`; output: boolean :math:`(B, B)`, true on the diagonal
    """
    if not ids:
        raise ValueError("same_entity needs at least one id tensor")
    if any(t.shape != ids[0].shape or t.dim() != 1 for t in ids):
        raise ValueError(f"ids must all have shape (B,), got {[tuple(t.shape) for t in ids]}")
    out = ids[0][:, None] == ids[0][None, :]
    for t in ids[1:]:
        out = out | (t[:, None] == t[None, :])
    return out


def drop_negatives(logits: Tensor, exclude: Tensor | None) -> Tensor:
    r"""In-batch logits :math:`(B, B)` (row :math:`i`'s positive on the diagonal) with the off-diagonal pairs of the
    boolean :obj:`exclude` set to :math:`-\infty`, so a softmax over a row no longer counts them as negatives."""
    if exclude is None:
        return logits
    if exclude.shape != logits.shape or exclude.dtype != torch.bool:
        raise ValueError(f"exclude must be a boolean {tuple(logits.shape)} mask, got {exclude.dtype} "
                         f"{tuple(exclude.shape)}")
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.masked_fill(exclude & ~eye, float("-inf"))


def info_nce(q: Tensor, k: Tensor, tau: float, *, exclude: Tensor | None = None) -> Tensor:
    r"""One-way InfoNCE with in-batch negatives, from
    `"Representation Learning with Contrastive Predictive Coding" <https://arxiv.org/abs/1807.03748>`_:

    .. math::
        \mathcal L(q, k) = -\frac1B \sum_i \log \frac{\exp(S_{ii})}{\exp(S_{ii}) + \sum_{j \ne i,\,
        \neg M_{ij}} \exp(S_{ij})}, \qquad S = \frac{\bar q\, \bar k^\top}{\tau}

    with :math:`\bar q, \bar k` the L2-normalised rows (cosine similarity) and :math:`M` the optional
    :obj:`exclude` mask (no pair excluded by default: every other row is a negative).

    Args:
        q (Tensor): queries; row :math:`i` is paired with row :math:`i` of :obj:`k`.
        k (Tensor): keys.
        tau (float): temperature :math:`\tau > 0`.
        exclude (Tensor, optional): boolean :math:`(B, B)`; :math:`M_{ij}` true drops key :math:`j` from row
            :math:`i`'s negatives (a duplicate of the positive, or another positive of the query: see
            :func:`same_entity`). The diagonal is ignored. (default: :obj:`None`)

    Shapes:
        - q, k: :math:`(B, d)`; output: scalar
    """
    if q.shape != k.shape or q.dim() != 2:
        raise ValueError(f"q and k must both have shape (B, d), got {tuple(q.shape)} and {tuple(k.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = drop_negatives(F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / tau, exclude)
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


def symmetric_info_nce(q: Tensor, k: Tensor, tau: float) -> Tensor:
    r"""Symmetric InfoNCE :math:`\frac12(\mathcal L(q, k) + \mathcal L(k, q))` (CLIP's loss)."""
    return 0.5 * (info_nce(q, k, tau) + info_nce(k, q, tau))
