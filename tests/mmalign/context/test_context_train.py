"""Entry point: evaluation over every window, a short training run, the CLI for every model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aligncore.training import TrainConfig
from mmalign.context.baselines import DLinear
from mmalign.context.config import ContextConfig, ContextTrainConfig
from mmalign.context.data import WindowDataset, ett_splits
from mmalign.context.train import build_model, evaluate_forecast, main, train_context


def test_evaluate_forecast_every_window_float64():
    gen = np.random.default_rng(0)
    data = gen.normal(size=(83, 3)).astype(np.float32)
    ds = WindowDataset(data, 10, 4)  # 70 windows: batches of 16 leave a partial batch of 6
    torch.manual_seed(0)
    model = DLinear(10, 4, kernel=5)
    torch.nn.init.normal_(model.seasonal.weight, std=0.3)
    got = evaluate_forecast(model, ds, batch_size=16)
    se, ae, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(len(ds)):
            x, y = ds[i]
            err = model(x[None])[0].double().numpy() - y.double().numpy()
            se += float((err ** 2).sum())
            ae += float(np.abs(err).sum())
            n += err.size
    assert got["n_windows"] == 70
    assert got["mse"] == pytest.approx(se / n, rel=1e-6)  # float32 predictions: batched vs single
    assert got["mae"] == pytest.approx(ae / n, rel=1e-6)


def test_short_dsca_run_lowers_validation_loss(tmp_path):
    torch.set_num_threads(1)
    cfg = ContextConfig(model="dsca", backbone="tiny-llama", seq_len=48, pred_len=12, few_shot=0.1,
                        eval_stride=40, n_layers=2, head_dropout=0.0)
    splits = ett_splits("ETTh1", cfg.seq_len, cfg.pred_len, few_shot=cfg.few_shot, eval_stride=cfg.eval_stride)
    before = evaluate_forecast(build_model(cfg, seed=0), splits.val)["mse"]
    tc = TrainConfig(out_dir=str(tmp_path / "run"), max_epochs=1, max_steps=25, batch_size=16, lr=1e-3,
                     progress=False, device="cpu")
    out = train_context(cfg, tc, splits=splits)
    after = out.fit.history[-1]["val_loss"]
    assert after < before
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "metrics.jsonl").exists()
    assert out.test["n_windows"] == len(splits.test)


@pytest.mark.parametrize("model", ["dsca", "ofa", "dlinear", "patchtst"])
def test_cli_trains_and_tests_every_model(tmp_path, model):
    argv = ["--data", "ETTh1", "--seq-len", "32", "--pred-len", "8", "--model", model, "--backbone", "tiny-gpt2",
            "--n-layers", "2", "--few-shot", "0.02", "--eval-stride", "300", "--max-steps", "2",
            "--max-epochs", "1", "--batch-size", "8", "--out-dir", str(tmp_path), "--no-progress",
            "--device", "cpu"]
    if model == "dlinear":
        argv += ["--zero-shot-target", "ETTh2"]
    report = main(argv)
    saved = json.loads((tmp_path / "test_metrics.json").read_text())
    n_test = len(range(0, 2880 - 8 + 1, 300))
    assert saved["test"]["n_windows"] == n_test
    assert np.isfinite(saved["test"]["mse"]) and saved["test"]["mse"] == report["test"]["mse"]
    assert (tmp_path / "forecast.png").stat().st_size > 1000
    if model == "dlinear":
        assert saved["zero_shot"]["target"] == "ETTh2" and saved["zero_shot"]["n_windows"] == n_test
    if model in ("dsca", "ofa"):
        assert saved["n_frozen"] > 0


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--zero-shot-target" in out and "--few-shot" in out and "--max-epochs" in out


def test_cli_resume_matches_uninterrupted_run(tmp_path):
    base = ["--data", "ETTh1", "--seq-len", "32", "--pred-len", "8", "--model", "dlinear", "--few-shot", "0.02",
            "--eval-stride", "300", "--max-epochs", "1", "--batch-size", "8", "--no-progress", "--device", "cpu",
            "--no-restore-best"]
    whole = main(base + ["--max-steps", "6", "--out-dir", str(tmp_path / "whole")])
    main(base + ["--max-steps", "3", "--out-dir", str(tmp_path / "cut")])  # stops mid-epoch, writes last.pt
    resumed = main(base + ["--max-steps", "6", "--out-dir", str(tmp_path / "cut")])
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
             if '"step"' in line]
    assert steps == [3, 6]  # the second run continued the first (a fresh start would log only step 6)
    assert resumed["test"]["mse"] == pytest.approx(whole["test"]["mse"], rel=1e-6)


def test_cosine_schedule_anneals_to_zero(tmp_path):
    base = ["--data", "ETTh1", "--seq-len", "32", "--pred-len", "8", "--model", "dlinear", "--few-shot", "0.02",
            "--eval-stride", "300", "--max-epochs", "1", "--batch-size", "8", "--no-progress", "--device", "cpu",
            "--no-restore-best", "--lr", "1e-2", "--lr-schedule", "cosine"]
    whole = main(base + ["--max-steps", "6", "--out-dir", str(tmp_path / "whole")])
    ck = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-8, abs=1e-9)  # annealed over the 6 steps
    constant = main(base[:-1] + ["constant", "--max-steps", "6", "--out-dir", str(tmp_path / "const")])
    assert constant["test"]["mse"] != pytest.approx(whole["test"]["mse"], rel=1e-6)
    with pytest.raises(ValueError, match="lr_schedule"):
        train_context(ContextConfig(model="dlinear", seq_len=32, pred_len=8, few_shot=0.02, eval_stride=300),
                      ContextTrainConfig(out_dir=str(tmp_path / "bad"), lr_schedule="step", device="cpu"))


def test_cosine_schedule_with_tmax_is_periodic_in_epochs(tmp_path):
    """--lr-tmax T (the FSCA scripts' tmax): ~0 after T epochs, back at the initial rate after 2T."""
    base = ["--data", "ETTh1", "--seq-len", "32", "--pred-len", "8", "--model", "dlinear", "--few-shot", "0.02",
            "--eval-stride", "300", "--batch-size", "32", "--no-progress", "--device", "cpu", "--no-restore-best",
            "--lr", "1e-2", "--lr-schedule", "cosine", "--patience", "none"]

    def last_lr(name: str, *extra: str) -> float:
        main(base + [*extra, "--out-dir", str(tmp_path / name)])
        return torch.load(tmp_path / name / "last.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"]

    assert last_lr("t1e1", "--max-epochs", "1", "--lr-tmax", "1") == pytest.approx(1e-8, abs=1e-9)
    assert last_lr("t1e2", "--max-epochs", "2", "--lr-tmax", "1") == pytest.approx(1e-2, rel=1e-6)
    assert last_lr("whole", "--max-epochs", "2") == pytest.approx(1e-8, abs=1e-9)  # no tmax: the whole budget
    with pytest.raises(ValueError, match="lr_tmax"):
        train_context(ContextConfig(model="dlinear", seq_len=32, pred_len=8, few_shot=0.02, eval_stride=300),
                      ContextTrainConfig(out_dir=str(tmp_path / "bad"), lr_schedule="cosine", lr_tmax=0,
                                         device="cpu"))


@pytest.mark.parametrize("model,lr", [("dlinear", 1e-3), ("ofa", 1e-4)])
def test_default_learning_rate_per_model(tmp_path, model, lr):
    report = main(["--data", "ETTh1", "--seq-len", "32", "--pred-len", "8", "--model", model, "--backbone",
                   "tiny-gpt2", "--n-layers", "1", "--few-shot", "0.02", "--eval-stride", "300", "--max-steps", "1",
                   "--batch-size", "8", "--out-dir", str(tmp_path), "--no-progress", "--device", "cpu"])
    assert report["lr"] == lr
    assert json.loads((tmp_path / "run.json").read_text())["config"]["lr"] == lr
    assert main(["--data", "ETTh1", "--seq-len", "32", "--pred-len", "8", "--model", model, "--backbone",
                 "tiny-gpt2", "--n-layers", "1", "--few-shot", "0.02", "--eval-stride", "300", "--max-steps", "1",
                 "--batch-size", "8", "--out-dir", str(tmp_path / "b"), "--no-progress", "--device", "cpu",
                 "--lr", "3e-3"])["lr"] == 3e-3
