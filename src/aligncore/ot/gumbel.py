"""Gumbel-Sinkhorn: differentiable soft permutations (Mena et al., 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from .sinkhorn import sinkhorn


def sample_gumbel(shape: torch.Size | tuple[int, ...], *, generator: torch.Generator | None = None,
                  device=None, dtype=None, eps: float = 1e-20) -> Tensor:
    """Standard Gumbel noise :math:`-\\log(-\\log U)`, :math:`U \\sim \\mathcal{U}(0, 1)`."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return -torch.log(-torch.log(u + eps) + eps)


def gumbel_sinkhorn(
    log_alpha: Tensor,
    *,
    tau: float = 1.0,
    noise_factor: float = 1.0,
    n_iter: int = 20,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Soft permutation matrices by the Gumbel-Sinkhorn operator, from the
    `"Learning Latent Permutations with Gumbel-Sinkhorn Networks" <https://arxiv.org/abs/1802.08665>`_ paper.

    .. math::
        S\!\left(\frac{X + \gamma\, G}{\tau}\right), \qquad G_{ij} \sim \mathrm{Gumbel}(0, 1)

    where :math:`S` is :obj:`n_iter` Sinkhorn normalisations of :math:`\exp(\cdot)` to a doubly-stochastic
    matrix (every row and column sums to 1). It is exactly entropic OT with cost :math:`-(X + \gamma G)`,
    unit marginals and :math:`\varepsilon = \tau`, so it runs on :func:`aligncore.ot.sinkhorn` (fixed
    iterations, no host synchronisation). As :math:`\tau \to 0` it tends to the hard permutation that
    maximises :math:`\langle P, X + \gamma G \rangle`.

    Args:
        log_alpha (Tensor): square score matrices :math:`X`.
        tau (float, optional): temperature :math:`\tau > 0`. (default: :obj:`1.0`)
        noise_factor (float, optional): Gumbel noise scale :math:`\gamma`; :obj:`0` gives plain Sinkhorn.
            (default: :obj:`1.0`)
        n_iter (int, optional): Sinkhorn iterations. (default: :obj:`20`)
        mask (Tensor, optional): boolean mask of the valid nodes of each padded square problem; rows and
            columns share it. (default: :obj:`None`)
        generator (torch.Generator, optional): source of the Gumbel noise. (default: :obj:`None`)

    Shapes:
        - log_alpha: :math:`(B, n, n)` or :math:`(n, n)`; mask: :math:`(B, n)`
        - output: like log_alpha; rows and columns of the valid block sum to 1, zero elsewhere
    """
    if log_alpha.dim() not in (2, 3) or log_alpha.shape[-1] != log_alpha.shape[-2]:
        raise ValueError(f"log_alpha must have shape (n, n) or (B, n, n), got {tuple(log_alpha.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    if noise_factor < 0:
        raise ValueError(f"noise_factor must be >= 0, got {noise_factor!r}")
    x = log_alpha
    if noise_factor > 0:
        x = x + noise_factor * sample_gumbel(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if mask is None:
        w = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
    else:
        w = mask.to(device=x.device, dtype=x.dtype)
    return sinkhorn(-x, w, w, eps=tau, max_iter=n_iter, tol=0.0, mask_a=mask, mask_b=mask).plan
