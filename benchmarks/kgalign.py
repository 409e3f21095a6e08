"""kgalign benchmark: the embedding base model on DBP15K zh_en and ja_en, and LLM-Align reranking with
SmolLM2-135M-Instruct on fixed zh_en test entities.

    python benchmarks/kgalign.py                       # both pairs + LLM stage on 200 entities
    python benchmarks/kgalign.py --llm-entities 50     # a smaller LLM stage
    python benchmarks/kgalign.py --skip-llm
    python benchmarks/kgalign.py --pairs zh_en --llm http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct

Embedding rows rank every test source against all KG2 entities that are not already used by a training
link (15,072 of 19,572 on zh_en; no knowledge of which entities are test targets). LLM rows use the
Sinkhorn base model's top-``k`` candidates; their Hits@1 / Hits@10 / MRR are over the chosen entities, with
the embedding-only figures on the same entities in ``hits@1_before``. The 3-round stage runs first on an
empty response cache (its ``seconds`` are real model time); the 1-round and selective stages reuse that
cache where their prompts coincide (``cached_calls``), so their ``seconds`` are what a re-run costs and
``seconds_per_call`` (from the uncached calls) gives the cost of a cold run. The selective stage's margin
threshold is calibrated (:func:`kgalign.voting.calibrate_margin_threshold`) on a full 3-round run over
``--calibration-entities`` *other* fixed test entities (DBP15K has no validation split), so the evaluated
entities never choose their own threshold.

Writes benchmarks/results/kgalign.json in the format of DESIGN.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

# This script is named like the package: drop its own folder from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from kgalign.backends import CachedBackend, LocalLM, OpenAIChat, ResponseCache  # noqa: E402
from kgalign.candidates import CandidateConfig, EmbeddingAligner, StructureTrainConfig  # noqa: E402
from kgalign.data import load_dbp15k  # noqa: E402
from kgalign.inference import Candidates, candidate_metrics, csls, ranking_metrics, sinkhorn_scores  # noqa: E402
from kgalign.llm_align import Describer  # noqa: E402
from kgalign.voting import VotingConfig, calibrate_margin_threshold, rerank  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "kgalign.json"


def embedding_stage(pair: str, out_dir: str) -> tuple[list[dict], object, object]:
    t0 = time.perf_counter()
    data = load_dbp15k(pair)
    cfg = CandidateConfig()
    aligner = EmbeddingAligner(cfg, train_config=StructureTrainConfig(out_dir=out_dir)).fit(data)
    t_fit = time.perf_counter() - t0
    test = data.test_links
    t1 = time.perf_counter()
    targets = aligner.target_ids()
    fused = aligner.fused_similarity(test[:, 0], targets)
    t_sim = time.perf_counter() - t1
    pos = torch.full((data.kg2.num_entities,), -1, dtype=torch.long)
    pos[targets] = torch.arange(len(targets))
    col = pos[test[:, 1]]
    rows = []
    results = {}
    for mode in ("cosine", "csls", "sinkhorn"):
        t2 = time.perf_counter()
        if mode == "cosine":
            scores = fused
        elif mode == "csls":
            scores = csls(fused, cfg.csls_k)
        else:
            scores = sinkhorn_scores(fused / fused.max(), eps=cfg.sinkhorn_eps, n_iter=cfg.sinkhorn_iter)
        t_inf = time.perf_counter() - t2
        m = ranking_metrics(scores, col)
        results[mode] = scores
        rows.append({"pair": pair, "stage": "embedding", "inference": mode, "entities": len(test),
                     "targets": len(targets), **m, "seconds": round(t_fit + t_sim + t_inf, 1),
                     "llm_calls": 0, "first_option_rate": None})
        print(f"{pair} embedding/{mode}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items())
              + f"  ({t_fit + t_sim + t_inf:.0f} s: fit {t_fit:.0f}, similarity {t_sim:.0f}, "
              f"inference {t_inf:.0f})", flush=True)
    del fused
    scores = results["sinkhorn"]
    return rows, (data, scores, targets), aligner.seconds


def llm_stage(data, scores, targets, *, n_entities: int, n_calibration: int, k: int, seed: int,
              cache_path: str, batch_size: int, llm: str = "local", model: str = "smollm2",
              concurrency: int = 4) -> list[dict]:
    test = data.test_links
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(test), generator=g)
    pick = perm[:n_entities].sort().values
    dev = perm[n_entities:n_entities + n_calibration].sort().values  # disjoint calibration entities

    def candidates(rows):
        val, idx = scores[rows].topk(k, dim=1)
        return Candidates(test[rows, 0], targets[idx], val), test[rows, 1]

    cands, gold = candidates(pick)
    before = candidate_metrics(cands.target, gold)
    describer = Describer(data)
    if llm == "local":
        lm = LocalLM(model, max_new_tokens=6, batch_size=batch_size)
        lm._load()  # load time is not call time
        model_name = "SmolLM2-135M-Instruct" if model == "smollm2" else model
    else:
        lm = OpenAIChat(llm, model, max_tokens=6, concurrency=concurrency)
        model_name = model
    backend = CachedBackend(lm, ResponseCache(cache_path))
    calibration = None
    if n_calibration > 0:
        # the threshold of the selective stage comes from a full 3-round run on other test entities
        # (DBP15K has no validation split); never from the evaluated ones
        dcands, dgold = candidates(dev)
        t0 = time.perf_counter()
        dres = rerank(dcands, describer, backend, VotingConfig(rounds=3))
        calibration = calibrate_margin_threshold(dcands.margin(), dcands.target[:, 0] == dgold,
                                                 dres.candidates.target[:, 0] == dgold)
        print(f"calibration on {n_calibration} other test entities ({time.perf_counter() - t0:.0f} s): "
              f"threshold {calibration.threshold:.4g} sends {calibration.sent}; hits@1 "
              f"{calibration.base_hits1:.4f} -> {calibration.hits1:.4f} there (all sent: "
              f"{calibration.curve[-1][1]:.4f})", flush=True)
    threshold = calibration.threshold if calibration is not None else 0.0
    rows = []
    for stage, vcfg in (("llm-3rounds", VotingConfig(rounds=3)), ("llm-1round", VotingConfig(rounds=1)),
                        ("selective", VotingConfig(rounds=3, margin_threshold=threshold))):
        calls0, hits0, sec0 = lm.stats.calls, backend.stats.cache_hits, lm.stats.seconds
        t0 = time.perf_counter()
        res = rerank(cands, describer, backend, vcfg)
        wall = time.perf_counter() - t0
        m = candidate_metrics(res.candidates.target, gold)
        fresh = lm.stats.calls - calls0
        row = {"pair": "zh_en", "stage": stage, "model": model_name, "entities": n_entities,
               "candidates": k, "rounds": vcfg.rounds,
               "margin_threshold": vcfg.margin_threshold, "llm_entities": res.llm_entities, **m,
               "hits@1_before": before["hits@1"], "seconds": round(wall, 1), "llm_calls": res.llm_calls,
               "cached_calls": backend.stats.cache_hits - hits0,
               "calls_per_entity": round(res.llm_calls / max(res.llm_entities, 1), 3),
               "seconds_per_call": round((lm.stats.seconds - sec0) / fresh, 3) if fresh else None,
               "first_option_rate": None if math.isnan(res.first_option_rate) else round(res.first_option_rate, 4),
               "none_rate": round(res.none_rate, 4), "abstain_rate": round(res.abstain_rate, 4)}
        if stage == "selective" and calibration is not None:
            row.update({"calibration_entities": n_calibration, "calibration_sent": calibration.sent,
                        "calibration_hits@1_before": round(calibration.base_hits1, 4),
                        "calibration_hits@1_after": round(calibration.hits1, 4),
                        "calibration_hits@1_all_sent": round(calibration.curve[-1][1], 4)})
        rows.append(row)
        print(f"zh_en {stage}: hits@1 {before['hits@1']:.4f} -> {m['hits@1']:.4f}, llm entities "
              f"{res.llm_entities}, calls {res.llm_calls} ({row['cached_calls']} cached), first-option rate "
              f"{row['first_option_rate']}, {wall:.0f} s", flush=True)
    return rows


def markdown_table(path: Path = RESULTS) -> str:
    """The README table of a results file."""
    res = json.loads(path.read_text())
    cols = ["pair", "stage", "inference", "entities", "llm_entities", "hits@1_before", "hits@1", "hits@10", "mrr",
            "llm_calls", "calls_per_entity", "first_option_rate", "margin_threshold", "seconds", "seconds_per_call"]
    rows = res["rows"]
    used = [c for c in cols if any(r.get(c) is not None for r in rows)]

    rates = {"hits@1_before", "hits@1", "hits@10", "mrr", "first_option_rate", "margin_threshold"}

    def fmt(c, v):
        if v is None:
            return ""
        return f"{v:.4f}" if c in rates else str(v)
    lines = ["| " + " | ".join(used) + " |", "|" + "---|" * len(used)]
    lines += ["| " + " | ".join(fmt(c, r.get(c)) for c in used) + " |" for r in rows]
    return "\n".join(lines) + f"\n\nMachine: {res['machine']}; torch threads: {res['torch_threads']}; " \
                             f"budget: {res['budget']}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", nargs="*", default=["zh_en", "ja_en"])
    ap.add_argument("--llm-entities", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--calibration-entities", type=int, default=200,
                    help="other fixed test entities on which the selective mode's margin threshold is chosen")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--llm", default="local", help="'local' (transformers) or the URL of an OpenAI-compatible server")
    ap.add_argument("--model", default="smollm2", help="local model ('smollm2' or a folder) or the server's model name")
    ap.add_argument("--concurrency", type=int, default=4, help="parallel HTTP requests (--llm URL)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of other pairs already in --out (to run pairs as separate processes)")
    args = ap.parse_args()
    if args.table:
        print(markdown_table(args.out))
        return
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    work = tempfile.mkdtemp(prefix="kgalign-bench-")
    for pair in args.pairs:
        r, state, _ = embedding_stage(pair, os.path.join(work, pair))
        rows += r
        if pair == "zh_en" and not args.skip_llm and args.llm_entities > 0:
            data, scores, targets = state
            rows += llm_stage(data, scores, targets, n_entities=args.llm_entities, k=args.candidates,
                              n_calibration=args.calibration_entities, seed=0,
                              cache_path=os.path.join(work, "llm_cache.sqlite"), batch_size=args.batch_size,
                              llm=args.llm, model=args.model, concurrency=args.concurrency)
        del state
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text())["rows"]
        rows = [r for r in old if r["pair"] not in args.pairs] + rows
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores, shared with other jobs "
                      f"(load average {os.getloadavg()[0]:.1f} at the end); {platform.processor() or 'CPU'}",
           "torch_threads": args.threads,
           "budget": "one run per setting; embedding: full test set (10,500 links) ranked against all KG2 "
                     "entities not in training links; LLM: "
                     f"{args.llm_entities} fixed zh_en test entities (seeded sample), "
                     + ("SmolLM2-135M-Instruct on CPU" if args.model == "smollm2" else args.model) + "; selective "
                     f"threshold calibrated on {args.calibration_entities} other fixed test entities"
                     + (" (pairs run as separate processes, merged)" if args.merge else ""),
           "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
