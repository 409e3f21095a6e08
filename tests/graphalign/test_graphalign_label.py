import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graphalign import GRAPHEDX, exact_ged
from graphalign.label import LabelConfig, cache_key, label_dataset, load_labels

ROOT = Path(__file__).resolve().parents[2]


def rows(db):
    con = sqlite3.connect(str(db))
    out = {(s, i, j): (v, sec) for s, i, j, v, sec in con.execute("SELECT split, i, j, value, seconds FROM pairs")}
    con.close()
    return out


def test_label_resume_and_export(tmp_path):
    cfg = LabelConfig(dataset="aids700nef", costs="graphedx", max_nodes=6, workers=2, chunk_size=8,
                      cache_dir=str(tmp_path), max_pairs=30, progress=False)
    db = label_dataset(cfg)
    first = rows(db)
    assert len(first) == 30
    cfg.max_pairs = None
    cfg.out = str(tmp_path / "labels.npz")
    label_dataset(cfg)
    second = rows(db)
    # 15 graphs <= 6 nodes after dedupe: 9 / 3 / 3, all ordered pairs within each split
    assert len(second) == 9 * 8 + 3 * 2 + 3 * 2
    assert all(second[k] == first[k] for k in first)  # finished pairs were not redone
    lab = load_labels(cfg.out)
    assert lab.costs == GRAPHEDX
    assert [len(lab.splits[s]) for s in ("train", "val", "test")] == [9, 3, 3]
    for s in ("train", "val", "test"):
        assert lab.optimal[s].all()
        idx = lab.splits[s]
        for i, j, v in lab.pairs(s)[:6]:
            assert exact_ged(lab.graphs[idx[int(i)]], lab.graphs[idx[int(j)]], GRAPHEDX).value == v
    # asymmetric costs: both directions are stored and differ somewhere
    g = lab.ged["train"]
    assert not np.allclose(g, g.T)
    assert "unlabelled" in cache_key(cfg) and "nd3-ni1-ed2-ei1" in cache_key(cfg)


@pytest.mark.slow
def test_cli_resumes_after_kill(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    args = [sys.executable, "-m", "graphalign.label", "--dataset", "aids700nef", "--max-nodes", "7", "--workers", "2",
            "--chunk-size", "4", "--cache-dir", str(tmp_path), "--costs", "graphedx"]
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    db = tmp_path / cache_key(LabelConfig(max_nodes=7)) / "labels.sqlite"
    t0 = time.time()
    n = 0
    while time.time() - t0 < 120:
        if db.exists():
            try:
                n = len(rows(db))
            except sqlite3.OperationalError:
                n = 0
            if n >= 12:
                break
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    before = rows(db)
    assert len(before) >= 12
    total = 18 * 17 + 6 * 5 + 6 * 5
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{len(before)} cached" in out.stderr  # the restart reports what it skips
    after = rows(db)
    assert len(after) == total
    assert all(after[k] == before[k] for k in before)
    assert "pair/s" in out.stderr  # progress bar with rate


def test_bad_config(tmp_path):
    with pytest.raises(ValueError, match="split"):
        label_dataset(LabelConfig(splits=["dev"], cache_dir=str(tmp_path), progress=False))
    with pytest.raises(ValueError, match="unknown costs"):
        label_dataset(LabelConfig(costs="cheap", cache_dir=str(tmp_path), progress=False))


SHIPPED = sorted((ROOT / "data" / "graphs" / "labels").glob("*.npz"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped label files")
@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_labels_spot_check(path):
    lab = load_labels(path)
    labelled = lab.meta["config"]["labelled"]
    rng = np.random.default_rng(0)
    for s in ("train", "val", "test"):
        pairs = lab.pairs(s)
        assert len(pairs) > 0
        idx = lab.splits[s]
        for i, j, v in pairs[rng.choice(len(pairs), size=min(4, len(pairs)), replace=False)]:
            r = exact_ged(lab.graphs[idx[int(i)]], lab.graphs[idx[int(j)]], lab.costs,
                          node_label="label" if labelled else None, timeout=30)
            assert r.optimal and r.value == v
        lo, hi, g = lab.lower[s], lab.upper[s], lab.ged[s]
        done = np.isfinite(g)
        assert np.all(lo[done] <= g[done] + 1e-6) and np.all(g[done] <= hi[done] + 1e-6)


def test_retry_timeouts_tightens_bounds(tmp_path):
    cfg = LabelConfig(dataset="aids700nef", costs="unit", max_nodes=6, workers=1, chunk_size=8,
                      cache_dir=str(tmp_path), progress=False, splits=["val"])
    db = label_dataset(cfg)
    con = sqlite3.connect(str(db))
    # pretend one pair timed out with loose bounds
    con.execute("UPDATE pairs SET optimal = 0, lower = 0, upper = value + 5, value = value + 5 WHERE i = 0 AND j = 1")
    con.commit()
    con.close()
    before = rows(db)
    cfg.retry_timeouts = True
    label_dataset(cfg)
    con = sqlite3.connect(str(db))
    v, lo, hi, opt = con.execute("SELECT value, lower, upper, optimal FROM pairs WHERE split='val' AND i=0 AND j=1"
                                 ).fetchone()
    con.close()
    assert opt == 1 and lo == v == hi == before[("val", 0, 1)][0] - 5


def test_time_budget_stops_early_and_resumes(tmp_path):
    cfg = LabelConfig(dataset="aids700nef", costs="graphedx", max_nodes=8, workers=2, chunk_size=4,
                      cache_dir=str(tmp_path), progress=False, time_budget=0.5)
    db = label_dataset(cfg)
    n = len(rows(db))
    assert 0 < n < 40 * 39 + 13 * 12 + 14 * 13  # stopped before the end, with whole chunks committed
    assert n % 4 == 0 or n == 40 * 39 + 13 * 12 + 14 * 13
