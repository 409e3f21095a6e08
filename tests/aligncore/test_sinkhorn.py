from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aligncore.ot import hungarian, sinkhorn


def _problem(seed: int, B: int, n: int, m: int):
    g = torch.Generator().manual_seed(seed)
    C = torch.rand(B, n, m, generator=g, dtype=torch.float64)
    a = torch.rand(B, n, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(B, m, generator=g, dtype=torch.float64) + 0.1
    a = a / a.sum(1, keepdim=True)
    b = b / b.sum(1, keepdim=True)
    return C, a, b


sizes = st.tuples(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9))


@settings(max_examples=25, deadline=None)
@given(sizes, st.sampled_from([0.05, 0.2, 1.0]))
def test_marginals_within_tol(p, eps):
    C, a, b = _problem(*p)
    res = sinkhorn(C, a, b, eps=eps, tol=1e-9, max_iter=20000)
    assert res.converged
    col = torch.linalg.vector_norm(res.plan.sum(1) - b, dim=1)
    assert (col <= 1e-9).all()
    assert torch.allclose(res.plan.sum(2), a, atol=1e-12)
    assert (res.plan >= 0).all()


@settings(max_examples=20, deadline=None)
@given(sizes, st.sampled_from([0.05, 0.3]))
def test_agrees_with_pot_sinkhorn_log(p, eps):
    C, a, b = _problem(*p)
    res = sinkhorn(C, a, b, eps=eps, tol=0, max_iter=200)
    for k in range(C.shape[0]):
        P = ot.sinkhorn(a[k].numpy(), b[k].numpy(), C[k].numpy(), eps, method="sinkhorn_log",
                        numItermax=200, stopThr=0.0)
        assert np.abs(P - res.plan[k].numpy()).max() <= 1e-6


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12))
def test_planted_permutation_recovered(seed, n):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    y = x[perm] + 1e-3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    C = torch.cdist(x, y) ** 2
    # a tiny eps against the smallest gap keeps the entropic plan near the exact matching
    res = sinkhorn(C, eps=1e-2 * float(C.mean()), tol=1e-6, max_iter=20000)
    assert torch.equal(res.plan.argmax(dim=1), torch.argsort(perm))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_small_eps_matches_hungarian(seed, n):
    g = torch.Generator().manual_seed(seed)
    C = torch.rand(n, n, generator=g, dtype=torch.float64)
    X = hungarian(C, maximize=False)  # scipy's exact assignment, an independent solver
    opt = float((X * C).sum()) / n  # as a transport cost between uniform marginals
    eps = 1e-3
    res = sinkhorn(C, eps=eps, tol=1e-8, max_iter=100000)
    P = res.plan
    # entropic bias bound: OT <= <P_eps, C> <= OT + eps * (H(a) + H(b)) = OT + 2 eps log n, up to what the
    # remaining column-marginal error can move the cost (near-degenerate costs converge slowly at tiny eps)
    slack = float(res.marginal_error) * np.sqrt(n) * float(C.max()) + 1e-9
    val = float((P * C).sum())
    assert opt - slack <= val <= opt + 2 * eps * np.log(n) + slack
    # rounding the plan gives an assignment that is optimal up to the same bias
    R = hungarian(P)
    assert float((R * C).sum()) / n <= opt + 2 * eps * np.log(n) * n + 1e-9
    if n <= 8 and float(((R - X).abs()).sum()) == 0:
        assert torch.equal(R, X)


@settings(max_examples=25, deadline=None)
@given(sizes, st.floats(-5, 5), st.floats(-5, 5))
def test_row_column_constants_leave_plan_unchanged(p, r, c):
    C, a, b = _problem(*p)
    B, n, m = C.shape
    g = torch.Generator().manual_seed(p[0] + 1)
    rows = r * torch.rand(B, n, 1, generator=g, dtype=torch.float64)
    cols = c * torch.rand(B, 1, m, generator=g, dtype=torch.float64)
    P1 = sinkhorn(C, a, b, eps=0.1, tol=1e-11, max_iter=20000).plan
    P2 = sinkhorn(C + rows + cols, a, b, eps=0.1, tol=1e-11, max_iter=20000).plan
    assert torch.allclose(P1, P2, atol=1e-8)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.tuples(st.integers(1, 7), st.integers(1, 7)), min_size=1, max_size=4))
