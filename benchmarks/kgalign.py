"""kgalign benchmark: the embedding base model on DBP15K zh_en and ja_en, and LLM-Align reranking with
SmolLM2-135M-Instruct on fixed zh_en test entities.

    python benchmarks/kgalign.py                       # both pairs + LLM stage on 200 entities
    python benchmarks/kgalign.py --llm-entities 50     # a smaller LLM stage
    python benchmarks/kgalign.py --skip-llm

Embedding rows rank every test source against all KG2 entities that are not already used by a training
link (15,072 of 19,572 on zh_en; no knowledge of which entities are test targets). LLM rows use the
Sinkhorn base model's top-``k`` candidates; their Hits@1 / Hits@10 / MRR are over the chosen entities, with
the embedding-only figures on the same entities in ``hits@1_before``. The 3-round stage runs first on an
empty response cache (its ``seconds`` are real model time); the 1-round and selective stages reuse that
cache where their prompts coincide (``cached_calls``), so their ``seconds`` are what a re-run costs and
``seconds_per_call`` (from the uncached calls) gives the cost of a cold run.

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

from kgalign.backends import CachedBackend, LocalLM, ResponseCache  # noqa: E402
from kgalign.candidates import CandidateConfig, EmbeddingAligner, StructureTrainConfig  # noqa: E402
from kgalign.data import load_dbp15k  # noqa: E402
from kgalign.inference import Candidates, candidate_metrics, csls, ranking_metrics, sinkhorn_scores  # noqa: E402
from kgalign.llm_align import Describer  # noqa: E402
from kgalign.voting import VotingConfig, rerank  # noqa: E402

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


def llm_stage(data, scores, targets, *, n_entities: int, k: int, threshold: float, seed: int,
              cache_path: str, batch_size: int) -> list[dict]:
    test = data.test_links
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(test), generator=g)[:n_entities].sort().values
    val, idx = scores[pick].topk(k, dim=1)
    cands = Candidates(test[pick, 0], targets[idx], val)
    gold = test[pick, 1]
    before = candidate_metrics(cands.target, gold)
    describer = Describer(data)
    lm = LocalLM("smollm2", max_new_tokens=6, batch_size=batch_size)
    lm._load()
    backend = CachedBackend(lm, ResponseCache(cache_path))
    rows = []
    for stage, vcfg in (("llm-3rounds", VotingConfig(rounds=3)), ("llm-1round", VotingConfig(rounds=1)),
                        ("selective", VotingConfig(rounds=3, margin_threshold=threshold))):
        calls0, hits0, sec0 = lm.stats.calls, backend.stats.cache_hits, lm.stats.seconds
        t0 = time.perf_counter()
        res = rerank(cands, describer, backend, vcfg)
        wall = time.perf_counter() - t0
        m = candidate_metrics(res.candidates.target, gold)
        fresh = lm.stats.calls - calls0
        row = {"pair": "zh_en", "stage": stage, "model": "SmolLM2-135M-Instruct", "entities": n_entities,
               "candidates": k, "rounds": vcfg.rounds,
               "margin_threshold": vcfg.margin_threshold, "llm_entities": res.llm_entities, **m,
               "hits@1_before": before["hits@1"], "seconds": round(wall, 1), "llm_calls": res.llm_calls,
               "cached_calls": backend.stats.cache_hits - hits0,
               "calls_per_entity": round(res.llm_calls / max(res.llm_entities, 1), 3),
               "seconds_per_call": round((lm.stats.seconds - sec0) / fresh, 3) if fresh else None,
               "first_option_rate": None if math.isnan(res.first_option_rate) else round(res.first_option_rate, 4),
               "none_rate": round(res.none_rate, 4), "abstain_rate": round(res.abstain_rate, 4)}
        rows.append(row)
        print(f"zh_en {stage}: hits@1 {before['hits@1']:.4f} -> {m['hits@1']:.4f}, llm entities "
              f"{res.llm_entities}, calls {res.llm_calls} ({row['cached_calls']} cached), first-option rate "
              f"{row['first_option_rate']}, {wall:.0f} s", flush=True)
    return rows


def markdown_table(path: Path = RESULTS) -> str:
    """The README table of a results file."""
    res = json.loads(path.read_text())
    cols = ["pair", "stage", "inference", "entities", "llm_entities", "hits@1_before", "hits@1", "hits@10", "mrr",
            "llm_calls", "calls_per_entity", "first_option_rate", "seconds", "seconds_per_call"]
    rows = res["rows"]
    used = [c for c in cols if any(r.get(c) is not None for r in rows)]

    rates = {"hits@1_before", "hits@1", "hits@10", "mrr", "first_option_rate"}

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
    ap.add_argument("--margin-threshold", type=float, default=0.1,
                    help="selective mode: Sinkhorn-score margin below which an entity goes to the LLM")
    ap.add_argument("--skip-llm", action="store_true")
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
                              threshold=args.margin_threshold, seed=0,
                              cache_path=os.path.join(work, "llm_cache.sqlite"), batch_size=args.batch_size)
        del state
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text())["rows"]
        rows = [r for r in old if r["pair"] not in args.pairs] + rows
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores, shared with other jobs "
                      f"(load average {os.getloadavg()[0]:.1f} at the end); {platform.processor() or 'CPU'}",
           "torch_threads": args.threads,
           "budget": "one run per setting; embedding: full test set (10,500 links) ranked against all KG2 "
                     "entities not in training links; LLM: "
                     f"{args.llm_entities} fixed zh_en test entities (seeded sample), SmolLM2-135M-Instruct on CPU"
                     + (" (pairs run as separate processes, merged)" if args.merge else ""),
           "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
