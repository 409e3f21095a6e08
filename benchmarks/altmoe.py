"""Alt-MoE against a CLIP-style linear projection and a single-MLP connector, same budget, two real pair sets.

    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py            # both sets, 3 seeds, one process
    # what made benchmarks/results/altmoe.json: one process per (dataset, seed), side by side, then merged
    for s in 0 1 2; do python benchmarks/altmoe.py --datasets movielens --seeds $s --out ml_$s.json & done
    for s in 0 1 2; do ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh-en \
        --seeds $s --out dbp_$s.json & done; wait
    python benchmarks/altmoe.py --merge ml_?.json dbp_?.json               # -> benchmarks/results/altmoe.json
    python benchmarks/altmoe.py --table                                    # the README table
    # session 3 re-ran the DBP15K rows (TransE joined the structure side) in one process, seeds in turn, and
    # replaced them in the results file:
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh-en --seeds 0 1 2 --out dbp.json
    # session 5 added the ja-en pair and both pairs pooled (seeds per process for ja-en, then --merge):
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-ja-en --seeds 0 --out ja_0.json
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh+ja-en --threads 2 --out pool.json
    # ablations (docs/sections/altmoe.md; not in the results file): --set overrides AltMoEConfig fields,
    # --train-set AltMoETrainConfig fields, for every model of the run
    python benchmarks/altmoe.py --datasets movielens --models altmoe --splits 10 --set balance_weight=0 --out nobal.json
    python benchmarks/altmoe.py --datasets movielens --splits 10 --set tau=0.03 --out tau003.json
    python benchmarks/altmoe.py --datasets movielens --models altmoe --splits 10 --set multi_gate=true --out mg.json
    # session 17, token-level sources (the text side per token: MovieLens texts, DBP15K names), paired by seed
    python benchmarks/altmoe.py --datasets movielens --models altmoe --splits 10 --set text_tokens=true --out tok.json
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh-en --seeds 0 1 2 3 4 5 6 7 8 9 \
        --set text_tokens=true --out dbp_tok.json       # and without --set for the pooled runs they pair with
    python benchmarks/altmoe.py --datasets movielens --splits 10 --set text_tokens=true token_stats=true --out tst.json
    # session 18, a token view of the DBP15K structure side too ([entity | neighbour] tokens, 16 at most)
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh-en --seeds 0 1 2 3 4 \
        --set text_tokens=true structure_tokens=16 --out dbp_st16.json     # also seeds 5-9, and dbp15k-ja-en
    python benchmarks/altmoe.py --datasets movielens --splits 10 \
        --train-set lr_schedule=cosine warmup_epochs=1 max_grad_norm=1 --out cosine.json
    # session 19, the DBP15K rows of benchmarks/results/altmoe.json: both token views, seeds 0-19 (two processes of
    # ten seeds), per-query ranks kept; then the paired differences with seed, query and two-way bootstrap SEs
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-ja-en --seeds 0 1 2 3 4 5 6 7 8 9 \
        --set text_tokens=true structure_tokens=16 --ranks ranks --out ja_a.json        # and 10-19, and zh-en
    python benchmarks/altmoe.py --merge ja_a.json ja_b.json --out ja.json
    python benchmarks/altmoe.py --paired ranks --out paired.json
    # session 20, two zh-en variants against the linear map (docs/sections/altmoe.md; not in the results file)
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh-en --seeds 0 1 2 3 4 5 6 7 8 9 \
        --set text_tokens=true structure_tokens=16 token_stats=true --ranks ranks_ts --out zh_ts_a.json  # and 10-19
    ALIGNKIT_DATA=/work/shared/data python benchmarks/altmoe.py --datasets dbp15k-zh-en --models altmoe linear \
        --seeds 0 1 2 3 4 5 6 7 8 9 --set text_tokens=true structure_tokens=32 --ranks ranks_st32 --out zh_st32_a.json  # and 10-19

Pair sets (frozen encoders, embeddings cached on disk once):

- ``movielens``: MovieLens latest-small, 9,724 rated movies; ``text`` = SmolLM2-135M content embeddings
  (title, genres, tags; mean of layers 7-8 states, 576-d, the full store, built into $ALIGNKIT_CACHE on first
  use) vs ``behaviour`` = rank-64 PureSVD item factors of the ratings; random 80/10/10 split by movie; test
  retrieval among the 972 test movies.
- ``dbp15k-zh-en``: DBP15K zh-en, ``structure`` = spectral (96-d) + relation-usage (32-d) + TransE (128-d, trained
  on the KG's own triples, cached) embeddings of the Chinese KG vs ``names`` = SmolLM2 embeddings (input embeddings + first layer, pooled) of the English names; the 4,500 seed links (minus 450
  for validation) train, retrieval among the 10,500 reference links tests. ``dbp15k-ja-en`` the same for the
  Japanese KG; ``dbp15k-zh+ja-en`` both pooled (each KG's structure embedded on its own; English entities linked
  in both pairs kept once), retrieval among 17,570 reference links.

Budget, identical for every model: the same epochs, batch 256, AdamW lr 1e-3, weight decay 1e-4, no early
stopping, the epoch with the best mean validation Recall@1 kept; latent width 256; Alt-MoE 12 experts of hidden
256, top-4; the MLP connector one expert of hidden 4 x 256 = 1024 (same per-input compute as top-4); the
linear baseline one projection per modality. Each (dataset, model) runs with several seeds; rows report the
mean over seeds and the standard deviation of Recall@1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _common import run_dir  # noqa: E402

from mmalign.altmoe.config import AltMoEConfig, AltMoETrainConfig  # noqa: E402
from mmalign.altmoe.data import (  # noqa: E402
    dbp15k_pairs,
    dbp15k_pooled_pairs,
    load_pairs,
    movielens_pairs,
    movielens_text_store,
)
from mmalign.altmoe.train import train_altmoe  # noqa: E402

MODELS = ("altmoe", "linear", "mlp")


def export(pairs, path: Path) -> None:
    """Write a pair set as a folder of float16 ``<modality>.npy`` + ``split.json`` (read by folder_pairs), so the
    benchmark can run where the encoders and raw data are not (a GPU machine)."""
    import numpy as np

    path.mkdir(parents=True, exist_ok=True)
    for k, v in pairs.modalities.items():
        np.save(path / f"{k}.npy", v.numpy().astype(np.float16))
    (path / "split.json").write_text(json.dumps({p: getattr(pairs, p).tolist() for p in ("train", "val", "test")}))
    (path / "info.json").write_text(json.dumps({"name": pairs.name, **pairs.info}, default=str))


def load(name: str, pairs_dir: str | None = None, split_seed: int = 0, tokens: bool = False,
         structure_tokens: int = 0):
    if tokens or structure_tokens:  # --set text_tokens=true / structure_tokens=K: token views, rows their mean
        if pairs_dir is not None:
            raise SystemExit("text_tokens / structure_tokens: the pairs are built here (not with --pairs-dir)")
        try:
            return load_pairs(name, seed=split_seed, tokens=tokens, structure_tokens=structure_tokens)
        except ValueError as err:
            raise SystemExit(str(err)) from None
    if pairs_dir is not None:
        from mmalign.altmoe.data import folder_pairs

        p = folder_pairs(Path(pairs_dir) / name)
        p.name = name
        return p
    if name == "movielens":
        store = movielens_text_store(progress=True)
        return movielens_pairs(text_store=store.path, seed=split_seed)
    if name in ("dbp15k-zh-en", "dbp15k-ja-en"):
        return dbp15k_pairs(name[len("dbp15k-"):].replace("-", "_"), progress=True)
    if name == "dbp15k-zh+ja-en":
        return dbp15k_pooled_pairs(("zh_en", "ja_en"), progress=True)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="*", default=["movielens", "dbp15k-zh-en"])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--splits", type=int, default=0,
                    help="movielens: K random 80/10/10 splits (split seed s = model seed s = 0..K-1) instead of "
                         "--seeds on split 0, so that the test noise of 972 movies averages out")
    ap.add_argument("--schedule", default="round_robin", choices=["round_robin", "recall"],
                    help="direction policy of every model's alternating training")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="ablation: override AltMoEConfig fields for every model (e.g. balance_weight=0 tau=0.03); "
                         "recorded in the budget string")
    ap.add_argument("--train-set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="ablation: override AltMoETrainConfig fields for every model (e.g. lr_schedule=cosine "
                         "warmup_epochs=1 max_grad_norm=1); recorded in the budget string")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto", help="training device ('auto': CUDA when present)")
    ap.add_argument("--pairs-dir", default=None, help="read each dataset from <dir>/<dataset> (float16 .npy folders "
                                                      "written by --export) instead of building it")
    ap.add_argument("--export", default=None, help="build the pair sets, write them under this folder and exit")
    ap.add_argument("--out", default=None, help="result file (default benchmarks/results/altmoe.json; with "
                    "--paired, no file unless given)")
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    ap.add_argument("--ranks", default=None, metavar="DIR", help="also write each run's per-query test ranks "
                    "to DIR/<dataset>/<model>-split<S>-seed<N>.npz (read by --paired)")
    ap.add_argument("--paired", default=None, metavar="DIR", help="Alt-MoE against each baseline from the rank "
                    "files under DIR (--ranks): paired Recall@1 differences with seed, query and two-way "
                    "bootstrap standard errors; printed, and written to --out when it is given")
    ap.add_argument("--merge", nargs="*", default=None, help="combine result files of separate runs (e.g. one per "
                                                             "seed or dataset, run in parallel) into --out and exit")
    args = ap.parse_args(argv)
    write_paired = args.out is not None
    args.out = args.out or str(ROOT / "benchmarks" / "results" / "altmoe.json")
    if args.merge:
        res = merge([json.loads(Path(f).read_text()) for f in args.merge])
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        print(table(res))
        return 0
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    if args.paired:
        res = paired(Path(args.paired))
        print(paired_table(res))
        if write_paired:
            Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    overrides = parse_overrides(args.set)
    train_overrides = parse_overrides(args.train_set, AltMoETrainConfig(),
                                      fixed=("out_dir", "max_epochs", "batch_size", "lr", "weight_decay", "seed"))
    torch.set_num_threads(args.threads)
    if args.export:
        for ds in args.datasets:
            export(load(ds), Path(args.export) / ds)
            print(f"exported {ds} to {Path(args.export) / ds}")
        return 0
    dev = "cuda:0" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    budget = (f"{args.epochs} epochs each, batch 256, AdamW lr 1e-3 wd 1e-4, best epoch by mean val Recall@1, "
              f"latent 256; altmoe 12 experts x hidden 256 top-4; mlp 1 expert x hidden 1024; linear; "
              f"{args.schedule} schedule; seeds "
              f"{args.seeds}" + (f" (movielens: {args.splits} random splits, split seed = model seed = 0..{args.splits - 1})"
                                 if args.splits else "") + f"; device {dev}" + (f" ({torch.cuda.get_device_name(0)}, bf16 autocast)"
                                                if dev.startswith("cuda") else f", {args.threads} torch thread(s)"))
    if overrides or train_overrides:
        budget += "; overrides " + ", ".join(f"{k}={v}" for k, v in {**overrides, **train_overrides}.items())
    rows = []
    for ds in args.datasets:
        t0 = time.perf_counter()
        # (split seed, model seed) of every run
        plan = [(s, s) for s in range(args.splits)] if args.splits and ds == "movielens" else \
            [(0, s) for s in args.seeds]
        by_split = {sp: load(ds, args.pairs_dir, sp, bool(overrides.get("text_tokens")),
                          int(overrides.get("structure_tokens", 0)))
                    for sp in dict.fromkeys(sp for sp, _ in plan)}
        pairs = by_split[plan[0][0]]
        print(f"{ds}: {len(pairs)} pairs {pairs.dims}, train/val/test {pairs.train.numel()}/{pairs.val.numel()}/"
              f"{pairs.test.numel()}, {len(by_split)} split(s) (loaded in {time.perf_counter() - t0:.0f} s)",
              flush=True)
        for model in args.models:
            runs = []
            for split_seed, seed in plan:
                pairs = by_split[split_seed]
                cfg = AltMoEConfig(**{"model": model, "experts": 12, "top_k": 4, "latent": 256, "hidden": 256,
                                      "schedule": args.schedule, **overrides})
                tcfg = AltMoETrainConfig(out_dir=run_dir(f"altmoe-bench-{ds}-{model}-{seed}-"), max_epochs=args.epochs,
                                         batch_size=256, lr=1e-3, weight_decay=1e-4, patience=None, seed=seed,
                                         progress=False, device=dev, **train_overrides)
                t1 = time.perf_counter()
                out = train_altmoe(pairs, cfg, tcfg)
                shutil.rmtree(tcfg.out_dir, ignore_errors=True)
                runs.append((out, time.perf_counter() - t1))
                if args.ranks:
                    save_ranks(Path(args.ranks) / ds / f"{model}-split{split_seed}-seed{seed}.npz", out, pairs)
                r1 = {k: round(v, 4) for k, v in out.test.items() if k.endswith("recall@1")}
                print(f"  {model} seed {seed}: {r1} best epoch {out.fit.best_epoch} "
                      f"({out.seconds_per_epoch:.2f} s/epoch)", flush=True)
            for s, t in ((0, 1), (1, 0)):
                d = f"{pairs.names[s]}->{pairs.names[t]}"
                vals = {m: [o.test[f"{d}_{m}"] for o, _ in runs] for m in ("recall@1", "recall@5", "recall@10", "mrr")}
                rows.append({"dataset": ds, "direction": d, "model": model,
                             **{m: round(statistics.mean(v), 4) for m, v in vals.items()},
                             "recall@1_std": round(statistics.pstdev(vals["recall@1"]), 4),
                             "seeds": len(runs), "splits": len({sp for sp, _ in plan}),
                             "recall@1_runs": [round(v, 4) for v in vals["recall@1"]],
                             "val_mean_recall@1_runs": [None if o.fit.best_metric is None else round(o.fit.best_metric, 4)
                                                        for o, _ in runs],
                             "params": runs[0][0].n_params,
                             "seconds_per_epoch": round(statistics.mean(o.seconds_per_epoch for o, _ in runs), 3),
                             "train_pairs": int(pairs.train.numel()), "test_pairs": int(pairs.test.numel())})
    machine = f"{platform.machine()} {os.cpu_count()} cores" + (
        f", {torch.cuda.get_device_name(0)}" if dev.startswith("cuda") else ", CPU shared with other jobs")
    res = {"machine": machine, "torch_threads": torch.get_num_threads(), "budget": budget, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(table(res))
    return 0


def parse_overrides(items: list[str], defaults=None, *, fixed: tuple[str, ...] = ("model", "pairs")) -> dict:
    """``FIELD=VALUE`` strings -> keyword arguments of a config (``AltMoEConfig`` by default), each value cast to
    the field's default type (float where the default is None; ``none`` gives None). ``fixed`` fields are the
    benchmark's own and cannot be overridden."""
    defaults = AltMoEConfig() if defaults is None else defaults
    name = type(defaults).__name__
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not hasattr(defaults, key) or key in fixed:
            raise SystemExit(f"--set/--train-set {item!r}: expected FIELD=VALUE with FIELD a {name} option "
                             f"other than {'/'.join(fixed)}")
        default = getattr(defaults, key)
        kind = float if default is None else type(default)
        if value.lower() == "none":
            out[key] = None
        else:
            out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def merge(results: list[dict]) -> dict:
    """Rows of the same (dataset, direction, model) from several files: metrics averaged (weighted by seeds), the
    per-run lists concatenated in file order, ``recall@1_std`` the population std over every run (over the files'
    means only where a file predates the per-run lists)."""
    groups: dict[tuple, list[dict]] = {}
    for res in results:
        for r in res["rows"]:
            groups.setdefault((r["dataset"], r["direction"], r["model"]), []).append(r)
    rows = []
    for rs in groups.values():
        n = sum(r["seeds"] for r in rs)
        out = dict(rs[0])
        for m in ("recall@1", "recall@5", "recall@10", "mrr", "seconds_per_epoch"):
            out[m] = round(sum(r[m] * r["seeds"] for r in rs) / n, 4)
        runs = [v for r in rs for v in r.get("recall@1_runs", [])]
        if len(runs) == n:  # every file lists its runs
            out["recall@1_runs"] = runs
            out["val_mean_recall@1_runs"] = [v for r in rs for v in r.get("val_mean_recall@1_runs", [])]
            out["recall@1_std"] = round(statistics.pstdev(runs), 4)
        else:
            out.pop("recall@1_runs", None)
            out.pop("val_mean_recall@1_runs", None)
            out["recall@1_std"] = round(statistics.pstdev([r["recall@1"] for r in rs]), 4) if len(rs) > 1 else \
                rs[0]["recall@1_std"]
        out["seeds"] = n
        rows.append(out)
    import re

    seeds = sorted({int(x) for r in results for x in re.findall(r"\d+", re.search(r"seeds \[([^]]*)\]",
                                                                                   r["budget"]).group(1))})
    budgets = list(dict.fromkeys(re.sub(r"; seeds \[[^]]*\]", "", r["budget"]) for r in results))
    return {"machine": results[0]["machine"], "torch_threads": results[0]["torch_threads"],
            "budget": " | ".join(budgets) + f"; seeds {seeds}, one process per (dataset, seed) run side by side "
                      "and merged (--merge)", "rows": rows}


