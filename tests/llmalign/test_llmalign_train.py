"""The trainer on aligncore.training.fit: loss goes down, the reference cache, resume, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from aligncore.training import TrainConfig
from llmalign.data import arithmetic_preferences, write_preferences
from llmalign.train import PreferenceConfig, load_examples, main, train_preferences


def _cfgs(tmp_path, name="run", **kw):
    pc = PreferenceConfig(loss=kw.pop("loss", "dpo"), task_eval=kw.pop("task_eval", 0), max_new_tokens=3,
                          eval_batch_size=8)
    tc = TrainConfig(out_dir=str(tmp_path / name), batch_size=8, lr=kw.pop("lr", 1e-2), progress=False,
                     device="cpu", **kw)
    return pc, tc


def test_short_run_lowers_the_loss(tiny_lm_with_tokenizer, tmp_path):
    torch.set_num_threads(1)
    lm, tok = tiny_lm_with_tokenizer
    data = arithmetic_preferences(40, seed=1)
    pc, tc = _cfgs(tmp_path, max_epochs=6, restore_best=False, task_eval=4, lr=3e-3)
    run = train_preferences(lm, tok, data[:32], data[32:], pc, tc, eval_before=True)
    h = run.result.history
    assert len(h) == 6 and run.result.steps == 24
    assert h[-1]["train_loss"] < h[0]["train_loss"] - 0.05
    assert all(b["train_loss"] < a["train_loss"] for a, b in zip(h, h[1:], strict=False))
    assert h[-1]["train_accuracy"] > h[0]["train_accuracy"]
    # at step 0 every implicit reward is zero: DPO loss ln 2, preference accuracy 0
    assert run.initial_metrics["val_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert run.initial_metrics["val_accuracy"] == 0.0
    assert run.initial_metrics["val_kl_ref"] == pytest.approx(0.0, abs=1e-5)
    for key in ("val_top10_entropy", "val_top10_mass", "val_kl_ref", "val_likelihood_accuracy", "task_accuracy"):
        assert key in run.result.final_metrics
    assert run.result.final_metrics["val_kl_ref"] > 0.0
    assert (tmp_path / "run" / "ref_logps_train.pt").exists()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().strip().splitlines()
    assert len(lines) == 6 and "val_top10_entropy" in json.loads(lines[-1])


@pytest.mark.parametrize("loss", ["ipo", "simpo", "orpo", "asft", "kto", "hinge", "robust", "sft"])
def test_every_pairwise_loss_trains(tiny_lm_with_tokenizer, tmp_path, loss):
    torch.set_num_threads(1)
    lm, tok = tiny_lm_with_tokenizer
    data = arithmetic_preferences(20, seed=2)
    pc, tc = _cfgs(tmp_path, loss=loss, max_epochs=1, max_steps=2, restore_best=False)
    pc.kl_eval = False
    if loss == "robust":
        pc.label_smoothing = 0.1
    run = train_preferences(lm, tok, data[:16], data[16:], pc, tc)
    assert run.result.steps == 2
    assert torch.isfinite(torch.tensor(run.result.final_metrics["val_loss"]))


def test_resume_after_interruption_matches_uninterrupted(make_tiny_llama, smol_tokenizer, tmp_path):
    torch.set_num_threads(1)
    tok = smol_tokenizer

    def fresh():
        return make_tiny_llama(vocab_size=len(tok), seed=5)

    data = arithmetic_preferences(40, seed=4)
    pc, tc = _cfgs(tmp_path, name="full", max_epochs=1, max_steps=4, restore_best=False)
    full = train_preferences(fresh(), tok, data[:32], data[32:], pc, tc).result
    pc, tc = _cfgs(tmp_path, name="cut", max_epochs=1, max_steps=2, restore_best=False)
    first = train_preferences(fresh(), tok, data[:32], data[32:], pc, tc).result
    assert first.steps == 2
    cache = tmp_path / "cut" / "ref_logps_train.pt"
    stamp = cache.stat().st_mtime_ns
    pc, tc = _cfgs(tmp_path, name="cut", max_epochs=1, max_steps=4, restore_best=False)
    resumed = train_preferences(fresh(), tok, data[:32], data[32:], pc, tc).result
    assert resumed.steps == 4
    assert cache.stat().st_mtime_ns == stamp  # reference log-probs reused, not recomputed
    assert resumed.final_metrics["val_loss"] == pytest.approx(full.final_metrics["val_loss"], rel=1e-5)


def test_cli_end_to_end(tiny_lm_with_tokenizer, tmp_path, capsys):
    torch.set_num_threads(1)
    lm, tok = tiny_lm_with_tokenizer
    model_dir = tmp_path / "tiny"
    lm.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = write_preferences(tmp_path / "prefs.jsonl", arithmetic_preferences(24, seed=0))
    rc = main(["--loss", "ipo", "--model", str(model_dir), "--data", str(data), "--beta", "0.5", "--batch-size", "8",
               "--max-steps", "2", "--lr", "1e-3", "--out-dir", str(tmp_path / "out"), "--no-progress",
               "--task-eval", "2", "--max-new-tokens", "2", "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["steps"] == 2
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["preference_config"]["loss"] == "ipo" and run["preference_config"]["beta"] == 0.5
    assert run["n_train"] + run["n_eval"] == 24
    recs = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["step"] == 2 and "task_accuracy" in recs[-1]


def test_load_examples_split_and_errors(tmp_path):
    pc = PreferenceConfig(data="arithmetic:50", eval_fraction=0.2)
    tr, ev = load_examples(pc)
    assert len(tr) == 40 and len(ev) == 10 and not {e.prompt for e in tr} & {e.prompt for e in ev}
    with pytest.raises(ValueError, match="arithmetic:N"):
        load_examples(PreferenceConfig(data="arithmetic:many"))
    with pytest.raises(FileNotFoundError):
        load_examples(PreferenceConfig(data=str(tmp_path / "none.jsonl")))


@pytest.mark.slow
def test_dpo_steps_on_real_smollm2(tmp_path):
    from aligncore.lm import load_causal_lm

    lm, tok = load_causal_lm("smollm2")
    data = arithmetic_preferences(12, seed=0)
    pc = PreferenceConfig(loss="dpo", task_eval=4, max_new_tokens=6, eval_batch_size=4, kl_eval=False)
    tc = TrainConfig(out_dir=str(tmp_path / "smol"), batch_size=4, max_epochs=1, max_steps=2, lr=1e-5,
                     progress=False, device="cpu", restore_best=False)
    run = train_preferences(lm, tok, data[:8], data[8:], pc, tc, eval_before=True)
    assert run.result.steps == 2
    assert run.initial_metrics["val_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert run.result.final_metrics["val_loss"] != run.initial_metrics["val_loss"]
