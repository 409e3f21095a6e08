"""Test-suite settings shared by every package."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The suite's tensors are small: on a 2-core machine one intra-op thread is several times faster than two
    (and much faster under load). Benchmarks measure thread counts explicitly; tests only need correctness."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
