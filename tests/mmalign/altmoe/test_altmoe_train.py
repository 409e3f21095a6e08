"""The entry point ``python -m mmalign.altmoe.train`` on aligncore.training.fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmalign.altmoe.train import main


def _planted_folder(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 6))
    np.save(path / "left.npy", z @ rng.standard_normal((6, 10)))
    np.save(path / "right.npy", np.tanh(z @ rng.standard_normal((6, 7))) + 0.01 * rng.standard_normal((n, 7)))


@pytest.mark.parametrize("model,schedule,extra", [("altmoe", "recall", []), ("mlp", "round_robin", []),
                                                  ("altmoe", "round_robin", ["--multi-gate"])])
def test_cli_trains_on_a_folder_and_writes_test_metrics(tmp_path, model, schedule, extra):
    torch.set_num_threads(1)
    data = tmp_path / "pairs"
    data.mkdir()
    _planted_folder(data)
    out = tmp_path / "run"
    report = main(["--pairs", str(data), "--model", model, "--experts", "4", "--top-k", "2", "--latent", "32",
                   "--hidden", "32", "--schedule", schedule, "--max-epochs", "12", "--batch-size", "32",
                   "--lr", "3e-3", "--out-dir", str(out), "--no-progress", *extra])
    saved = json.loads((out / "test_metrics.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert set(saved["test"]) == {f"{d}_{m}" for d in ("left->right", "right->left")
                                  for m in ("recall@1", "recall@5", "recall@10", "mrr")}
    assert saved["test"]["left->right_recall@10"] > 0.8 and saved["test"]["right->left_recall@10"] > 0.8
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) >= 1 and "val_mean_recall@1" in lines[0]
    assert (out / "best.pt").exists() and (out / "run.json").exists()
    ck = torch.load(out / "last.pt", weights_only=False)
    assert any(k.startswith("schedule.") for k in ck["model"])  # the schedule state is checkpointed


def test_cli_help_lists_method_and_loop_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--pairs", "--experts", "--top-k", "--schedule", "--max-epochs", "--out-dir"):
        assert flag in text


def test_cli_cosine_schedule_warms_up_then_anneals(tmp_path):
    """--lr-schedule cosine --warmup-epochs 1 reaches fit: the schedule is stepped once per optimiser step and the
    budget ends at ~0 (the warm-up ramp itself is checked in tests/aligncore/test_training.py); warm-up without
    the cosine schedule is refused."""
    data = tmp_path / "pairs"
    data.mkdir()
    _planted_folder(data, n=200)  # 160 training rows: 5 steps of 32 per epoch
    base = ["--pairs", str(data), "--model", "linear", "--latent", "16", "--max-epochs", "2", "--batch-size", "32",
            "--lr", "1e-2", "--no-progress", "--no-restore-best"]
    main(base + ["--lr-schedule", "cosine", "--warmup-epochs", "1", "--out-dir", str(tmp_path / "cos")])
    ck = torch.load(tmp_path / "cos" / "last.pt", weights_only=False)
    assert ck["scheduler"]["last_epoch"] == 10
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-8, abs=1e-9)
    with pytest.raises(ValueError, match="warmup_epochs"):
        main(base + ["--warmup-epochs", "1", "--out-dir", str(tmp_path / "bad")])