def save_ranks(path: Path, out, pairs) -> None:
    """One run's per-query test ranks: ``directions`` (names), ``ranks`` (directions, queries), ``test`` rows."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(out.test_ranks)
    np.savez_compressed(path, directions=np.array(names), test=pairs.test.numpy(),
                        ranks=torch.stack([out.test_ranks[n] for n in names]).float().numpy())


def paired(root: Path, k: int = 1) -> dict:
    """Alt-MoE minus each baseline on Recall@k from the ``--ranks`` files: runs are matched by (split, seed).
    Where every run tests the same rows (DBP15K's fixed split) the difference gets three standard errors
    (:func:`aligncore.metrics.paired_runs_hits`: over seeds, over test queries, and a two-way bootstrap of
    both); where the test rows differ between runs (MovieLens splits) only the per-run one, which then holds the
    test sampling too."""
    import numpy as np

    from aligncore.metrics import paired_runs_hits

    rows = []
    for ds_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        runs: dict[str, dict[str, dict]] = {}
        for f in sorted(ds_dir.glob("*-split*-seed*.npz")):
            model, run = f.stem.split("-", 1)
            z = np.load(f)
            runs.setdefault(model, {})[run] = {"test": z["test"], **dict(zip(z["directions"].tolist(), z["ranks"], strict=True))}
        for base in ("linear", "mlp"):
            common = sorted(set(runs.get("altmoe", {})) & set(runs.get(base, {})),
                            key=lambda r: tuple(int(x) for x in r.replace("split", "").split("-seed")))
            if not common:
                continue
            a, b = [runs["altmoe"][r] for r in common], [runs[base][r] for r in common]
            same_rows = all(np.array_equal(x["test"], a[0]["test"]) for x in a + b)
            for d in sorted(k_ for k_ in a[0] if k_ != "test"):
                ra, rb = np.stack([x[d] for x in a]), np.stack([x[d] for x in b])
                row = {"dataset": ds_dir.name, "direction": d, "a": "altmoe", "b": base, "metric": f"recall@{k}",
                       "runs": common, "a_mean": float((ra <= k).mean()), "b_mean": float((rb <= k).mean()),
                       "wins": int(((ra <= k).mean(1) > (rb <= k).mean(1)).sum())}
                if same_rows:
                    r = paired_runs_hits(torch.from_numpy(ra), torch.from_numpy(rb), k)
                    row.update(diff=r.diff, se_seed=r.se_seed, se_query=r.se_query, se_both=r.se_both,
                               queries=r.n)
                else:
                    per_run = (ra <= k).mean(1) - (rb <= k).mean(1)
                    row.update(diff=float(per_run.mean()), se_seed=float(per_run.std(ddof=1) / np.sqrt(len(per_run))),
                               se_query=None, se_both=None, queries=None)
                rows.append(row)
    return {"ranks": str(root), "rows": rows}


def paired_table(res: dict) -> str:
    cols = ["dataset", "direction", "b", "runs", "a_mean", "b_mean", "diff", "se_seed", "se_query", "se_both",
            "wins"]
    lines = ["| " + " | ".join(c if c != "b" else "baseline" for c in cols) + " |", "|---" * len(cols) + "|"]
    for r in res["rows"]:
        cells = [str(len(r[c])) if c == "runs" else "-" if r[c] is None else f"{r[c]:+.4f}" if c == "diff"
                 else f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(res: dict) -> str:
    head = "| dataset | direction | model | R@1 | R@5 | R@10 | MRR | R@1 std | params | s/epoch |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in res["rows"]:
        lines.append(f"| {r['dataset']} | {r['direction']} | {r['model']} | {r['recall@1']:.3f} | {r['recall@5']:.3f} "
                     f"| {r['recall@10']:.3f} | {r['mrr']:.3f} | {r['recall@1_std']:.3f} | {r['params']:,} "
                     f"| {r['seconds_per_epoch']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
