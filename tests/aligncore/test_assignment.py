from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from aligncore.ot import hungarian


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.booleans())
def test_equals_scipy_per_item(seed, B, n, m, maximize):
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(B, n, m))
    X = hungarian(torch.from_numpy(S), maximize=maximize)
    assert X.shape == (B, n, m)
    for k in range(B):
        r, c = linear_sum_assignment(S[k], maximize=maximize)
        ref = np.zeros((n, m))
        ref[r, c] = 1
        assert float((X[k].numpy() * S[k]).sum()) == pytest.approx(float((ref * S[k]).sum()))
        assert int(X[k].sum()) == min(n, m)
        assert (X[k].sum(0) <= 1).all() and (X[k].sum(1) <= 1).all()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=4))
def test_padded_rectangular(seed, shapes):
    rng = np.random.default_rng(seed)
    N, M = max(s[0] for s in shapes), max(s[1] for s in shapes)
    S = rng.normal(size=(len(shapes), N, M))
    ma = np.zeros((len(shapes), N), bool)
    mb = np.zeros((len(shapes), M), bool)
    for k, (n, m) in enumerate(shapes):
        ma[k, :n] = True
        mb[k, :m] = True
        S[k, n:, :] = 1e6  # padding would win every assignment if it were considered
        S[k, :, m:] = 1e6
    X = hungarian(torch.from_numpy(S), torch.from_numpy(ma), mask_b=torch.from_numpy(mb))
    for k, (n, m) in enumerate(shapes):
        r, c = linear_sum_assignment(S[k, :n, :m], maximize=True)
        assert float((X[k, :n, :m].numpy() * S[k, :n, :m]).sum()) == pytest.approx(S[k, :n, :m][r, c].sum())
        assert float(X[k].sum()) == min(n, m)


def test_square_mask_defaults_to_columns():
    S = torch.tensor([[[1.0, 0.0, 9.0], [0.0, 1.0, 9.0], [9.0, 9.0, 9.0]]])
    X = hungarian(S, torch.tensor([[True, True, False]]))
    assert torch.equal(X[0], torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]]))


def test_bad_input():
    with pytest.raises(ValueError, match="scores must have shape"):
        hungarian(torch.randn(3))
    with pytest.raises(ValueError, match="non-finite"):
        hungarian(torch.tensor([[1.0, float("inf")], [0.0, 1.0]]))
