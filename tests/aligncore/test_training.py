from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _train_task as task  # noqa: E402

from aligncore.training import EpochSampler, TrainConfig, fit, steps_per_epoch  # noqa: E402

HERE = Path(__file__).parent
SCRIPT = HERE / "_train_task.py"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run_script(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(out), *args], env=_env(), capture_output=True,
                          text=True, timeout=300)


def test_training_lowers_validation_loss(tmp_path):
    _, res = task.run(str(tmp_path / "a"), max_epochs=6)
    losses = [h["val_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0]
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "last.pt").exists()


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    full = _run_script(tmp_path / "full", "8", "0.1")
    assert full.returncode == 0, full.stderr
    killed = _run_script(tmp_path / "cut", "8", "0.1", "29")  # dies inside epoch 4 (8 batches an epoch)
    assert killed.returncode == 17
    assert not (tmp_path / "cut" / "result.json").exists()
    ck = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert ck["loop"]["batch_in_epoch"] > 0  # a mid-epoch checkpoint is what we resume from
    resumed = _run_script(tmp_path / "cut", "8", "0.1")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "full" / "result.json").read_text())
    b = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert a["final"] == b["final"] and a["steps"] == b["steps"]
    assert a["weights"] == b["weights"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_match_single_process(tmp_path):
    single = _run_script(tmp_path / "one", "8", "0.0")
    assert single.returncode == 0, single.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", str(SCRIPT), str(tmp_path / "two"), "4", "0.0"]
    two = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "result.json").read_text())
    b = json.loads((tmp_path / "two" / "result.json").read_text())
    # 2 x 4 examples with gradient averaging == 8 examples in one process (same global order)
    assert a["steps"] == b["steps"]
    assert a["final"]["val_loss"] == pytest.approx(b["final"]["val_loss"], rel=1e-4)
    for wa, wb in zip(a["weights"], b["weights"], strict=True):
        assert torch.allclose(torch.tensor(wa), torch.tensor(wb), atol=1e-5)


def test_grad_accumulation_equals_bigger_batch(tmp_path):
    m1, r1 = task.run(str(tmp_path / "a"), batch_size=8, max_epochs=2, dropout=0.0)
    m2, r2 = task.run(str(tmp_path / "b"), batch_size=4, grad_accum=2, max_epochs=2, dropout=0.0)
    # batches of 4 in the order of the batch-of-8 run: [0:4]+[4:8] == [0:8] when the permutation is shared
    assert r1.steps == r2.steps
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5)


def test_early_stopping_and_max_steps(tmp_path):
    _, res = task.run(str(tmp_path / "a"), max_epochs=50, patience=2, lr=0.3)
    assert res.stopped_early and res.epochs < 50
    best = min(h["val_loss"] for h in res.history)
    assert res.best_metric == best
    _, res2 = task.run(str(tmp_path / "b"), max_epochs=50, max_steps=11)
    assert res2.steps == 11


def test_epoch_sampler_partitions_and_resumes():
    full = list(EpochSampler(10, seed=3, epoch=2, shuffle=True))
    assert sorted(full) == list(range(10))
    assert list(EpochSampler(10, seed=3, epoch=2, shuffle=True, skip=4)) == full[4:]
    r0 = list(EpochSampler(10, seed=3, epoch=2, shuffle=True, rank=0, world=2))
    r1 = list(EpochSampler(10, seed=3, epoch=2, shuffle=True, rank=1, world=2))
    assert sorted(r0 + r1) == list(range(10)) and r0 == full[0::2]
    assert full != list(EpochSampler(10, seed=3, epoch=3, shuffle=True))


def test_bad_configuration(tmp_path):
    model = task.Net()
    train, _ = task.make_task()
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(model, torch.utils.data.TensorDataset(torch.zeros(0, 5)), loss_fn=task.loss_fn,
            config=TrainConfig(out_dir=str(tmp_path), progress=False))
    with pytest.raises(KeyError, match="lacks monitor"):
        fit(model, train, loss_fn=task.loss_fn, evaluate=lambda m: {"acc": 1.0},
            config=TrainConfig(out_dir=str(tmp_path / "k"), max_epochs=1, progress=False))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, train, loss_fn=task.loss_fn, config=TrainConfig(out_dir=str(tmp_path / "z"), progress=False))


def test_checkpoint_trainable_only(tmp_path):
    torch.manual_seed(0)
    model = task.Net(0.0)
    for p in model.body[0].parameters():
        p.requires_grad_(False)
    train, (vx, vy) = task.make_task()
    cfg = TrainConfig(out_dir=str(tmp_path), max_epochs=2, batch_size=16, progress=False, device="cpu",
                      checkpoint_trainable_only=True)
    fit(model, train, loss_fn=task.loss_fn, config=cfg,
        evaluate=lambda m: {"val_loss": float(torch.nn.functional.mse_loss(m(vx), vy))})
    sd = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    assert set(sd) == {"body.3.weight", "body.3.bias"}
    res = fit(model, train, loss_fn=task.loss_fn, config=TrainConfig(**{**cfg.__dict__, "max_epochs": 3}),
              evaluate=lambda m: {"val_loss": float(torch.nn.functional.mse_loss(m(vx), vy))})
    assert res.epochs == 3  # resumed from the trainable-only checkpoint


