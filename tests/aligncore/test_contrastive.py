from __future__ import annotations

import math

import pytest
import torch

from aligncore.contrastive import info_nce, symmetric_info_nce


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
