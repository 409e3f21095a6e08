"""Is Alt-MoE's deficit a matter of tuning? A shared hyperparameter grid for the three connectors on one pair set,
each configuration trained with several seeds, the configuration of each model chosen by its mean validation
Recall@1 (never by test), then its test Recall@1 in both directions reported.

    python benchmarks/altmoe_grid.py --dataset movielens --seeds 0 1 --out benchmarks/results/altmoe_grid.json
    python benchmarks/altmoe_grid.py --dataset dbp15k-zh-en --seeds 0 1 --grid tau=0.1,0.2 dropout=0,0.1 \
        --out runs/altmoe_grid_dbp15k.json      # another grid around a corner (session 14)
    python benchmarks/altmoe_grid.py --models altmoe --grid experts=6,12,24 top_k=1,2,4 --only \
        --out runs/altmoe_grid_capacity.json    # capacity axes only (session 15)

Grid (every model gets the same one): InfoNCE temperature {0.05, 0.1} x regression weight {1, 0} x dropout
{0.1, 0.3}; the rest is the budget of ``benchmarks/altmoe.py`` (20 epochs, batch 256, AdamW lr 1e-3 wd 1e-4,
latent 256, Alt-MoE 12 experts x 256 top-4, MLP hidden 1024). The linear baseline has neither dropout nor a
regression term, so only the temperature changes it. ``--grid FIELD=V1,V2`` replaces an axis or adds one for any
numeric ``AltMoEConfig`` field (``experts``, ``top_k``, ``hidden``, ...: integers stay integers); ``--only`` drops
the default axes that ``--grid`` does not name, so they keep ``AltMoEConfig``'s defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, run_dir  # noqa: E402
from altmoe import MODELS, load  # noqa: E402

from mmalign.altmoe.config import AltMoEConfig, AltMoETrainConfig  # noqa: E402
from mmalign.altmoe.train import train_altmoe  # noqa: E402

GRID = {"tau": [0.05, 0.1], "reg_weight": [1.0, 0.0], "dropout": [0.1, 0.3]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="movielens")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--grid", nargs="*", default=[], metavar="FIELD=V1,V2",
                    help="values of a grid axis: replaces tau, reg_weight or dropout, or adds any other numeric "
                         "AltMoEConfig field, e.g. dropout=0,0.1 experts=6,24")
    ap.add_argument("--only", action="store_true", help="use only the axes named by --grid")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args(argv)
    types = {f.name: type(f.default) for f in dataclasses.fields(AltMoEConfig)}
    grid = {} if args.only else dict(GRID)
    for item in args.grid:
        name, _, vals = item.partition("=")
        if types.get(name) not in (int, float) or name == "split_seed" or not vals:
            numeric = sorted(k for k, t in types.items() if t in (int, float) and k != "split_seed")
            ap.error(f"--grid {item!r}: expected FIELD=V1,V2,... with FIELD one of {numeric}")
        try:
            grid[name] = [int(v) if types[name] is int else float(v) for v in vals.split(",")]
        except ValueError:
            ap.error(f"--grid {item!r}: the values of {name} must be {types[name].__name__}s")
    if not grid:
        ap.error("the grid is empty: name at least one axis with --grid")
    torch.set_num_threads(args.threads)
    pairs = load(args.dataset)
    runs = []
    for model in args.models:
        for vals in itertools.product(*grid.values()):
            kw = {"experts": 12, "top_k": 4, "latent": 256, "hidden": 256, **dict(zip(grid, vals, strict=True))}
            for seed in args.seeds:
                cfg = AltMoEConfig(model=model, **kw)
                tc = AltMoETrainConfig(out_dir=run_dir(f"altmoe-grid-{args.dataset}-{model}-"), max_epochs=args.epochs,
                                       batch_size=256, lr=1e-3, weight_decay=1e-4, patience=None, seed=seed,
                                       progress=False, device="cpu")
                t0 = time.perf_counter()
                out = train_altmoe(pairs, cfg, tc)
                shutil.rmtree(tc.out_dir, ignore_errors=True)
                runs.append({"model": model, **kw, "seed": seed, "val_mean_recall@1": out.fit.best_metric,
                             **{k: v for k, v in out.test.items() if k.endswith("recall@1")},
                             "seconds": time.perf_counter() - t0})
                print(json.dumps(runs[-1]), flush=True)
    dirs = [k for k in runs[0] if k.endswith("_recall@1") and "->" in k]
    chosen = []
    for model in args.models:
        by_cfg: dict[tuple, list[dict]] = {}
        for r in runs:
            if r["model"] == model:
                by_cfg.setdefault(tuple(r[k] for k in grid), []).append(r)
        best = max(by_cfg, key=lambda c: statistics.mean(r["val_mean_recall@1"] for r in by_cfg[c]))
        rs = by_cfg[best]
        chosen.append({"model": model, **dict(zip(grid, best, strict=True)),
                       "val_mean_recall@1": statistics.mean(r["val_mean_recall@1"] for r in rs),
                       **{d: statistics.mean(r[d] for r in rs) for d in dirs}})
    for c in chosen:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "dataset": args.dataset, "seeds": args.seeds,
                                        "epochs": args.epochs, "grid": grid, "chosen": chosen, "runs": runs},
                                       indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
