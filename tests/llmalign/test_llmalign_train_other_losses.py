"""The trainer's paths for the losses that need more than a pair: D2O (cached self-generated samples),
PoFT (cached aligned-model scores), DCKD and ADPA (teachers run at each batch), and their input checks."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from aligncore.training import TrainConfig
from llmalign.data import PreferenceExample, PreferenceFormatError, arithmetic_preferences, write_preferences
from llmalign.train import PreferenceConfig, load_examples, main, sample_completions, train_preferences

LN2 = math.log(2.0)


def _cfgs(tmp_path, loss, name="run", pc_kw=None, **kw):
    pc = PreferenceConfig(loss=loss, task_eval=0, eval_batch_size=8, kl_eval=False, **(pc_kw or {}))
    tc = TrainConfig(out_dir=str(tmp_path / name), batch_size=kw.pop("batch_size", 8), lr=kw.pop("lr", 1e-2),
                     progress=False, device="cpu", restore_best=False, **kw)
    return pc, tc


def _negatives_only(examples):
    return [PreferenceExample(e.prompt, None, e.rejected) for e in examples]


def _losses(run):
    return [h["train_loss"] for h in run.result.history]


# ------------------------------------------------------------------------------------------------ D2O


def test_d2o_trains_from_negatives_and_reuses_its_samples_on_resume(make_tiny_llama, smol_tokenizer, tmp_path):
    tok = smol_tokenizer
    data = _negatives_only(arithmetic_preferences(20, seed=3))
    d2o = {"d2o_samples": 3, "d2o_max_new_tokens": 4}

    def fresh():
        return make_tiny_llama(vocab_size=len(tok), seed=2)

    pc, tc = _cfgs(tmp_path, "d2o", pc_kw=d2o, max_epochs=4, batch_size=4, lr=3e-3)
    run = train_preferences(fresh(), tok, data[:8], data[8:], pc, tc, eval_before=True)
    # before any step every log-ratio is 0: the loss is -log sigmoid(0)
    assert run.initial_metrics["val_loss"] == pytest.approx(LN2, abs=1e-4)
    losses = _losses(run)
    assert run.result.steps == 8 and losses[-1] < losses[0] - 0.05
    assert run.result.final_metrics["val_loss"] < LN2  # samples now likelier, relative to the negative
    blob = torch.load(tmp_path / "run" / "d2o_samples_train.pt", weights_only=True)["value"]
    assert len(blob["samples"]) == 8 and all(len(ss) == 3 for ss in blob["samples"])
    assert all(1 <= len(s) <= 4 for ss in blob["samples"] for s in ss)
    assert blob["ref_samples"].shape == (8, 3) and blob["ref_rejected"].shape == (8,)
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "d2o_samples_val.pt").exists()

    # interrupted after 2 steps, resumed to 4: the samples are not drawn again
    pc, tc = _cfgs(tmp_path, "d2o", name="cut", pc_kw=d2o, max_epochs=1, max_steps=2, batch_size=4)
    first = train_preferences(fresh(), tok, data[:16], data[16:], pc, tc).result
    cache = tmp_path / "cut" / "d2o_samples_train.pt"
    stamp, samples = cache.stat().st_mtime_ns, torch.load(cache, weights_only=True)["value"]["samples"]
    pc, tc = _cfgs(tmp_path, "d2o", name="cut", pc_kw=d2o, max_epochs=1, max_steps=4, batch_size=4)
    resumed = train_preferences(fresh(), tok, data[:16], data[16:], pc, tc).result
    assert first.steps == 2 and resumed.steps == 4
    assert cache.stat().st_mtime_ns == stamp
    assert torch.load(cache, weights_only=True)["value"]["samples"] == samples
    pc, tc = _cfgs(tmp_path, "d2o", name="full", pc_kw=d2o, max_epochs=1, max_steps=4, batch_size=4)
    full = train_preferences(fresh(), tok, data[:16], data[16:], pc, tc).result
    assert resumed.final_metrics["val_loss"] == pytest.approx(full.final_metrics["val_loss"], rel=1e-5)


def test_sample_completions_is_seeded_and_stops_at_eos(make_tiny_llama, smol_tokenizer):
    tok = smol_tokenizer
    lm = make_tiny_llama(vocab_size=len(tok), seed=4)
    prompts = [[5, 6, 7], [8, 9]]
    state = torch.get_rng_state()
    a = sample_completions(lm, prompts, k=2, max_new_tokens=5, eos_token_id=3, pad_token_id=0, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is left alone
    b = sample_completions(lm, prompts, k=2, max_new_tokens=5, eos_token_id=3, pad_token_id=0, seed=1)
    c = sample_completions(lm, prompts, k=2, max_new_tokens=5, eos_token_id=3, pad_token_id=0, seed=2)
    assert a == b and a != c
    assert len(a) == 2 and all(len(ss) == 2 and all(1 <= len(s) <= 5 for s in ss) for ss in a)
    # a model that always emits token 3 (its EOS here) gives one-token completions
    head = torch.nn.Linear(lm.config.hidden_size, lm.config.vocab_size)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[3] = 50.0
    lm.lm_head = head
    eos_first = sample_completions(lm, prompts, k=2, max_new_tokens=5, eos_token_id=3, pad_token_id=0)
    assert all(s[-1] == 3 and s.count(3) == 1 for ss in eos_first for s in ss)


# ------------------------------------------------------------------------------------------------ PoFT


def test_poft_against_the_initial_model_and_an_explicit_aligned_model(make_tiny_llama, smol_tokenizer, tmp_path):
    tok = smol_tokenizer
    data = arithmetic_preferences(20, seed=5)
    pc, tc = _cfgs(tmp_path, "poft", max_epochs=4, lr=3e-3)
    run = train_preferences(make_tiny_llama(vocab_size=len(tok), seed=0), tok, data[:16], data[16:], pc, tc,
                            eval_before=True)
    # default aligned model = the initial model: equal scores, loss ln 2, then the target pulls ahead
    assert run.initial_metrics["val_loss"] == pytest.approx(LN2, abs=1e-4)
    assert run.initial_metrics["val_margin"] == pytest.approx(0.0, abs=1e-4)
    losses = _losses(run)
    assert losses[-1] < losses[0] - 0.05
    assert run.result.final_metrics["val_margin"] > 0.0
    scores = torch.load(tmp_path / "run" / "poft_aligned_train.pt", weights_only=True)["value"]
    assert scores.shape == (16, 1) and (scores < 0).all()

    # two explicit aligned models: one score column each, the loss against their mean score
    aligned = [("a", make_tiny_llama(vocab_size=len(tok), seed=7), tok),
               ("b", make_tiny_llama(vocab_size=len(tok), seed=8), tok)]
    pc, tc = _cfgs(tmp_path, "poft", name="two", max_epochs=1, max_steps=1)
    run = train_preferences(make_tiny_llama(vocab_size=len(tok), seed=0), tok, data[:16], data[16:], pc, tc,
                            aligned_models=aligned, eval_before=True)
    scores = torch.load(tmp_path / "two" / "poft_aligned_val.pt", weights_only=True)["value"]
    assert scores.shape == (4, 2) and not torch.allclose(scores[:, 0], scores[:, 1])
    assert run.initial_metrics["val_rewards_rejected"] == pytest.approx(float(scores.mean(1).mean()), rel=1e-5)


# ------------------------------------------------------------------------------------------------ DCKD and ADPA


def test_dckd_distils_the_teacher(make_tiny_llama, smol_tokenizer, tmp_path):
    tok = smol_tokenizer
    data = arithmetic_preferences(20, seed=6)
    student = make_tiny_llama(vocab_size=len(tok), seed=0)
    # a teacher identical to the student: both KL terms vanish, only the NLL is left
    pc, tc = _cfgs(tmp_path, "dckd", name="same", max_epochs=1, max_steps=1)
    run = train_preferences(copy.deepcopy(student), tok, data[:16], data[16:], pc, tc, teacher=copy.deepcopy(student),
                            eval_before=True)
    assert run.initial_metrics["val_kd_chosen"] == pytest.approx(0.0, abs=1e-6)
    assert run.initial_metrics["val_kd_rejected"] == pytest.approx(0.0, abs=1e-6)
    assert run.initial_metrics["val_loss"] == pytest.approx(run.initial_metrics["val_nll"], rel=1e-6)

    teacher = make_tiny_llama(vocab_size=len(tok), seed=9)
    pc, tc = _cfgs(tmp_path, "dckd", pc_kw={"sft_weight": 0.0}, max_epochs=4, lr=3e-3)
    run = train_preferences(student, tok, data[:16], data[16:], pc, tc, teacher=teacher, eval_before=True)
    losses = _losses(run)
    assert losses[-1] < losses[0] - 0.01
    fin, ini = run.result.final_metrics, run.initial_metrics
    assert fin["val_kd_chosen"] < ini["val_kd_chosen"] and fin["val_kd_rejected"] < ini["val_kd_rejected"]
    assert not any(p.requires_grad for p in teacher.parameters())
    assert (tmp_path / "run" / "last.pt").exists()


def test_adpa_raises_the_students_expected_advantage(make_tiny_llama, smol_tokenizer, tmp_path):
    tok = smol_tokenizer
    data = arithmetic_preferences(20, seed=7)
    teacher_ref = make_tiny_llama(vocab_size=len(tok), seed=10)
    # teacher == its reference: zero advantage, the loss is the chosen NLL alone
    pc, tc = _cfgs(tmp_path, "adpa", name="same", max_epochs=1, max_steps=1)
    run = train_preferences(make_tiny_llama(vocab_size=len(tok), seed=0), tok, data[:16], data[16:], pc, tc,
                            teacher=teacher_ref, teacher_ref=copy.deepcopy(teacher_ref), eval_before=True)
    assert run.initial_metrics["val_rewards_chosen"] == pytest.approx(0.0, abs=1e-6)
    assert run.initial_metrics["val_loss"] == pytest.approx(run.initial_metrics["val_nll"], rel=1e-6)

    teacher = make_tiny_llama(vocab_size=len(tok), seed=11)
    pc, tc = _cfgs(tmp_path, "adpa", pc_kw={"sft_weight": 0.0}, max_epochs=4, lr=3e-3)
    run = train_preferences(make_tiny_llama(vocab_size=len(tok), seed=0), tok, data[:16], data[16:], pc, tc,
                            teacher=teacher, teacher_ref=teacher_ref, eval_before=True)
    losses = _losses(run)
    assert losses[-1] < losses[0] - 0.01
    # "chosen" reward = the student's expected advantage at the rejected completions' prefixes
    assert run.result.final_metrics["val_rewards_chosen"] > run.initial_metrics["val_rewards_chosen"]


# ------------------------------------------------------------------------------------------------ checks and CLI


def test_clear_errors_for_inputs_that_do_not_fit_the_loss(make_tiny_llama, smol_tokenizer, tmp_path):
    tok = smol_tokenizer
    lm = make_tiny_llama(vocab_size=len(tok), seed=0)
    other = make_tiny_llama(vocab_size=len(tok), seed=1)
    data = arithmetic_preferences(12, seed=0)
    for loss, kw, match in [
        ("dckd", {}, "needs.*--teacher|distils from a preference-aligned teacher"),
        ("adpa", {"teacher": other}, "teacher-ref"),
        ("dpo", {"teacher": other}, "only by the dckd and adpa"),
        ("dckd", {"teacher": other, "teacher_ref": other}, "only by the adpa"),
        ("dpo", {"aligned_models": [("x", other, tok)]}, "only by the poft"),
        ("dckd", {"teacher": lm}, "separate from the student"),
    ]:
        pc, tc = _cfgs(tmp_path, loss)
        with pytest.raises(ValueError, match=match):
            train_preferences(lm, tok, data[:8], data[8:], pc, tc, **kw)
    pc, tc = _cfgs(tmp_path, "ipo")
    with pytest.raises(ValueError, match=r"needs a chosen completion.*--loss d2o"):
        train_preferences(lm, tok, _negatives_only(data[:8]), data[8:], pc, tc)
    pc, tc = _cfgs(tmp_path, "nope")
    with pytest.raises(KeyError, match="known"):
        train_preferences(lm, tok, data[:8], data[8:], pc, tc)
    pc, tc = _cfgs(tmp_path, "d2o", pc_kw={"d2o_samples": 0})
    with pytest.raises(ValueError, match="d2o-samples"):
        train_preferences(lm, tok, data[:8], data[8:], pc, tc)
    # D2O files need prompt and rejected, not chosen; a missing rejected names the file and line
    path = tmp_path / "neg.jsonl"
    path.write_text(json.dumps({"prompt": "p", "rejected": "r"}) + "\n" + json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(PreferenceFormatError, match=r"neg.jsonl:2: missing field\(s\) \['rejected'\]"):
        load_examples(PreferenceConfig(loss="d2o", data=str(path)))
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "rejected": "r"}) + "\n" for i in range(10)))
    tr, ev = load_examples(PreferenceConfig(loss="d2o", data=str(path)))
    assert len(tr) == 9 and len(ev) == 1 and all(e.chosen is None for e in tr + ev)
    with pytest.raises(PreferenceFormatError, match="chosen"):
        load_examples(PreferenceConfig(loss="dpo", data=str(path)))
    # the CLI checks the loss's inputs before it loads any model
    with pytest.raises(ValueError, match="--teacher"):
        main(["--loss", "dckd", "--model", str(tmp_path / "no-such-model"), "--data", str(path)])
    with pytest.raises(ValueError, match="only by the poft"):
        main(["--loss", "dpo", "--aligned-models", "smollm2", "--model", str(tmp_path / "no-such-model")])
    with pytest.raises(PreferenceFormatError, match="chosen"):
        main(["--loss", "ipo", "--model", str(tmp_path / "no-such-model"), "--data", str(path)])


def test_cli_d2o_and_dckd_end_to_end(tiny_lm_with_tokenizer, make_tiny_llama, tmp_path, capsys):
    lm, tok = tiny_lm_with_tokenizer
    model_dir, teacher_dir = tmp_path / "tiny", tmp_path / "teacher"
    lm.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    make_tiny_llama(vocab_size=len(tok), seed=3).save_pretrained(teacher_dir)
    tok.save_pretrained(teacher_dir)
    negatives = [{"prompt": e.prompt, "rejected": e.rejected} for e in arithmetic_preferences(12, seed=1)]
    data = tmp_path / "neg.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in negatives))
    common = ["--model", str(model_dir), "--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "--no-progress",
              "--device", "cpu", "--task-eval", "0", "--no-kl-eval"]
    assert main(["--loss", "d2o", "--data", str(data), "--d2o-samples", "2", "--d2o-max-new-tokens", "3",
                 "--out-dir", str(tmp_path / "d2o"), *common]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["steps"] == 2
    run = json.loads((tmp_path / "d2o" / "run.json").read_text())
    assert run["preference_config"]["loss"] == "d2o" and run["preference_config"]["d2o_samples"] == 2
    assert (tmp_path / "d2o" / "d2o_samples_train.pt").exists()
    prefs = write_preferences(tmp_path / "prefs.jsonl", arithmetic_preferences(12, seed=2))
    assert main(["--loss", "dckd", "--data", str(prefs), "--teacher", str(teacher_dir),
                 "--out-dir", str(tmp_path / "dckd"), *common]) == 0
    recs = [json.loads(x) for x in (tmp_path / "dckd" / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["step"] == 2 and "val_kd_chosen" in recs[-1]
