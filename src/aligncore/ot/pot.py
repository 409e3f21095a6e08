"""Thin wrappers over POT (Python Optimal Transport) where POT is the right tool: exact EMD and fused
Gromov-Wasserstein. Inputs and outputs are torch tensors; POT's torch backend keeps them on their device.
POT is imported when a wrapper is first called, so ``import aligncore`` works where POT is absent."""

from __future__ import annotations

import torch
from torch import Tensor

from ._batch import as_batched, check_marginal


def emd(cost: Tensor, a: Tensor | None = None, b: Tensor | None = None, *, max_iter: int = 100000) -> Tensor:
    r"""Exact (unregularised) optimal transport plans by the network simplex (:func:`ot.emd`), one per batch item.

    .. math::
        P^\star = \arg\min_{P \in U(a, b)} \langle P, C \rangle

    Args:
        cost (Tensor): cost matrices, finite.
        a (Tensor, optional): row marginals; uniform when :obj:`None`. (default: :obj:`None`)
        b (Tensor, optional): column marginals; uniform when :obj:`None`. (default: :obj:`None`)
        max_iter (int, optional): network-simplex iteration cap. (default: :obj:`100000`)

    Shapes:
        - cost: :math:`(B, n, m)` or :math:`(n, m)`; a: :math:`(B, n)`; b: :math:`(B, m)`
        - output: like cost
    """
    import ot

    C, squeezed = as_batched(cost, "cost")
    if not bool(torch.isfinite(C).all()):
        raise ValueError(f"cost of shape {tuple(cost.shape)} contains non-finite values")
    B, n, m = C.shape
    wa = check_marginal(a, "a", B, n, squeezed, None, C.double())
    wb = check_marginal(b, "b", B, m, squeezed, None, C.double())
    plans = [ot.emd(wa[k], wb[k], C[k].double(), numItermax=max_iter) for k in range(B)]
    out = torch.stack(plans).to(C.dtype)
    return out[0] if squeezed else out


def fused_gromov_wasserstein(
    cost: Tensor,
    C1: Tensor,
    C2: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    alpha: float = 0.5,
    loss: str = "square_loss",
    max_iter: int = 1000,
    tol: float = 1e-9,
) -> tuple[Tensor, Tensor]:
    r"""Fused Gromov-Wasserstein coupling between two structured objects (:func:`ot.gromov.fused_gromov_wasserstein`),
    from `"Optimal Transport for structured data with application on graphs" <https://arxiv.org/abs/1805.09114>`_.

    .. math::
        \min_{P \in U(a,b)} (1-\alpha) \langle P, M \rangle + \alpha \sum_{i,j,k,l} L(C^1_{ik}, C^2_{jl}) P_{ij} P_{kl}

    Args:
        cost (Tensor): feature cost :math:`M`, shape :math:`(n, m)`.
        C1 (Tensor): structure matrix of the source, :math:`(n, n)`.
        C2 (Tensor): structure matrix of the target, :math:`(m, m)`.
        alpha (float, optional): trade-off between features and structure. (default: :obj:`0.5`)

    Returns:
        tuple: the coupling :math:`(n, m)` and the FGW value.
    """
    if cost.dim() != 2 or C1.shape != (cost.shape[0],) * 2 or C2.shape != (cost.shape[1],) * 2:
        raise ValueError(
            f"expected cost (n, m), C1 (n, n), C2 (m, m); got {tuple(cost.shape)}, {tuple(C1.shape)}, {tuple(C2.shape)}"
        )
    import ot

    n, m = cost.shape
    wa = check_marginal(a, "a", 1, n, True, None, cost.double())[0]
    wb = check_marginal(b, "b", 1, m, True, None, cost.double())[0]
    plan, log = ot.gromov.fused_gromov_wasserstein(
        cost.double(), C1.double(), C2.double(), wa, wb, loss_fun=loss, alpha=alpha, max_iter=max_iter,
        tol_rel=tol, tol_abs=tol, log=True,
    )
    return plan.to(cost.dtype), torch.as_tensor(log["fgw_dist"]).to(cost.dtype)
