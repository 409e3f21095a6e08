from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aligncore.contrastive import info_nce, same_entity, symmetric_info_nce


def test_info_nce_against_float64_loop():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    tau = 0.3
    total = 0.0
    for i in range(5):
        s = [float(q[i] @ k[j] / (q[i].norm() * k[j].norm())) / tau for j in range(5)]
        total += -(s[i] - math.log(sum(math.exp(x) for x in s)))
    assert float(info_nce(q, k, tau)) == pytest.approx(total / 5, rel=1e-12)
    assert float(symmetric_info_nce(q, k, tau)) == pytest.approx(
        0.5 * (float(info_nce(q, k, tau)) + float(info_nce(k, q, tau))))


def test_info_nce_errors():
    with pytest.raises(ValueError, match="must both have shape"):
        info_nce(torch.randn(3, 2), torch.randn(4, 2), 0.1)
    with pytest.raises(ValueError, match="tau must be > 0"):
        info_nce(torch.randn(3, 2), torch.randn(3, 2), 0.0)


def test_same_entity_by_hand():
    a, b = torch.tensor([0, 1, 0, 2]), torch.tensor([5, 6, 7, 6])
    want = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(same_entity(a, b), want)
    assert torch.equal(same_entity(a), want & torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0],
                                                              [0, 0, 0, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one"):
        same_entity()
    with pytest.raises(ValueError, match="shape"):
        same_entity(a, torch.tensor([1, 2]))


def test_info_nce_exclude_against_float64_loop():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    ids = torch.tensor([0, 1, 0, 2, 1, 3])
    mask, tau = same_entity(ids), 0.2
    total = 0.0
    for i in range(6):
        s = [float(q[i] @ k[j] / (q[i].norm() * k[j].norm())) / tau for j in range(6)]
        keep = [s[j] for j in range(6) if j == i or not bool(mask[i, j])]
        total += -(s[i] - math.log(sum(math.exp(x) for x in keep)))
    assert float(info_nce(q, k, tau, exclude=mask)) == pytest.approx(total / 6, rel=1e-12)
    none = torch.zeros(6, 6, dtype=torch.bool)
    assert float(info_nce(q, k, tau, exclude=none)) == pytest.approx(float(info_nce(q, k, tau)), rel=1e-12)
    # the diagonal is never excluded: with every other key dropped only the positive is left
    assert float(info_nce(q, k, tau, exclude=torch.ones(6, 6, dtype=torch.bool))) == 0.0
    with pytest.raises(ValueError, match="boolean"):
        info_nce(q, k, tau, exclude=torch.ones(6, 6))
    with pytest.raises(ValueError, match="boolean"):
        info_nce(q, k, tau, exclude=torch.ones(5, 5, dtype=torch.bool))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.floats(0.05, 2.0), st.integers(0, 10_000))
def test_info_nce_dedup_of_a_doubled_batch(n, d, tau, seed):
    """Each pair twice in the batch, shuffled. Excluding same-id keys leaves every row its own positive once and
    every other pair twice as a negative, i.e. -s_ii + log(exp(s_ii) + 2 sum_{j != i} exp(s_ij)) on the unique
    pairs; without the exclusion the row also sees its duplicate positive as a negative, and the loss is larger.
    Excluding more pairs never raises the loss."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    idx = torch.cat([torch.arange(n), torch.arange(n)])[torch.randperm(2 * n, generator=g)]
    doubled = info_nce(q[idx], k[idx], tau, exclude=same_entity(idx))
    s = (q / q.norm(dim=1, keepdim=True)) @ (k / k.norm(dim=1, keepdim=True)).T / tau
    off = s.exp().sum(1) - s.diag().exp()
    want = (-s.diag() + torch.log(s.diag().exp() + 2 * off)).mean()
    assert float(doubled) == pytest.approx(float(want), rel=1e-9, abs=1e-12)
    plain = info_nce(q[idx], k[idx], tau)
    assert float(plain) >= float(doubled)  # equal only when the duplicate positive underflows against the negatives
    fewer = same_entity(idx) & (torch.rand(2 * n, 2 * n, generator=g, dtype=torch.float64) < 0.5)
    assert float(plain) >= float(info_nce(q[idx], k[idx], tau, exclude=fewer)) - 1e-12
    assert float(info_nce(q[idx], k[idx], tau, exclude=fewer)) >= float(doubled) - 1e-12
