"""graphalign.train / graphalign.evaluate: a short GraphEdX run on a small real subset (AIDS700nef, published unit-cost
GED) lowers the validation MSE; checkpoints, resume, metrics JSON, the evaluate CLI; the metrics against scipy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from aligncore.training import TrainConfig, resolve_device
from graphalign.evaluate import evaluate_checkpoint, evaluate_split, ged_metrics, precision_at_k
from graphalign.evaluate import main as evaluate_main
from graphalign.models import GraphEdX, GraphEdXConfig, build_model, load_ged_pairs
from graphalign.train import GEDTrainConfig, train
from graphalign.train import main as train_main

SMALL = dict(max_train_pairs=1000, max_eval_pairs=300)


def test_short_training_lowers_validation_mse(tmp_path):
    cfg = GEDTrainConfig(dataset="aids700nef", costs="unit", model="graphedx", plot=False, **SMALL)
    data = load_ged_pairs("aids700nef", "unit", max_pairs={"train": 1000, "val": 300, "test": 300})
    tcfg = TrainConfig(out_dir=str(tmp_path / "run"), max_epochs=2, batch_size=64, lr=5e-3, progress=False, seed=0)
    torch.manual_seed(0)
    init = build_model("graphedx", GraphEdXConfig(), costs=data.costs, node_label=data.node_label,
                       label_vocab=data.store.label_vocab)
    before, _ = evaluate_split(init, data.splits["val"], symmetric=True)
    torch.manual_seed(0)
    res = train(cfg, GraphEdXConfig(), tcfg)
    assert res["val"]["mse"] < 0.5 * before["mse"], (before["mse"], res["val"]["mse"])
    assert res["epochs"] == 2 and res["steps"] == 2 * int(np.ceil(1000 / 64))
    run = tmp_path / "run"
    for f in ("best.pt", "last.pt", "metrics.jsonl", "run.json", "metrics.json"):
        assert (run / f).exists(), f
    m = json.loads((run / "metrics.json").read_text())
    for k in ("mse", "rmse", "mae", "kendall_tau", "spearman_rho", "precision@10"):
        assert np.isfinite(m["test"][k]) and np.isfinite(m["val"][k]), k
    assert m["pairs"] == {"train": 1000, "val": 300, "test": 300}
    # the saved best model reproduces the reported test metrics through graphalign.evaluate, on the device that
    # trained it (on CUDA, CPU predictions differ from the GPU ones by float32 round-off)
    ev = evaluate_checkpoint(run / "best.pt", device=resolve_device(tcfg.device))
    assert ev["pairs"] == 300 and ev["mse"] == pytest.approx(m["test"]["mse"], rel=1e-5)
    # resume: asking for one more epoch continues from last.pt instead of starting over
    res2 = train(cfg, GraphEdXConfig(), TrainConfig(**{**tcfg.__dict__, "max_epochs": 3}))
    assert res2["epochs"] == 3 and res2["steps"] == 3 * int(np.ceil(1000 / 64))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_cli_time_budget_bipartite_and_evaluate(tmp_path, capsys):
    out = tmp_path / "sg"
    assert train_main(["--model", "simgnn", "--max-train-pairs", "300", "--max-eval-pairs", "200", "--no-plot",
                       "--out-dir", str(out), "--max-epochs", "50", "--time-budget", "0", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 1  # a zero budget still finishes the epoch it started, then stops
    bp = tmp_path / "bp"
    assert train_main(["--model", "bipartite", "--max-eval-pairs", "100", "--no-plot", "--out-dir", str(bp)]) == 0
    mb = json.loads((bp / "metrics.json").read_text())
    assert mb["params"] == 0 and mb["test"]["mse"] > 0
    capsys.readouterr()
    assert evaluate_main([str(bp / "best.pt"), "--split", "val"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mse"] == pytest.approx(mb["val"]["mse"])


def test_metrics_against_scipy_and_hand_counts():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 8, 60).astype(float)
    p = t + rng.normal(0, 1.5, 60)
    m = ged_metrics(torch.tensor(p), torch.tensor(t))
    assert m["mse"] == pytest.approx(np.mean((p - t) ** 2))
    assert m["mae"] == pytest.approx(np.mean(np.abs(p - t)))
    assert m["kendall_tau"] == pytest.approx(stats.kendalltau(p, t).statistic)
    assert m["spearman_rho"] == pytest.approx(stats.spearmanr(p, t).statistic)
    # one query, 12 partners: exact values 0..11; the predicted top 3 hold exact values 0, 5, 1 -> 2 of 3 within the
    # true top 3 (threshold: 3rd smallest exact value = 2)
    tgt = np.arange(12.0)
    prd = np.full(12, 100.0)
    prd[[0, 5, 1]] = [1.0, 2.0, 3.0]
    assert precision_at_k(prd, tgt, np.zeros(12), k=3) == pytest.approx(2 / 3)
    # ties in the exact values count as hits: exact (0, 1, 1, 1, 5): top-2 by prediction = items 3, 2 (exact 1, 1)
    assert precision_at_k([9, 9, 1, 0, 9], [0, 1, 1, 1, 5], [0] * 5, k=2) == 1.0
    assert np.isnan(precision_at_k([1, 2], [1, 2], [0, 0], k=3))


def test_graphedx_cost_labels_need_a_label_file(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        load_ged_pairs("linux", "3,1,2,1", root=tmp_path)
    assert isinstance(build_model("graphedx"), GraphEdX)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")


def test_shipped_graphedx_cost_labels_are_found_by_default():
    from graphalign import GRAPHEDX
    from graphalign.models.pairs import default_label_file

    path = default_label_file("aids700nef", "graphedx")
    if path is None:
        pytest.skip("no shipped data/graphs/labels/aids700nef_graphedx_*.npz")
    data = load_ged_pairs("aids700nef", "graphedx", max_pairs={"train": 50, "val": 50, "test": 50})
    assert data.costs == GRAPHEDX and data.node_label is None
    assert data.source["labels"] == str(path)
    # the same costs spelled out (or as the EditCosts object) find the same file; unknown costs find none
    assert default_label_file("aids700nef", "3,1,2,1,1") == path == default_label_file("aids700nef", GRAPHEDX)
    assert default_label_file("aids700nef", "2,2,2,2") is None and default_label_file("aids700nef", "bogus") is None
    for s in ("train", "val", "test"):
        d = data.splits[s]
        assert len(d) == 50 and (d.target >= 0).all()
        assert (d.pairs[:, 0] != d.pairs[:, 1]).all()
