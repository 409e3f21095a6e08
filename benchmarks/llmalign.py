"""llmalign benchmark: DPO on SmolLM2-135M-Instruct (CPU) with the verifiable arithmetic preference set, and
training throughput of ``llmalign.train`` against TRL's ``DPOTrainer`` in the same run.

1. Quality: held-out preference accuracy (chosen implicit reward above rejected; 0 before training, where
   every implicit reward is 0), held-out likelihood accuracy (log p(chosen) > log p(rejected)) and the
   accuracy of greedy answers on held-out prompts, before and after ``--steps`` DPO steps.
2. Speed: the same model, data, batch size, sequence length, loss (sigmoid DPO, beta 0.1), optimiser
   (AdamW, same lr) and precomputed reference log-probs, ``--speed-steps`` optimiser steps each; tokens/s
   counts the non-padding tokens the policy's forward sees during the training steps, divided by the
   wall time of those steps (TRL: first step begin to last step end; llmalign: the fit loop's time).

Writes ``benchmarks/results/llmalign.json`` and prints a table. Needs ``trl`` (benchmark only: it is not a
dependency of alignkit); without it the TRL columns are null and the reason is recorded.

    python benchmarks/llmalign.py                       # the committed numbers
    python benchmarks/llmalign.py --steps 4 --speed-steps 2 --n-eval 16   # a quicker look
    python benchmarks/llmalign.py --quality-only        # redo only the DPO quality columns
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aligncore.lm import load_causal_lm  # noqa: E402
from aligncore.training import TrainConfig  # noqa: E402
from llmalign.data import arithmetic_preferences  # noqa: E402
from llmalign.train import PreferenceConfig, train_preferences  # noqa: E402


def machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads, " \
           f"python {platform.python_version()}, torch {torch.__version__}".replace("  ", " ")


def run_ours_speed(args, examples, out_dir: Path) -> dict:
    lm, tok = load_causal_lm(args.model)
    pc = PreferenceConfig(loss="dpo", beta=0.1, max_length=args.max_length, kl_eval=False, task_eval=0)
    tc = TrainConfig(out_dir=str(out_dir), max_epochs=1, max_steps=args.speed_steps, batch_size=args.batch_size,
                     lr=args.lr, progress=False, resume=False, restore_best=False, shuffle=False, device="cpu")
    run = train_preferences(lm, tok, examples, examples[: args.batch_size], pc, tc, model_name=args.model)
    rec = run.result.history[-1]
    tokens = rec["train_tokens"] * run.result.steps  # mean non-pad tokens per batch x batches (grad_accum 1)
    return {"tokens": tokens, "seconds": rec["seconds"], "tokens_per_s": tokens / rec["seconds"]}


def run_trl_speed(args, examples, out_dir: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    lm, tok = load_causal_lm(args.model)
    lm.train()
    rows = [{"prompt": [{"role": "user", "content": e.prompt}],
             "chosen": [{"role": "assistant", "content": e.chosen}],
             "rejected": [{"role": "assistant", "content": e.rejected}]} for e in examples]
    ds = Dataset.from_list(rows)
    cfg = DPOConfig(output_dir=str(out_dir), per_device_train_batch_size=args.batch_size, max_steps=args.speed_steps,
                    learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                    beta=0.1, loss_type=["sigmoid"], max_length=args.max_length, precompute_ref_log_probs=True,
                    use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                    dataloader_drop_last=False, seed=0, bf16=False, fp16=False, gradient_accumulation_steps=1)
    state = {"active": False, "tokens": 0, "t0": None, "t1": None, "steps": 0}

    def count(module, args_, kwargs):
        if state["active"]:
            am = kwargs.get("attention_mask")
            ids = kwargs.get("input_ids", args_[0] if args_ else None)
            state["tokens"] += int(am.sum()) if am is not None else int(ids.numel())

    class Timer(TrainerCallback):
        def on_step_begin(self, a, s, c, **kw):
            if state["t0"] is None:
                state["t0"] = time.perf_counter()
            state["active"] = True

        def on_step_end(self, a, s, c, **kw):
            state["active"] = False
            state["t1"] = time.perf_counter()
            state["steps"] += 1

    trainer = DPOTrainer(model=lm, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[Timer()])
    handle = lm.register_forward_pre_hook(count, with_kwargs=True)
    try:
        trainer.train()
    finally:
        handle.remove()
    secs = state["t1"] - state["t0"]
    return {"tokens": state["tokens"], "seconds": secs, "tokens_per_s": state["tokens"] / secs,
            "steps": state["steps"], "trl_version": __import__("trl").__version__}


def speed_only(args, train_ex, tmp: Path, load_start: float, t_all: float) -> int:
    """Rerun only the throughput comparison, interleaved, and update the speed columns of the results row."""
    result = json.loads(args.out.read_text())
    row = result["rows"][0]
    speed_ex = train_ex[: args.batch_size * args.speed_steps]
    ours, trl = [], []
    for r in range(args.speed_only):
        ours.append(run_ours_speed(args, speed_ex, tmp / f"ours{r}")["tokens_per_s"])
        print(f"repeat {r}: llmalign {ours[-1]:.2f} tokens/s", flush=True)
        res = run_trl_speed(args, speed_ex, tmp / f"trl{r}")
        trl.append(res["tokens_per_s"])
        print(f"repeat {r}: TRL {trl[-1]:.2f} tokens/s", flush=True)
    row.update({"speed_steps": args.speed_steps, "tokens_per_s": round(sum(ours) / len(ours), 2),
                "trl_tokens_per_s": round(sum(trl) / len(trl), 2),
                "ratio_vs_trl": round(sum(ours) / sum(trl), 3),
                "tokens_per_s_runs": ", ".join(f"{x:.2f}" for x in ours),
                "trl_tokens_per_s_runs": ", ".join(f"{x:.2f}" for x in trl), "trl_version": res["trl_version"],
                "speed_load_average": f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end "
                                      f"({os.cpu_count()} cores)"})
    result["budget"] += (f"; speed columns re-measured by --speed-only {args.speed_only} ({args.speed_steps} steps per "
                         f"run, llmalign and TRL interleaved, {time.perf_counter() - t_all:.0f} s wall)")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(result))
    return 0


TABLE_KEYS = ["model", "loss", "steps", "batch_size", "train_seconds", "pref_accuracy_before", "pref_accuracy_after",
              "likelihood_accuracy_before", "likelihood_accuracy_after", "task_accuracy_before", "task_accuracy_after",
              "kl_ref_after", "tokens_per_s", "trl_tokens_per_s", "ratio_vs_trl"]


def markdown_table(result: dict) -> str:
    """The README table of a results file."""
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(TABLE_KEYS) + " |", "|" + "---|" * len(TABLE_KEYS)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k in TABLE_KEYS) + " |" for r in result["rows"]]
    lines.append(f"\n{result['machine']}; torch threads {result['torch_threads']}; {result['budget']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=100, help="DPO optimiser steps of the quality run")
    ap.add_argument("--batch-size", type=int, default=4, help="preference pairs per step")
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--n-train", type=int, default=400, help="training pairs (only steps x batch are used)")
    ap.add_argument("--n-eval", type=int, default=64, help="held-out pairs / prompts")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=16,
                    help="greedy answer length of the task evaluation (SmolLM2 often echoes 'a + b = c': up to 11 "
                         "tokens, digits are single tokens)")
    ap.add_argument("--speed-steps", type=int, default=3, help="optimiser steps of each throughput run")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "llmalign.json")
    ap.add_argument("--table", action="store_true", help="only print the markdown table of --out and exit")
    ap.add_argument("--quality-only", action="store_true",
                    help="only rerun the DPO quality run and update the quality columns of the existing --out row")
    ap.add_argument("--speed-only", type=int, default=0, metavar="R",
                    help="only rerun the throughput comparison R times, interleaved (llmalign, TRL, llmalign, ...), "
                         "and update the speed columns of the existing --out row with the means")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    load_start = os.getloadavg()[0]
    data = arithmetic_preferences(args.n_train + args.n_eval, seed=0)
    train_ex, eval_ex = data[: args.n_train], data[args.n_train:]
    tmp = Path(tempfile.mkdtemp(prefix="llmalign-bench-"))
    if args.speed_only:
        return speed_only(args, train_ex, tmp, load_start, t_all)

    # 1. quality: DPO steps, metrics before and after
    lm, tok = load_causal_lm(args.model)
    pc = PreferenceConfig(loss="dpo", beta=0.1, max_length=args.max_length, kl_eval=True, task_eval=args.n_eval,
                          max_new_tokens=args.max_new_tokens, eval_batch_size=8, ref_batch_size=8)
    tc = TrainConfig(out_dir=str(tmp / "quality"), max_epochs=1, max_steps=args.steps, batch_size=args.batch_size,
                     lr=args.lr, progress=False, resume=False, restore_best=False, device="cpu", seed=0)
    t0 = time.perf_counter()
    run = train_preferences(lm, tok, train_ex, eval_ex, pc, tc, model_name=args.model, eval_before=True)
    quality_s = time.perf_counter() - t0
    before, after = run.initial_metrics, run.result.final_metrics
    train_s = run.result.history[-1]["seconds"]
    del lm, run
    print(f"quality run: {args.steps} steps in {train_s:.0f} s (whole run with evaluations {quality_s:.0f} s)", flush=True)

    quality = {
        "model": args.model, "loss": "dpo", "beta": 0.1, "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "n_train": args.n_train, "n_eval": args.n_eval, "train_seconds": round(train_s, 1),
        "max_new_tokens": args.max_new_tokens,
        "pref_accuracy_before": before["val_accuracy"], "pref_accuracy_after": after["val_accuracy"],
        "likelihood_accuracy_before": before["val_likelihood_accuracy"],
        "likelihood_accuracy_after": after["val_likelihood_accuracy"],
        "task_accuracy_before": before["task_accuracy"], "task_accuracy_after": after["task_accuracy"],
        "val_loss_before": before["val_loss"], "val_loss_after": after["val_loss"],
        "margin_after": after["val_margin"], "kl_ref_after": after["val_kl_ref"],
        "top10_entropy_before": before["val_top10_entropy"], "top10_entropy_after": after["val_top10_entropy"],
        "top10_mass_before": before["val_top10_mass"], "top10_mass_after": after["val_top10_mass"],
    }
    if args.quality_only:
        result = json.loads(args.out.read_text())
        row = result["rows"][0]
        row.update(quality)
        row["load_average"] = (f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end ({os.cpu_count()} "
                               "cores; quality run)")
        speed_part = result["budget"].split("; speed:", 1)[1] if "; speed:" in result["budget"] else ""
        result["budget"] = (f"CPU only; quality (re-measured by --quality-only, {quality_s:.0f} s wall): "
                            f"{args.steps} DPO steps x {args.batch_size} pairs (lr {args.lr}), {args.n_eval} held-out "
                            f"pairs/prompts, greedy answers of up to {args.max_new_tokens} tokens"
                            + (f"; speed:{speed_part}" if speed_part else ""))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(markdown_table(result))
        return 0

    # 2. speed: same data slice for both
    speed_ex = train_ex[: args.batch_size * args.speed_steps]
    ours = run_ours_speed(args, speed_ex, tmp / "speed_ours")
    print(f"llmalign: {ours['tokens_per_s']:.1f} tokens/s", flush=True)
    trl_res, trl_note = None, None
    if args.skip_trl:
        trl_note = "skipped (--skip-trl)"
    else:
        try:
            trl_res = run_trl_speed(args, speed_ex, tmp / "speed_trl")
            print(f"TRL: {trl_res['tokens_per_s']:.1f} tokens/s", flush=True)
        except ImportError as e:
            trl_note = f"TRL not importable: {e}"
    row = {
        **quality,
        "speed_steps": args.speed_steps, "tokens_per_s": round(ours["tokens_per_s"], 2),
        "trl_tokens_per_s": round(trl_res["tokens_per_s"], 2) if trl_res else None,
        "ratio_vs_trl": round(ours["tokens_per_s"] / trl_res["tokens_per_s"], 3) if trl_res else None,
        "tokens_ours": ours["tokens"], "tokens_trl": trl_res["tokens"] if trl_res else None,
        "trl_version": trl_res["trl_version"] if trl_res else None,
    }
    if trl_note:
        row["trl_note"] = trl_note
    row["load_average"] = f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end ({os.cpu_count()} cores)"
    result = {"machine": machine(), "torch_threads": torch.get_num_threads(),
              "budget": f"CPU only; quality: {args.steps} DPO steps x {args.batch_size} pairs (lr {args.lr}), "
                        f"{args.n_eval} held-out pairs/prompts; speed: {args.speed_steps} steps each for llmalign "
                        f"and TRL; whole benchmark {time.perf_counter() - t_all:.0f} s wall",
              "rows": [row]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
