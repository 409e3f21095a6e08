"""Semantic IDs compared by TIGER-style generative retrieval (mmalign.das).

For each dataset, build item semantic IDs with plain RQ-VAE, two-stage aligned, and DAS (one stage), add LETTER's
published IDs on Beauty, then train the same small generative retriever on each ID set with the same budget and
score Recall@5/10, NDCG@5/10 on the leave-one-out test items of a fixed sample of users; utilisation and collision
rate per ID set. TIGER's published Beauty figures are listed beside ours as the anchor (their retriever is far
larger and trained far longer).

    python benchmarks/das.py                       # Beauty and MovieLens latest-small, default budget
    python benchmarks/das.py --datasets beauty --retriever-steps 300 --eval-users 1000
    python benchmarks/das.py --markdown            # print the table of benchmarks/results/das.json

Writes benchmarks/results/das.json (rewritten after every row, so a stopped run keeps what it measured).

The committed results were made on the shared CPU by these runs (IDs built once, then reused by two parallel
retriever runs; MovieLens in its own run), then joined:

    python benchmarks/das.py --datasets beauty --work runs/bench-das   # built runs/bench-das/beauty/*/ids.json
    mv runs/bench-das runs/bench-das-ids                               # (its retriever run was stopped)
    python benchmarks/das.py --datasets beauty --methods das,letter --ids-from runs/bench-das-ids \
        --work runs/bench-das-b1 --retriever-steps 150 --eval-users 1000 --suffix _b1
    python benchmarks/das.py --datasets beauty --methods rqvae,two-stage --ids-from runs/bench-das-ids \
        --work runs/bench-das-b2 --retriever-steps 150 --eval-users 1000 --suffix _b2
    python benchmarks/das.py --datasets ml-latest-small --suffix _ml --work runs/bench-das-ml --id-epochs 2 \
        --rqvae-epochs 20 --retriever-steps 150 --eval-users 610
    cp benchmarks/results/das_b1.json benchmarks/results/das.json
    python benchmarks/das.py --merge _b2 && python benchmarks/das.py --merge _ml

The MovieLens rows were then re-measured at a real retriever budget (session 2; same IDs, one process per ID set,
side by side), and replaced the 150-step ones in das.json:

    for m in das two-stage rqvae; do python benchmarks/das.py --datasets ml-latest-small --methods $m \
        --ids-from runs/bench-das-ml --retriever-steps 4000 --eval-users 610 --suffix _ml_$m \
        --work runs/bench-das-ml-4k_$m & done; wait

The Beauty rows were re-measured the same way on a lent H200 (session 3; the session-1 IDs copied to
.gpu/das/beauty/<method>/ids.json, `tools/gpu_check.sh das`, one process per ID set on the one GPU):

    python benchmarks/das.py --datasets beauty --methods $m --ids-from .gpu/das --retriever-steps 4000 \
        --eval-users 1000 --suffix _gpu_$m --work /tmp/das_$m --device cuda --threads 1

Session 5 re-trained the Beauty retrievers of the three content-only ID sets on the CPU with the same budget and
scored the test on every user (one process per ID set; the rows replaced those in das.json)::

    python benchmarks/das.py --datasets beauty --methods das --ids-from .gpu/das --retriever-steps 4000 \
        --eval-users 1000 --test-users -1 --suffix _all_das --work /tmp/das_all_das --threads 1

Session 6 added a second replicate of the whole pipeline (IDs built again and the retriever trained with seed 1,
same budget; one process per ID set, three side by side on the 2-core CPU) and folded it into the rows (means over
seeds 0 and 1, each seed's values under ``runs``). The runs write ``benchmarks/results/das<suffix>.json``; after
the fold those files were moved out of ``benchmarks/results/`` (the README builder reads every ``das*.json``
there)::

    python benchmarks/das.py --datasets beauty --methods $m --seed 1 --retriever-steps 4000 --eval-users 1000 \
        --test-users -1 --suffix _s1_$m --work runs/s6/das/work_s1 --threads 1
    python benchmarks/das.py --datasets ml-latest-small --methods $m --seed 1 --id-epochs 2 --rqvae-epochs 20 \
        --retriever-steps 4000 --eval-users 610 --suffix _ml_s1_$m --work runs/s6/das/work_ml_s1 --threads 1
    python benchmarks/das.py --add-seeds benchmarks/results/das_s1_*.json benchmarks/results/das_ml_s1_*.json

and compared DAS with the other ID sets user by user on the same test users (``--paired``; each retriever leaves
its per-user test ranks in ``test_ranks.npz``). Retrievers trained before that file existed (seed 0 on both
datasets, seed 1 on Beauty) were re-scored from their checkpoints: resuming at step 4000 trains nothing, restores
the best epoch and repeats the test, and every re-scored Recall@10 equals the committed one::

    python -m mmalign.das.retrieve --ids .gpu/das/beauty/$m/ids.json --eval-users 1000 --test-users none \
        --out-dir runs/s6/das/rescore_s0/beauty/retrieve-$m --max-steps 4000 --max-epochs 10000 \
        --batch-size 256 --lr 1e-3 --monitor val_recall@10 --mode max      # (--seed 1 for the seed-1 ones)
    python benchmarks/das.py --paired runs/s6/das/rescore_s0 --seed 0      # (and rescore_ml_s0)
    python benchmarks/das.py --paired runs/s6/das/work_s1 --seed 1         # (and work_ml_s1)

Session 7 added MovieLens seeds 2 and 3 (every ID set; two 1-thread processes side by side) and folded them in;
its work folders were lost with that machine, so session 8 ran the same commands again into ``runs/s8`` (IDs and
Recall@10 reproduced to the last digit) for the paired tests. ``--markdown`` also pools the paired tests over
seeds (``paired_over_seeds`` in das.json)::

    python benchmarks/das.py --datasets ml-latest-small --methods $m --seed $S --id-epochs 2 --rqvae-epochs 20 \
        --retriever-steps 4000 --eval-users 610 --suffix _ml_s${S}_$m --work runs/s8/das/work_ml_s$S --threads 1
    python benchmarks/das.py --add-seeds benchmarks/results/das_ml_s2_*.json benchmarks/results/das_ml_s3_*.json
    python benchmarks/das.py --paired runs/s8/das/work_ml_s2 --seed 2      # (and work_ml_s3 --seed 3)

Run ``--paired`` before the work folder is gone: the test ranks live only there. Session 8's paired runs covered
seed 2 only; its seed-3 folder was lost too. Session 9 re-ran seeds 2 and 3 (``--suffix _ml_s${S}_${m}_s9``) on
an Intel Xeon: different IDs from the AMD EPYC builds (float kernels differ across CPUs; same-CPU re-runs match
exactly), so those rows were kept out of das.json (docs/sections/das.md gives their figures).

Session 10's ID-only probe of ``--dedup-negatives`` on Beauty (seed 0, default ID budget; the retriever step count of
1 only makes the script finish)::

    python benchmarks/das.py --datasets beauty --methods $m [--dedup-negatives] --retriever-steps 1 \
        --eval-users 20 --suffix _probe_$m --work runs/s10/probe --threads 1

Sessions 11 and 12 measured it with the retriever on MovieLens (Intel Xeon, one 1-thread process per ID set, two
side by side; seeds 2 and 3 in session 11, 0 in session 12 (its seed-1 runs were cut off); rows kept out of das.json like the other Intel
replicates, figures in docs/sections/das.md)::

    python benchmarks/das.py --datasets ml-latest-small --methods $m --seed $S --id-epochs 2 --rqvae-epochs 20 \
        --retriever-steps 4000 --eval-users 610 --dedup-negatives --suffix _ml_s${S}_${m}_dedup \
        --work runs/s12/w${S}_$m --threads 1

Session 13 scored SmolLM2 content IDs on MovieLens (seed 0: three ID sets side by side; seed 1: das and
two-stage; figures in docs/sections/das.md, rows kept out of das.json, whose MovieLens rows are TF-IDF)::

    python benchmarks/das.py --datasets ml-latest-small --methods $m --seed $S --id-epochs 2 --rqvae-epochs 20 \
        --retriever-steps 4000 --eval-users 610 --encoder lm --suffix _ml_s${S}_${m}_lm --work runs/s13/lm$S \
        --threads 1

Session 14 added seeds 2 (das, two-stage, rqvae) and 3 (das, two-stage) the same way into ``runs/s14/lm$S``
and paired them without touching the table's file::

    python benchmarks/das.py --paired runs/s14/lm$S --seed $S --out runs/s14/results/paired_lm.json

Session 15 added the RQ-VAE at seeds 1, 3 and 4 and das / two-stage at seed 4 the same way (``--work
runs/s15/lm$S``; four processes side by side, then seed 4's RQ-VAE alone, 1 thread each). Seed 3's RQ-VAE was
paired with session 14's das / two-stage retrievers through a folder of links to the three ``retrieve-*``
folders (``--paired`` reads ``<work>/<dataset>/retrieve-<method>/test_ranks.npz``).

Session 16 added a third Beauty replicate (seed 2; three processes side by side, 1 thread each), folded it into
das.json and paired it, then moved the per-run files out of ``benchmarks/results/``::

    python benchmarks/das.py --datasets beauty --methods $m --seed 2 --retriever-steps 4000 --eval-users 1000 \
        --test-users -1 --suffix _s2_$m --work runs/s16/das/work_s2 --threads 1
    python benchmarks/das.py --add-seeds benchmarks/results/das_s2_*.json
    python benchmarks/das.py --paired runs/s16/das/work_s2 --seed 2

and re-scored LETTER's IDs the same way (seed 0, every user tested); its row replaced session 3's H200 one::

    python benchmarks/das.py --datasets beauty --methods letter --seed 0 --retriever-steps 4000 --eval-users 1000 \
        --test-users -1 --suffix _s0_letter --work runs/s16/das/work_letter --threads 1

Session 21 (an Intel Xeon CPU) rebuilt the seed-2 Beauty IDs (``--retriever-steps 1 --eval-users 20 --work
runs/s21/ids_s2``) and scored them with the extra level numbered by training popularity and by item index (rows
kept out of das.json, figures in docs/sections/das.md), then paired each work folder::

    python benchmarks/das.py --datasets beauty --methods $m --ids-from runs/s21/ids_s2 --disambiguation $o \
        --seed 2 --retriever-steps 4000 --eval-users 1000 --test-users -1 --threads 1 --suffix _s21_${o}_$m \
        --work runs/s21/${o}_s2
    python benchmarks/das.py --paired runs/s21/${o}_s2 --seed 2 --out runs/s21/results/paired_$o.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, fold_seeds, machine, print_table, write_results  # noqa: E402

from aligncore.metrics import mcnemar_exact, paired_hits  # noqa: E402
from aligncore.training import TrainConfig  # noqa: E402
from mmalign.das.data import item_counts, leave_one_out, load  # noqa: E402
from mmalign.das.model import DASConfig  # noqa: E402
from mmalign.das.retrieve import RetrieveConfig, load_ids, run_retrieval  # noqa: E402
from mmalign.das.train import DASRunConfig, SemanticIDs, build_ids  # noqa: E402

TIGER_BEAUTY = {"dataset": "beauty", "model": "tiger (published)", "recall@10": 0.0648, "ndcg@10": 0.0384,
                "source": "TIGER, Rajput et al., NeurIPS 2023, Table (Beauty), https://arxiv.org/abs/2305.05065"}
METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "utilisation", "collision_rate")
COLS = ["dataset", "model", *METRICS, "recall@10_std", "seeds", "eval_users"]


def markdown(path: Path = RESULTS / "das.json") -> str:
    doc = json.loads(path.read_text())

    def f(v: object) -> str:
        if isinstance(v, list):
            return ",".join(map(str, v))
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    order = {"rqvae": 0, "two-stage": 1, "das": 2, "letter": 3}
    rows = sorted(doc["rows"], key=lambda r: (r["dataset"], order.get(r["model"], 9)))
    for r in rows:  # a row without seeds is one run: its seed (0 unless stated)
        r = r if "seeds" in r or "source" in r else {**r, "seeds": [r.get("seed", 0)]}
        lines.append("| " + " | ".join(f(r.get(c)) for c in COLS) + " |")
    text = "\n".join(lines) + f"\n\nMachine: {doc['machine']}; torch threads: {doc['torch_threads']}.\n" \
        f"Budget: {doc['budget']}\n"
    if doc.get("paired"):
        text += "\nPaired on the same test users (DAS = a; diff = Recall@10(a) - Recall@10(b)):\n\n" \
            + paired_markdown(doc["paired"]) + "\n"
        pooled = pool_paired(doc["paired"])
        if pooled:
            text += "\nOver seeds (mean of the per-seed diffs; se = their sd / sqrt(seeds), t_p its two-sided " \
                "t-test with seeds - 1 degrees of freedom: the seed-to-seed spread, ID build included, is the " \
                "noise; mcnemar_p tests the summed discordant users, so it holds these ID builds fixed):\n\n" \
                + pooled_markdown(pooled) + "\n"
    return text


def pool_paired(rows: list[dict]) -> list[dict]:
    """Per (dataset, a, b) with at least two seeds: the mean of the per-seed paired differences, its
    seed-level standard error and t-test, and the exact McNemar test of the discordant users summed over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["a"], r["b"], r["metric"]), []).append(r)
    out = []
    for (ds, a, b, metric), g in sorted(groups.items()):
        if len(g) < 2:
            continue
        d = np.array([r["diff"] for r in g])
        sd = float(d.std(ddof=1))
        se = sd / np.sqrt(len(d))
        t_p = float(2 * stats.t.sf(abs(d.mean()) / se, len(d) - 1)) if se > 0 else float(d.mean() == 0)
        a_only, b_only = sum(r["a_only"] for r in g), sum(r["b_only"] for r in g)
        out.append({"dataset": ds, "a": a, "b": b, "metric": metric, "seeds": sorted(r["seed"] for r in g),
                    "diff": float(d.mean()), "sd": sd, "se": se, "t_p": t_p, "a_only": a_only, "b_only": b_only,
                    "mcnemar_p": mcnemar_exact(a_only, b_only)})
    return out


