"""The on-disk embedding store: exact round trip, streaming, resume, reuse."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.altmoe.store import EmbeddingStore, StoreWriter, build_store


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 50), d=st.integers(1, 9), block=st.integers(1, 20), half=st.booleans(),
       seed=st.integers(0, 1000))
def test_store_round_trips_exactly(tmp_path_factory, n, d, block, half, seed):
    path = tmp_path_factory.mktemp("store")
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))
    if half:
        x = x.half().float()  # values representable in float16 round-trip exactly
    w = StoreWriter(path, n, d, ids=[f"id{i}" for i in range(n)], dtype="float16" if half else "float32")
    for a in range(0, n, block):
        w.write(x[a:a + block])
    st_ = w.close()
    assert torch.equal(st_.load(), x)
    assert torch.equal(st_[[n - 1, 0]], x[[n - 1, 0]])
    assert torch.equal(torch.cat(list(st_.iter_batches(3))), x)
    rows = list(range(n))[::-1]
    assert torch.equal(torch.cat(list(st_.iter_batches(4, rows))), x[rows])
    assert st_.ids == [f"id{i}" for i in range(n)] and st_.index[f"id{n - 1}"] == n - 1


def test_store_streams_without_loading_everything(tmp_path):
    n, d = 4000, 512  # 8 MB of float32
    w = StoreWriter(tmp_path, n, d)
    for a in range(0, n, 500):
        w.write(torch.full((500, d), float(a)))
    st_ = EmbeddingStore(w.close().path)
    assert isinstance(st_.array, np.memmap)
    tracemalloc.start()
    total, peak_rows = 0.0, 0
    for b in st_.iter_batches(200):
        peak_rows = max(peak_rows, b.shape[0])
        total += float(b[:, 0].sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_rows == 200
    assert total == pytest.approx(sum(500.0 * a for a in range(0, n, 500)))
    assert peak < 2 * 200 * d * 4 + 200_000  # about one batch, far below the 8 MB store


def test_incomplete_store_is_detected_and_resumed(tmp_path):
    x = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    w = StoreWriter(tmp_path, 10, 3)
    w.write(x[:4])
    with pytest.raises(ValueError, match="incomplete"):
        EmbeddingStore(tmp_path)
    with pytest.raises(ValueError, match="only 4 of 10"):
        w.close()
    w2 = StoreWriter(tmp_path, 10, 3)  # resumes after row 4
    assert w2.written == 4
    w2.write(x[4:])
    assert torch.equal(w2.close().load(), x)
    assert json.loads((tmp_path / "meta.json").read_text())["complete"] is True
    with pytest.raises(ValueError, match="overflows"):
        StoreWriter(tmp_path / "b", 2, 3).write(x[:3])


def test_build_store_encodes_once_in_batches_and_reuses(tmp_path):
    calls = []

    def enc(items):
        calls.append(len(items))
        return torch.tensor([[float(len(s)), float(s.count("a"))] for s in items])

    texts = ["a", "bb", "aaa", "abcd", "aa", "b", "ab"]
    st_ = build_store(tmp_path, enc, texts, ids=texts, batch_size=3, progress=False)
    expected = torch.tensor([[len(s), s.count("a")] for s in texts], dtype=torch.float32)
    assert torch.equal(st_.load(), expected)
    assert calls == [1, 3, 3, 1]  # one probe for the width, then batches of at most 3
    calls.clear()
    again = build_store(tmp_path, enc, texts, ids=texts, batch_size=3, progress=False)
    assert calls == [] and torch.equal(again.load(), expected)
    with pytest.raises(FileNotFoundError, match="not an embedding store"):
        EmbeddingStore(tmp_path / "nothing")
