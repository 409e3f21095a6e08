"""Hard assignment (linear sum assignment, the Hungarian problem) over batches of score matrices."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ._batch import as_batched, check_mask


def hungarian(
    scores: Tensor,
    mask: Tensor | None = None,
    *,
    mask_b: Tensor | None = None,
    maximize: bool = True,
) -> Tensor:
    r"""Optimal one-to-one assignment of each score matrix (Kuhn 1955; Jonker-Volgenant as implemented by
    :func:`scipy.optimize.linear_sum_assignment`, one call per batch item).

    .. math::
        X^\star = \arg\max_{X \in \{0,1\}^{n \times m},\ X 1 \le 1,\ X^\top 1 \le 1,\ \sum X = \min(n, m)}
        \langle X, S \rangle

    Rectangular matrices assign every row (or every column, whichever is fewer). Padded batches: :obj:`mask`
    marks the valid rows of each item and :obj:`mask_b` the valid columns (for square scores :obj:`mask_b`
    defaults to :obj:`mask`); only the valid block is assigned.

    Args:
        scores (Tensor): score (or cost, with :obj:`maximize=False`) matrices, finite on the valid block.
        mask (Tensor, optional): boolean mask of valid rows. (default: :obj:`None`)
        mask_b (Tensor, optional): boolean mask of valid columns. (default: :obj:`None`)
        maximize (bool, optional): maximise the total score; :obj:`False` minimises a cost. (default: :obj:`True`)

    Shapes:
        - scores: :math:`(B, n, m)` or :math:`(n, m)`; mask: :math:`(B, n)`; mask_b: :math:`(B, m)`
        - output: like scores, 0/1 in the dtype of scores

    Returns:
        Tensor: the assignment matrices.
    """
    S, squeezed = as_batched(scores, "scores")
    B, n, m = S.shape
    if mask_b is None and mask is not None and n == m:
        mask_b = mask
    ma = check_mask(mask, "mask", B, n, squeezed, S.device)
    mb = check_mask(mask_b, "mask_b", B, m, squeezed, S.device)
    s_np = S.detach().to("cpu", torch.float64).numpy()
    ma_np = None if ma is None else ma.cpu().numpy()
    mb_np = None if mb is None else mb.cpu().numpy()
    out = np.zeros((B, n, m), dtype=np.float64)
    for k in range(B):
        rows = np.arange(n) if ma_np is None else np.flatnonzero(ma_np[k])
        cols = np.arange(m) if mb_np is None else np.flatnonzero(mb_np[k])
        block = s_np[k][np.ix_(rows, cols)]
        if not np.isfinite(block).all():
            raise ValueError(f"scores of batch item {k} contain non-finite values in the valid block")
        r, c = linear_sum_assignment(block, maximize=maximize)
        out[k, rows[r], cols[c]] = 1.0
    res = torch.from_numpy(out).to(device=scores.device, dtype=scores.dtype if scores.is_floating_point() else torch.float32)
    return res[0] if squeezed else res
