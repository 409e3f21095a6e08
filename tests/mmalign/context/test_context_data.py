"""ETT data: published TSLib borders, train-only scaler, few-shot counts, windows and the test loader."""

from __future__ import annotations

import gzip
import hashlib
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aligncore.data import project_data_dir
from mmalign.context.data import ETTSeries, WindowDataset, ett_splits, eval_loader, load_ett, split_borders


@pytest.fixture(scope="module")
def etth1() -> ETTSeries:
    return load_ett("ETTh1")


def test_vendored_files_are_byte_identical_to_provenance():
    folder = project_data_dir() / "ett"
    prov = (folder / "PROVENANCE.txt").read_text()
    for name in ("ETTh1", "ETTh2", "ETTm1"):
        want = re.search(rf"{name}\.csv\.gz -> {name}\.csv .* sha256 ([0-9a-f]{{64}})", prov).group(1)
        got = hashlib.sha256(gzip.open(folder / f"{name}.csv.gz").read()).hexdigest()
        assert got == want


def test_load_shapes(etth1):
    assert etth1.values.shape == (17420, 7)
    assert etth1.columns == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert etth1.dates[0] == "2016-07-01 00:00:00"
    assert etth1.values[0, -1] == pytest.approx(30.5310001373291)


@pytest.mark.parametrize("name,k", [("ETTh1", 1), ("ETTh2", 1), ("ETTm1", 4)])
def test_published_borders(name, k):
    starts, ends = split_borders(name, 96)
    # TSLib Dataset_ETT_hour: 12/4/4 months of 30 days; Dataset_ETT_minute: 4 rows per hour
    assert ends == [8640 * k, 11520 * k, 14400 * k]
    assert starts == [0, 8640 * k - 96, 11520 * k - 96]


def test_split_window_counts_and_first_targets(etth1):
    L, H = 336, 96
    sp = ett_splits("ETTh1", L, H, series=etth1)
    assert len(sp.train) == 8640 - L - H + 1
    assert len(sp.val) == 2880 + L - L - H + 1
    assert len(sp.test) == 2880 - H + 1
    # the first validation/test target starts at the split border, in scaled units of the raw rows
    raw = etth1.values.astype(np.float64)
    mean, std = raw[:8640].mean(0), raw[:8640].std(0)
    _, y = sp.test[0]
    np.testing.assert_allclose(y[0].numpy(), (raw[11520] - mean) / std, rtol=1e-5, atol=1e-5)
    _, y = sp.val[0]
    np.testing.assert_allclose(y[0].numpy(), (raw[8640] - mean) / std, rtol=1e-5, atol=1e-5)


def test_scaler_fit_on_train_rows_only(etth1):
    sp = ett_splits("ETTh1", 96, 96, series=etth1)
    raw = etth1.values.astype(np.float64)
    np.testing.assert_allclose(sp.mean, raw[:8640].mean(0), rtol=1e-6)
    np.testing.assert_allclose(sp.std, raw[:8640].std(0), rtol=1e-6)  # population std (sklearn)
    # changing every non-train row leaves the statistics unchanged
    vals = etth1.values.copy()
    vals[8640:] = 1e6
    sp2 = ett_splits("ETTh1", 96, 96, series=ETTSeries("ETTh1", vals, etth1.columns, etth1.dates))
    np.testing.assert_array_equal(sp.mean, sp2.mean)
    np.testing.assert_array_equal(sp.std, sp2.std)


@pytest.mark.parametrize("frac,percent", [(0.05, 5), (0.1, 10)])
def test_few_shot_keeps_first_fraction(etth1, frac, percent):
    L, H = 192, 96
    sp = ett_splits("ETTh1", L, H, few_shot=frac, series=etth1)
    end = (8640 - L) * percent // 100 + L  # TSLib: border2 = (border2 - seq_len) * percent // 100 + seq_len
    assert len(sp.train) == end - L - H + 1
    full = ett_splits("ETTh1", L, H, series=etth1)
    x0, _ = sp.train[0]
    torch.testing.assert_close(x0, full.train[0][0])


@settings(max_examples=15, deadline=None)
@given(T=st.integers(10, 60), L=st.integers(1, 8), H=st.integers(1, 8), stride=st.integers(1, 4))
def test_windows_are_contiguous_slices(T, L, H, stride):
    data = np.arange(T * 2, dtype=np.float32).reshape(T, 2)
    if T - L - H + 1 < 1:
        with pytest.raises(ValueError):
            WindowDataset(data, L, H, stride=stride)
        return
    ds = WindowDataset(data, L, H, stride=stride)
    assert len(ds) == len(range(0, T - L - H + 1, stride))
    for i in range(len(ds)):
        x, y = ds[i]
        s = i * stride
        np.testing.assert_array_equal(x.numpy(), data[s:s + L])
        np.testing.assert_array_equal(y.numpy(), data[s + L:s + L + H])


@pytest.mark.parametrize("bs", [1, 7, 64, 1000])
def test_test_loader_covers_every_window(etth1, bs):
    sp = ett_splits("ETTh1", 96, 720, series=etth1)
    seen = 0
    last = None
    for x, y in eval_loader(sp.test, bs):
        seen += x.shape[0]
        last = y[-1]
    assert seen == 2880 - 720 + 1
    torch.testing.assert_close(last, sp.test[len(sp.test) - 1][1])  # the last partial batch is kept


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown ETT"):
        load_ett("ETTx9")
    with pytest.raises(ValueError, match="few_shot"):
        ett_splits("ETTh1", 96, 96, few_shot=1.5)
