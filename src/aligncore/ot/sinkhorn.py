"""Batched log-domain Sinkhorn iterations for entropic optimal transport."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._batch import as_batched, check_marginal, check_mask


@dataclass
class SinkhornResult:
    """Result of :func:`sinkhorn`.

    Attributes:
        plan: transport plans :math:`P`, shape ``(B, n, m)`` (``(n, m)`` for unbatched input), zero on padding.
        f: dual potential of the rows, :math:`f = \\varepsilon \\log u`, shape ``(B, n)``; ``-inf`` on padding.
        g: dual potential of the columns, shape ``(B, m)``; ``-inf`` on padding.
        cost: transport cost :math:`\\langle P, C \\rangle` per problem, shape ``(B,)``.
        n_iter: number of iterations run (the same for the whole batch).
        marginal_error: L2 norm of the column-marginal violation :math:`\\|P^\\top 1 - b\\|_2` per problem
            (rows are exact after each full iteration), shape ``(B,)``.
        converged: whether every problem reached ``marginal_error <= tol``.
    """

    plan: Tensor
    f: Tensor
    g: Tensor
    cost: Tensor
    n_iter: int
    marginal_error: Tensor
    converged: bool


def sinkhorn(
    cost: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    eps: float,
    max_iter: int = 1000,
    tol: float = 1e-6,
    mask_a: Tensor | None = None,
    mask_b: Tensor | None = None,
    check_every: int = 10,
    method: str = "auto",
) -> SinkhornResult:
    r"""Entropic optimal transport by log-domain Sinkhorn iterations, from the
    `"Sinkhorn Distances: Lightspeed Computation of Optimal Transport" <https://arxiv.org/abs/1306.0895>`_ paper.

    .. math::
        P^\star = \arg\min_{P \in U(a, b)} \langle P, C \rangle - \varepsilon H(P),
        \qquad U(a, b) = \{P \ge 0 : P 1 = a,\ P^\top 1 = b\}

    The scaling vectors are kept as log-potentials, so small :math:`\varepsilon` does not under- or
    overflow. One iteration is the pair of half-steps

    .. math::
        \log v \leftarrow \log b - \operatorname{LSE}_i(-C_{ij}/\varepsilon + \log u_i), \qquad
        \log u \leftarrow \log a - \operatorname{LSE}_j(-C_{ij}/\varepsilon + \log v_j),

    in the order of POT's ``sinkhorn_log`` (columns first), so the two agree iteration by iteration, and
    :math:`P = \exp(\log u_i - C_{ij}/\varepsilon + \log v_j)`. Gradients flow through the unrolled
    iterations (memory grows with ``n_iter``).

    Padded batches: problems of different sizes share one ``(B, n, m)`` tensor; ``mask_a`` / ``mask_b`` mark
    the valid rows and columns. Padding gets zero mass and a zero plan, and the valid block of each item is
    solved exactly as if it were alone.

    Args:
        cost (Tensor): cost matrices :math:`C`, finite.
        a (Tensor, optional): row marginals, non-negative; uniform over the valid rows when :obj:`None`.
            (default: :obj:`None`)
        b (Tensor, optional): column marginals, with the same total mass as :obj:`a` per problem; uniform
            when :obj:`None`. (default: :obj:`None`)
        eps (float): entropic regulariser :math:`\varepsilon > 0`.
        max_iter (int, optional): maximum number of iterations. (default: :obj:`1000`)
        tol (float, optional): stop when the column-marginal error of every problem falls below it, checked
            every :obj:`check_every` iterations; :obj:`0` runs exactly :obj:`max_iter` iterations with no host
            synchronisation (for :func:`torch.compile` and GPUs). (default: :obj:`1e-6`)
        mask_a (Tensor, optional): boolean mask of valid rows. (default: :obj:`None`)
        mask_b (Tensor, optional): boolean mask of valid columns. (default: :obj:`None`)
        check_every (int, optional): iterations between convergence checks when :obj:`tol > 0`.
            (default: :obj:`10`)
        method (str, optional): how each log-sum-exp is evaluated. ``"lse"``: :func:`torch.logsumexp` over
            the whole matrix, robust for any :math:`\varepsilon`. ``"matmul"``: the potentials stay in the
            log domain, but each log-sum-exp is a shifted matrix-vector product,
            :math:`\operatorname{LSE}_j(M_{ij} + v_j) = r_i + s + \log \sum_j e^{M_{ij} - r_i} e^{v_j - s}`
            with :math:`r_i = \max_j M_{ij}`, :math:`s = \max_j v_j`: several times faster, and exact as long as
            the sum cannot underflow, which holds when
            :math:`(\max C - \min C)/\varepsilon + \log(\max a / \min a) \le` 60 (float32) or 600 (float64):
            the spread of the potentials is bounded by that quantity. ``"auto"`` uses ``"matmul"`` when the
            bound holds and ``"lse"`` otherwise. (default: ``"auto"``)

    Shapes:
        - cost: :math:`(B, n, m)` or :math:`(n, m)`; a, mask_a: :math:`(B, n)`; b, mask_b: :math:`(B, m)`
        - plan: like cost, zero on padded rows and columns

    Returns:
        :class:`SinkhornResult`
    """
    C, squeezed = as_batched(cost, "cost")
    if not C.is_floating_point():
        raise ValueError(f"cost must be a floating-point tensor, got dtype {C.dtype}")
    B, n, m = C.shape
    if n == 0 or m == 0:
        raise ValueError(f"cost must be non-empty, got shape {tuple(cost.shape)}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    ma = check_mask(mask_a, "mask_a", B, n, squeezed, C.device)
    mb = check_mask(mask_b, "mask_b", B, m, squeezed, C.device)
    valid = None
    if ma is not None or mb is not None:
        ra = ma if ma is not None else torch.ones(B, n, dtype=torch.bool, device=C.device)
        rb = mb if mb is not None else torch.ones(B, m, dtype=torch.bool, device=C.device)
        valid = ra[:, :, None] & rb[:, None, :]
        if not bool(torch.isfinite(C[valid]).all()):
            raise ValueError("cost contains non-finite values in its valid (unmasked) block")
        # Padding never influences the solution (its mass is zero), so any finite cost will do there; the
        # smallest valid cost keeps the cost range, which decides the iteration kernel, unchanged.
        fill = torch.where(valid, C.detach(), torch.full_like(C.detach(), float("inf"))).amin(dim=(1, 2))
        C = torch.where(valid, C, fill[:, None, None])
    elif not bool(torch.isfinite(C).all()):
        raise ValueError(f"cost of shape {tuple(cost.shape)} contains non-finite values")
    wa = check_marginal(a, "a", B, n, squeezed, ma, C)
    wb = check_marginal(b, "b", B, m, squeezed, mb, C)
    sa, sb = wa.detach().sum(dim=1), wb.detach().sum(dim=1)
    if not torch.allclose(sa, sb, rtol=1e-4, atol=1e-6 * float(sa.abs().max())):
        raise ValueError(
            f"a and b must have equal total mass per problem; got a sums {sa.tolist()[:4]} and b sums {sb.tolist()[:4]}"
        )

    log_a, log_b = _safe_log(wa), _safe_log(wb)  # -inf on zero mass: those rows/columns get a zero plan
    M = C / (-eps)
    if method not in ("auto", "lse", "matmul"):
        raise ValueError(f"method must be 'auto', 'lse' or 'matmul', got {method!r}")
    safe = _matmul_is_safe(C, wa, wb, eps)
    if method == "matmul" and not safe:
        raise ValueError("method='matmul' could underflow for this cost range / eps; use 'lse' or 'auto'")
    use_matmul = method == "matmul" or (method == "auto" and safe)
    if use_matmul:
        # row- and column-normalised kernels: every row of KR and column of KC has maximum exactly 1
        r = M.amax(dim=2)
        c = M.amax(dim=1)
        KR = (M - r[:, :, None]).exp()
        KCT = (M - c[:, None, :]).exp().transpose(1, 2).contiguous()

        def col_step(log_u: Tensor) -> Tensor:  # LSE_i(M_ij + log_u_i), shape (B, m)
            t = log_u.amax(dim=1, keepdim=True)
            return c + t + torch.bmm(KCT, (log_u - t).exp()[:, :, None]).squeeze(2).log()

        def row_step(log_v: Tensor) -> Tensor:  # LSE_j(M_ij + log_v_j), shape (B, n)
            s_ = log_v.amax(dim=1, keepdim=True)
            return r + s_ + torch.bmm(KR, (log_v - s_).exp()[:, :, None]).squeeze(2).log()
    else:
        # Both half-steps reduce over the last (contiguous) dimension: a transposed copy of M makes the
        # column update as fast as the row update (a strided reduction over dim 1 is slower on CPU).
        MT = M.transpose(1, 2).contiguous()

        def col_step(log_u: Tensor) -> Tensor:
            return torch.logsumexp(MT + log_u[:, None, :], dim=2)

        def row_step(log_v: Tensor) -> Tensor:
            return torch.logsumexp(M + log_v[:, None, :], dim=2)

    # zero-mass (padded) rows start at -inf, so they take no part even in the first column update and a
    # padded problem follows exactly the iterates of the same problem solved alone
    log_u = torch.where(torch.isfinite(log_a), torch.zeros_like(log_a), log_a)
    log_v = torch.zeros_like(log_b)
    err = torch.full((B,), float("inf"), dtype=C.dtype, device=C.device)
    n_iter = 0
    converged = False
    for it in range(max_iter):
        log_v = log_b - col_step(log_u)
        log_u = log_a - row_step(log_v)
        n_iter = it + 1
        if tol > 0 and (n_iter % check_every == 0 or n_iter == max_iter):
            with torch.no_grad():
                col = (col_step(log_u) + log_v).exp()
                err = torch.linalg.vector_norm(col - wb, dim=1)
            if bool((err <= tol).all()):
                converged = True
                break
    log_plan = M + log_u[:, :, None] + log_v[:, None, :]
    plan = log_plan.exp()
    if valid is not None:
        plan = plan * valid.to(plan.dtype)
    with torch.no_grad():
        if tol == 0 or not converged:
            err = torch.linalg.vector_norm(plan.sum(dim=1) - wb, dim=1)
            if tol > 0:  # judged on the plan returned, so converged and marginal_error always agree
                converged = bool((err <= tol).all())
        if tol == 0:
            converged = False  # never checked: tol=0 asks for no host synchronisation
    total = (plan * C).sum(dim=(1, 2))
    f, g = eps * log_u, eps * log_v
    if squeezed:
        plan, f, g, total, err = plan[0], f[0], g[0], total[0], err[0]
    return SinkhornResult(plan=plan, f=f, g=g, cost=total, n_iter=n_iter, marginal_error=err, converged=converged)


def _safe_log(w: Tensor) -> Tensor:
    """``log w`` with ``-inf`` where ``w == 0`` and a zero (not NaN) gradient there."""
    pos = w > 0
    return torch.where(pos, torch.where(pos, w, torch.ones_like(w)).log(), torch.full_like(w, float("-inf")))


def _matmul_is_safe(C: Tensor, wa: Tensor, wb: Tensor, eps: float) -> bool:
    """Whether the shifted matrix-vector form of the log-sum-exp cannot underflow (see ``method``).

    With uniform-ish marginals the log-potentials of one side differ by at most
    ``range(C) / eps + log(max w / min w)``, so every shifted sum keeps a term of at least ``exp(-spread)``."""
    limit = 60.0 if C.dtype in (torch.float32, torch.bfloat16, torch.float16) else 600.0
    if C.dtype in (torch.bfloat16, torch.float16):
        return False
    with torch.no_grad():
        spread = (C.amax(dim=(1, 2)) - C.amin(dim=(1, 2))) / eps

        def log_ratio(w: Tensor) -> Tensor:
            pos = torch.where(w > 0, w, torch.full_like(w, float("inf")))
            return (w.amax(dim=1) / pos.amin(dim=1)).log()

        total = spread + torch.maximum(log_ratio(wa), log_ratio(wb))
        return bool((total <= limit).all())
