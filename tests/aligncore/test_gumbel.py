from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aligncore.ot import gumbel_sinkhorn, hungarian


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 8), min_size=1, max_size=4), st.sampled_from([0.5, 1.0, 2.0]))
def test_doubly_stochastic_on_valid_block(seed, sizes, tau):
    g = torch.Generator().manual_seed(seed)
    N = max(sizes)
    X = torch.randn(len(sizes), N, N, generator=g, dtype=torch.float64)
    mask = torch.zeros(len(sizes), N, dtype=torch.bool)
    for k, n in enumerate(sizes):
        mask[k, :n] = True
    P = gumbel_sinkhorn(X, tau=tau, n_iter=1000, mask=mask, generator=g)
    for k, n in enumerate(sizes):
        block = P[k, :n, :n]
        # rows are normalised last (exact); columns converge linearly, slower for peaked (noisy) scores
        assert torch.allclose(block.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(block.sum(0), torch.ones(n, dtype=torch.float64), atol=1e-3)
        assert float(P[k].sum()) == pytest.approx(n, abs=1e-9)  # nothing outside the block


def test_low_temperature_tends_to_hard_permutation():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 6, 6, generator=g, dtype=torch.float64)
    H = hungarian(X)  # the maximising permutation (scipy)
    P_warm = gumbel_sinkhorn(X, tau=1.0, noise_factor=0.0, n_iter=200)
    P = gumbel_sinkhorn(X, tau=0.02, noise_factor=0.0, n_iter=3000)
    assert torch.equal(hungarian(P), H)
    assert (P - H).abs().sum() < 0.25 * (P_warm - H).abs().sum()


def test_noise_is_seeded_and_differentiable():
    X = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    P1 = gumbel_sinkhorn(X, tau=0.5, generator=torch.Generator().manual_seed(7))
    P2 = gumbel_sinkhorn(X, tau=0.5, generator=torch.Generator().manual_seed(7))
    P3 = gumbel_sinkhorn(X, tau=0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(P1, P2) and not torch.equal(P1, P3)
    (P1 * torch.randn(2, 4, 4, dtype=torch.float64)).sum().backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()


def test_bad_input():
    with pytest.raises(ValueError, match="log_alpha must have shape"):
        gumbel_sinkhorn(torch.randn(3, 4))
    with pytest.raises(ValueError, match="tau must be > 0"):
        gumbel_sinkhorn(torch.randn(3, 3), tau=0.0)