def pooled_markdown(rows: list[dict]) -> str:
    cols = ["dataset", "a", "b", "metric", "seeds", "diff", "se", "t_p", "a_only", "b_only", "mcnemar_p"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(
            ",".join(map(str, r[c])) if isinstance(r[c], list) else f"{r[c]:.2g}" if c.endswith("_p")
            else f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def paired(work: Path, seed: int, path: Path, k: int = 10) -> list[dict]:
    """Paired Recall@k of DAS against each other ID set on the same test users (see ``--paired``)."""
    found: list[dict] = []
    for ds_dir in sorted(p for p in work.iterdir() if p.is_dir()):
        ranks = {}
        for f in sorted(ds_dir.glob("retrieve-*/test_ranks.npz")):
            z = np.load(f)
            ranks[f.parent.name.removeprefix("retrieve-")] = (z["users"], z["ranks"])
        if "das" not in ranks:
            continue
        users, ra = ranks.pop("das")
        for other, (u_b, rb) in ranks.items():
            if not np.array_equal(users, u_b):
                raise ValueError(f"{ds_dir}: das and {other} were scored on different users")
            r = paired_hits(torch.from_numpy(ra), torch.from_numpy(rb), k)
            found.append({"dataset": ds_dir.name, "seed": seed, "a": "das", "b": other, "metric": f"recall@{k}",
                          "diff": r.diff, "se": r.se, "n": r.n, "a_only": r.a_only, "b_only": r.b_only,
                          "p_value": r.p_value})
    if not found:
        raise SystemExit(f"--paired {work}: no <dataset>/retrieve-das/test_ranks.npz beside another ID set's")
    doc = json.loads(path.read_text()) if path.exists() else {}
    new = {(r["dataset"], r["seed"], r["a"], r["b"]) for r in found}
    doc["paired"] = [r for r in doc.get("paired", []) if (r["dataset"], r["seed"], r["a"], r["b"]) not in new] + found
    doc["paired_over_seeds"] = pool_paired(doc["paired"])
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(paired_markdown(doc["paired"]))
    print(pooled_markdown(doc["paired_over_seeds"]))
    return found


def paired_markdown(rows: list[dict]) -> str:
    cols = ["dataset", "seed", "a", "b", "metric", "diff", "se", "a_only", "b_only", "p_value", "n"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["seed"], r["b"])):
        lines.append("| " + " | ".join(f"{r[c]:.2g}" if c == "p_value" else f"{r[c]:.4f}" if isinstance(r[c], float)
                                       else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="beauty,ml-latest-small")
    ap.add_argument("--methods", default="rqvae,two-stage,das,letter",
                    help="ID sets, in order ('letter' only on Beauty)")
    ap.add_argument("--ids-from", default=None, help="reuse <DIR>/<dataset>/<method>/ids.json of an earlier run "
                    "(same ID budget) instead of building the IDs again")
    ap.add_argument("--id-epochs", type=int, default=4, help="epochs over the interactions of the DAS / two-stage "
                    "alignment training")
    ap.add_argument("--rqvae-epochs", type=int, default=30, help="epochs over the items of the plain RQ-VAE and "
                    "of the two-stage baseline's stage-2 RQ-VAE")
    ap.add_argument("--id-lr", type=float, default=3e-3)
    ap.add_argument("--id-batch-size", type=int, default=1024)
    ap.add_argument("--n-codes", type=int, default=256)
    ap.add_argument("--dedup-negatives", action="store_true",
                    help="drop in-batch negatives that repeat the positive's user / item / content (DASConfig)")
    ap.add_argument("--disambiguation", default="index", choices=["index", "popularity"],
                    help="order of the items sharing a code tuple on the extra ID level: item order (TIGER) or most "
                         "training interactions first; with --ids-from the loaded tuples are re-numbered this way")
    ap.add_argument("--retriever-steps", type=int, default=300, help="optimiser steps of the retriever, per ID set")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-history", type=int, default=20)
    ap.add_argument("--eval-users", type=int, default=1000)
    ap.add_argument("--test-users", type=int, default=0,
                    help="users scored for the test: 0 = the --eval-users sample, -1 = every user, k = a sample of k "
                         "(validation, run every epoch, keeps the --eval-users sample)")
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--encoder", default="tfidf", choices=["auto", "lm", "tfidf"],
                    help="content encoder (tfidf: TF-IDF + SVD; Beauty has attribute ids only)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the whole pipeline: ID building (k-means init, "
                    "batch order) and the retriever (init, batch order, validation-user sample)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", default="runs/bench-das")
    ap.add_argument("--suffix", default="", help="results file suffix (e.g. _cuda)")
    ap.add_argument("--note", default="", help="appended to the budget string (e.g. machine load)")
    ap.add_argument("--add-seeds", type=Path, nargs="+", default=None, metavar="FILE",
                    help="fold the rows of results files of further seeds (runs with --seed) into results/das.json: "
                         "one row per (dataset, model) with the means over its seeds and each seed's values, and "
                         "exit")
    ap.add_argument("--paired", default=None, metavar="WORK",
                    help="compare DAS with every other ID set user by user on the test ranks a run left in WORK "
                         "(<WORK>/<dataset>/retrieve-<method>/test_ranks.npz; same users): paired Recall@10 "
                         "difference, its SE and the exact McNemar p-value, recorded under 'paired' in "
                         "results/das<SUFFIX>.json or --out (labelled with --seed), and exit")
    ap.add_argument("--out", type=Path, default=None,
                    help="with --paired: the JSON file to add the paired rows to (created if missing) instead of "
                         "results/das<SUFFIX>.json, e.g. for ablation runs kept out of the table")
    ap.add_argument("--markdown", action="store_true", help="print the markdown table of the results file and exit")
    ap.add_argument("--merge", default=None, help="append the rows of results/das<MERGE>.json (a run of other "
                    "datasets, e.g. _ml) to results/das.json, joining the budget strings, and exit")
    a = ap.parse_args()
    if a.merge:
        main_doc = json.loads((RESULTS / "das.json").read_text())
        other = json.loads((RESULTS / f"das{a.merge}.json").read_text())
        done = {(r["dataset"], r["model"]) for r in main_doc["rows"]}
        main_doc["rows"] += [r for r in other["rows"] if (r["dataset"], r["model"]) not in done]
        if other["budget"] != main_doc["budget"]:
            main_doc["budget"] = f"{main_doc['budget']} || " \
                f"{', '.join(sorted({r['dataset'] for r in other['rows']}))}: {other['budget']}"
        (RESULTS / "das.json").write_text(json.dumps(main_doc, indent=2) + "\n")
        return
    if a.add_seeds:
        path = RESULTS / "das.json"
        doc = json.loads(path.read_text())
        extra = [r for f in a.add_seeds for r in json.loads(f.read_text())["rows"] if r["model"] != TIGER_BEAUTY["model"]]
        doc["rows"] = fold_seeds([*doc["rows"], *extra], lambda r: (r["dataset"], r["model"]), METRICS,
                                 ("device", *METRICS, "eval_users", "retrieve_seconds"), std="recall@10")
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(markdown(path))
        return
    if a.paired:
        paired(Path(a.paired), a.seed, a.out or RESULTS / f"das{a.suffix}.json")
        return
    if a.markdown:
        print(markdown(RESULTS / f"das{a.suffix}.json"))
        return
    torch.set_num_threads(a.threads)
    budget = (f"content: {a.encoder}; IDs: DAS and two-stage alignment {a.id_epochs} epochs over the training "
              f"interactions, RQ-VAEs {a.rqvae_epochs} epochs over the items, batch {a.id_batch_size}, lr {a.id_lr}, "
              f"L=3 x K={a.n_codes} (+1 disambiguation level{', by training popularity' if a.disambiguation == 'popularity' else ''}), in-batch negatives "
              f"{'without same user/item/content duplicates' if a.dedup_negatives else 'as drawn (duplicates kept)'}; retriever per ID set: {a.retriever_steps} AdamW steps (lr 1e-3) of batch "
              f"{a.batch_size}, d_model 64, 2+2 layers, history {a.max_history}; validation (best epoch) on "
              f"{a.eval_users} sampled users (seed {a.seed}), test on "
              f"{'the same users' if a.test_users == 0 else 'every user' if a.test_users < 0 else f'{a.test_users} sampled users'}"
              f", constrained beam {a.beam}. Same budget for every ID set. {a.note}").strip()
    on_cpu = a.device == "cpu" or (a.device == "auto" and not torch.cuda.is_available())
    device = f"cpu{a.threads}t" if on_cpu else torch.cuda.get_device_name(0)
    rows: list[dict] = []
    work = Path(a.work)
    for ds in a.datasets.split(","):
        data = load(ds)
        split = leave_one_out(data.sequences)
        id_sets: list[tuple[SemanticIDs, float]] = []
        for method in a.methods.split(","):
            if method == "letter":
                if ds == "beauty":
                    id_sets.append((load_ids("letter"), 0.0))
                continue
            if a.ids_from:
                ids = SemanticIDs.load(Path(a.ids_from) / ds / method / "ids.json")
                # keep the L-level tuples and number the shared ones in the order asked for (index order gives back
                # the file of an index-ordered build unchanged)
                prio = item_counts(split.train, len(ids.codes)) if a.disambiguation == "popularity" else None
                ids = SemanticIDs.from_codes(ds, method, ids.codes[:, :-1], ids.n_codes, priority=prio,
                                             **{**ids.info, "disambiguation": a.disambiguation})
                id_sets.append((ids, float("nan")))
                continue
            t0 = time.perf_counter()
            tc = TrainConfig(out_dir=str(work / ds / method),
                             max_epochs=a.rqvae_epochs if method == "rqvae" else a.id_epochs,
                             batch_size=a.id_batch_size, lr=a.id_lr, device=a.device, seed=a.seed, progress=False,
                             resume=False)
            run = DASRunConfig(data=ds, method=method, encoder=a.encoder, stage2_epochs=a.rqvae_epochs,
                               disambiguation=a.disambiguation)
            ids = build_ids(run, DASConfig(n_codes=a.n_codes, dedup_negatives=a.dedup_negatives), tc)
            id_sets.append((ids, time.perf_counter() - t0))
        for ids, id_s in id_sets:
            t0 = time.perf_counter()
            rc = RetrieveConfig(ids="-", max_history=a.max_history, beam=a.beam, eval_users=a.eval_users,
                                test_users=None if a.test_users < 0 else a.test_users)
            tc = TrainConfig(out_dir=str(work / ds / f"retrieve-{ids.method}"), max_epochs=10_000,
                             max_steps=a.retriever_steps, batch_size=a.batch_size, lr=1e-3, device=a.device, seed=a.seed,
                             monitor="val_recall@10", mode="max", progress=False, resume=False)
            res = run_retrieval(ids, split, rc, tc)
            row = {k: res[k] for k in ["dataset", "model", "recall@5", "recall@10", "ndcg@5", "ndcg@10",
                                       "utilisation", "collision_rate", "eval_users"]}
            row.update(seed=a.seed, device=device, id_seconds=None if id_s != id_s else round(id_s, 1), retrieve_seconds=round(time.perf_counter() - t0, 1),
                       retriever_steps=res["steps"])
            rows.append(row)
            out_rows = rows + ([TIGER_BEAUTY] if any(r["dataset"] == "beauty" for r in rows) else [])
            write_results("das", out_rows, budget=budget, suffix=a.suffix)
            print(json.dumps(row), flush=True)
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    print_table(rows + [TIGER_BEAUTY], COLS)


if __name__ == "__main__":
    main()