@example(0, [(2, 2), (1, 1), (1, 1), (5, 1)])  # padded rows once leaked into the first column update
def test_padded_batch_equals_one_by_one(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    N, M = max(s[0] for s in shapes), max(s[1] for s in shapes)
    B = len(shapes)
    C = torch.rand(B, N, M, generator=g, dtype=torch.float64) * 3 + 100.0 * (torch.rand(B, N, M, generator=g) > 0.5)
    ma = torch.zeros(B, N, dtype=torch.bool)
    mb = torch.zeros(B, M, dtype=torch.bool)
    for k, (n, m) in enumerate(shapes):
        ma[k, :n] = True
        mb[k, :m] = True
        C[k, :n, :m] = torch.rand(n, m, generator=g, dtype=torch.float64)
    res = sinkhorn(C, eps=0.1, tol=0, max_iter=300, mask_a=ma, mask_b=mb)
    for k, (n, m) in enumerate(shapes):
        alone = sinkhorn(C[k, :n, :m], eps=0.1, tol=0, max_iter=300)
        assert torch.allclose(res.plan[k, :n, :m], alone.plan, atol=1e-12)
        assert float(res.plan[k].sum()) == pytest.approx(1.0)
        assert float(res.plan[k, n:, :].abs().sum() + res.plan[k, :, m:].abs().sum()) == 0.0
        assert torch.allclose(res.cost[k], alone.cost)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    C = torch.rand(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.5
    a = (a / a.sum(1, keepdim=True)).requires_grad_()

    def f(C, a):
        return sinkhorn(C, a, eps=0.5, tol=0, max_iter=30).plan

    assert torch.autograd.gradcheck(f, (C, a), eps=1e-6, atol=1e-6)


def test_gradcheck_with_padding():
    g = torch.Generator().manual_seed(1)
    C = torch.rand(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ma = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    mb = torch.tensor([[1, 1, 1], [1, 0, 1]], dtype=torch.bool)

    def f(C):
        return sinkhorn(C, eps=0.3, tol=0, max_iter=20, mask_a=ma, mask_b=mb).cost

    assert torch.autograd.gradcheck(f, (C,), eps=1e-6, atol=1e-6)
    f(C).sum().backward()
    assert torch.isfinite(C.grad).all()
    assert float(C.grad[0, 3].abs().sum()) == 0.0 and float(C.grad[1, :, 1].abs().sum()) == 0.0


def test_unbatched_and_fixed_iterations():
    C = torch.rand(4, 5, dtype=torch.float64)
    res = sinkhorn(C, eps=0.1, tol=0, max_iter=37)
    assert res.plan.shape == (4, 5) and res.n_iter == 37 and res.converged is False
    assert res.f.shape == (4,) and res.g.shape == (5,)
    assert res.cost.shape == ()


def test_potentials_are_dual_solution():
    C, a, b = _problem(3, 1, 5, 6)
    res = sinkhorn(C, a, b, eps=0.2, tol=1e-12, max_iter=50000)
    # P = exp((f_i + g_j - C_ij) / eps)
    P = torch.exp((res.f[:, :, None] + res.g[:, None, :] - C) / 0.2)
    assert torch.allclose(P, res.plan, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cost=torch.rand(3)), "cost must have shape"),
        (dict(cost=torch.tensor([[0.0, float("nan")]])), "non-finite"),
        (dict(cost=torch.rand(2, 3), eps=0.0), "eps must be a positive"),
        (dict(cost=torch.rand(2, 3), eps=-1.0), "eps must be a positive"),
        (dict(cost=torch.rand(2, 3), a=torch.tensor([0.5, -0.5])), "a must be non-negative"),
        (dict(cost=torch.rand(2, 3), a=torch.tensor([0.5, 0.5, 0.0])), r"a must have shape \(1, 2\)"),
        (dict(cost=torch.rand(2, 3), a=torch.tensor([0.2, 0.2])), "equal total mass"),
        (dict(cost=torch.rand(1, 2, 3), mask_a=torch.zeros(1, 2, dtype=torch.bool)), "mask_a marks no valid"),
        (dict(cost=torch.rand(1, 2, 3), mask_b=torch.ones(1, 2, dtype=torch.bool)), r"mask_b must have shape"),
        (dict(cost=torch.rand(2, 3), check_every=0), "check_every must be >= 1"),
    ],
)
def test_bad_input_raises(kwargs, match):
    kwargs.setdefault("eps", 0.1)
    cost = kwargs.pop("cost")
    with pytest.raises(ValueError, match=match):
        sinkhorn(cost, **kwargs)


def test_float32_close_to_float64():
    C, a, b = _problem(5, 3, 20, 30)
    r64 = sinkhorn(C, a, b, eps=0.05, tol=0, max_iter=100).plan
    r32 = sinkhorn(C.float(), a.float(), b.float(), eps=0.05, tol=0, max_iter=100).plan
    assert (r32.double() - r64).abs().max() < 1e-5


@settings(max_examples=20, deadline=None)
@given(sizes, st.sampled_from([0.05, 0.2, 1.0]))
def test_matmul_and_lse_kernels_agree(p, eps):
    C, a, b = _problem(*p)
    r1 = sinkhorn(C, a, b, eps=eps, tol=0, max_iter=150, method="lse")
    r2 = sinkhorn(C, a, b, eps=eps, tol=0, max_iter=150, method="matmul")
    assert torch.allclose(r1.plan, r2.plan, atol=1e-12)
    assert torch.allclose(r1.f, r2.f, atol=1e-9) and torch.allclose(r1.g, r2.g, atol=1e-9)


def test_matmul_refuses_underflowing_problems_and_auto_falls_back():
    C = torch.rand(2, 6, 6, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="could underflow"):
        sinkhorn(C, eps=1e-3, method="matmul")
    res = sinkhorn(C, eps=1e-3, tol=1e-4, max_iter=50000)  # auto -> lse: still finite and feasible
    assert torch.isfinite(res.plan).all()
    assert res.converged == bool((res.marginal_error <= 1e-4).all())
    assert (res.marginal_error < 1e-4).all()