def test_percent_in_help_text():
    from dataclasses import dataclass

    from aligncore.config import field, parse_configs

    @dataclass
    class C:
        frac: float = field(0.05, help="share of windows (5% few-shot)")

    with pytest.raises(SystemExit) as e:
        parse_configs([C], ["--help"])
    assert e.value.code == 0


def test_steps_per_epoch_counts_each_process_share():
    cfg = TrainConfig(batch_size=4, grad_accum=2)
    assert steps_per_epoch(10, cfg, world=1) == 2  # 3 batches of 4 (last one partial), 2 optimiser steps
    assert steps_per_epoch(10, cfg, world=2) == 1  # 5 examples per process: 2 batches, 1 step
    assert steps_per_epoch(8, TrainConfig(batch_size=4), world=1) == 2


def test_cosine_schedule_warm_up_anneal_and_period():
    from aligncore.training import cosine_schedule

    def rates(total, **kw):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sched, out = cosine_schedule(opt, total, **kw), []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out, opt.param_groups[0]["lr"]

    warm, end = rates(8, warmup_steps=4)
    assert warm[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # linear to the initial rate
    assert warm[4] == pytest.approx(0.1) and warm[6] == pytest.approx(0.05 + 0.5e-8)  # cosine half-way at step 6
    assert all(a > b for a, b in zip(warm[4:], warm[5:], strict=False)) and end == pytest.approx(1e-8, abs=1e-12)
    periodic, _ = rates(9, period_steps=4)
    assert periodic[4] == pytest.approx(1e-8, abs=1e-12) and periodic[8] == pytest.approx(0.1)  # rises again
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 5, warmup_steps=-1)


def _fit_small(out_dir, evaluate, *, max_epochs=4, resume=True):
    torch.manual_seed(0)
    model = task.Net(0.0)
    train, _ = task.make_task()
    cfg = TrainConfig(out_dir=str(out_dir), max_epochs=max_epochs, batch_size=16, lr=1e-2, progress=False,
                      device="cpu", resume=resume)
    return model, fit(model, train, loss_fn=task.loss_fn, config=cfg, evaluate=evaluate)


def test_nan_first_evaluation_does_not_freeze_the_best_model(tmp_path):
    _, (vx, vy) = task.make_task()
    calls = [0]

    def evaluate(m):
        calls[0] += 1
        return {"val_loss": float("nan") if calls[0] == 1 else float(torch.nn.functional.mse_loss(m(vx), vy))}

    model, res = _fit_small(tmp_path / "a", evaluate)
    finite = [h["val_loss"] for h in res.history[1:]]
    assert res.best_metric == min(finite) and res.best_epoch == 2 + finite.index(min(finite))
    # restore_best put the best epoch's weights back: the model scores the best validation loss
    assert abs(float(torch.nn.functional.mse_loss(model(vx), vy).detach()) - res.best_metric) < 1e-6


def test_fresh_start_does_not_restore_an_earlier_runs_best_checkpoint(tmp_path):
    _, (vx, vy) = task.make_task()
    _fit_small(tmp_path / "a", lambda m: {"val_loss": float(torch.nn.functional.mse_loss(m(vx), vy))})
    assert (tmp_path / "a" / "best.pt").exists()
    # the same folder, a fresh start (resume off), no evaluation: the weights returned are this run's own
    model, res = _fit_small(tmp_path / "a", None, max_epochs=2, resume=False)
    torch.manual_seed(0)
    twin = task.Net(0.0)
    train, _ = task.make_task()
    fit(twin, train, loss_fn=task.loss_fn, config=TrainConfig(out_dir=str(tmp_path / "b"), max_epochs=2,
                                                                batch_size=16, lr=1e-2, progress=False, device="cpu"))
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not (tmp_path / "a" / "best.pt").exists()


def test_resume_rewrites_the_log_from_the_checkpoint(tmp_path):
    _, (vx, vy) = task.make_task()

    def ev(m):
        return {"val_loss": float(torch.nn.functional.mse_loss(m(vx), vy).detach())}

    _fit_small(tmp_path / "a", ev, max_epochs=2)
    log = tmp_path / "a" / "metrics.jsonl"
    # a kill after the epoch-3 line was written but before its last.pt was saved
    with open(log, "a") as fh:
        fh.write(json.dumps({"epoch": 3, "val_loss": 123.0}) + "\n")
    _, res = _fit_small(tmp_path / "a", ev, max_epochs=3)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3] and lines == res.history
