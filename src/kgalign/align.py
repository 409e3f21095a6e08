"""``python -m kgalign.align``: entity alignment end to end (embedding candidates, optional LLM reranking).

Examples::

    python -m kgalign.align --pair zh_en                                  # embedding only, all test links
    python -m kgalign.align --pair zh_en --candidates 10 --llm local --model smollm2 --rounds 3 --limit 50
    python -m kgalign.align --pair zh_en --llm http://127.0.0.1:8000/v1 --model Qwen2.5-7B-Instruct

Writes ``<out_dir>/alignment.tsv`` (one line per evaluated source entity) and ``<out_dir>/metrics.json``;
the structure encoder's training log (``metrics.jsonl``, checkpoints) lands in the same folder.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from aligncore.config import config_to_dict, field, parse_configs

from .candidates import CandidateConfig, EmbeddingAligner, StructureTrainConfig
from .data import load_dbp15k, load_openea
from .inference import Candidates, candidate_metrics
from .llm_align import Describer, make_backend
from .voting import VotingConfig, calibrate_margin_threshold, rerank


@dataclass
class AlignConfig:
    """Entity alignment with LLM-Align (https://arxiv.org/abs/2412.04690): embedding candidates, then
    optional LLM reranking with multi-round voting."""

    data: str | None = field(None, help="dataset root (the dbp15k folder or its parent, or an OpenEA folder); "
                                        "default: $ALIGNKIT_DATA, then the project's data/")
    pair: str = field("zh_en", help="DBP15K pair (zh_en, ja_en, fr_en), or 'openea' for an OpenEA folder")
    fold: int = field(1, help="OpenEA fold")
    candidates: int = field(10, help="candidates per entity shown to the LLM")
    llm: str = field("none", help="'none' (embedding only), 'local' (transformers) or an OpenAI-compatible URL")
    model: str | None = field(None, help="model name: a local folder or 'smollm2' for --llm local; the "
                                         "server's model name for a URL")
    limit: int | None = field(None, help="rerank only the first N test links (embedding metrics still cover "
                                         "all of them)")
    calibrate: int = field(0, help="choose --margin-threshold (selective mode) on the N test links after the "
                                   "evaluated ones: full voting there, then the Hits@1-maximising cut (DBP15K "
                                   "has no validation split; the evaluated links never pick their own threshold)")
    cache: str | None = field(None, help="sqlite response cache (default: <out_dir>/llm_cache.sqlite)")
    concurrency: int = field(4, help="parallel HTTP requests")
    timeout: float = field(60.0, help="seconds per HTTP request")
    max_relations: int = field(3, help="relation facts shown per entity (selected by identifiability)")
    max_attributes: int = field(2, help="attribute facts shown per entity")
    threads: int = field(2, help="torch threads")


def main(argv: list[str] | None = None) -> dict:
    acfg, ccfg, vcfg, tcfg = parse_configs([AlignConfig, CandidateConfig, VotingConfig, StructureTrainConfig],
                                           argv)
    torch.set_num_threads(acfg.threads)
    out = Path(tcfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"[kgalign] loading {acfg.pair} ...", flush=True)
    if acfg.pair == "openea":
        if acfg.data is None:
            raise SystemExit("--pair openea needs --data <OpenEA dataset folder>")
        data = load_openea(acfg.data, fold=acfg.fold)
    else:
        data = load_dbp15k(acfg.pair, acfg.data)
    print(f"[kgalign] {data}", flush=True)
    print("[kgalign] fitting the base model (names, propagation, structure encoder) ...", flush=True)
    aligner = EmbeddingAligner(ccfg, train_config=tcfg).fit(data)
    print("[kgalign] scoring test entities against all candidate targets ...", flush=True)
    test = data.test_links
    base = aligner.score(test[:, 0])
    emb_metrics = base.metrics(test[:, 1])
    print(f"[kgalign] embedding ({ccfg.inference}, {len(base.target_ids)} targets): "
          + " ".join(f"{k}={v:.4f}" for k, v in emb_metrics.items()), flush=True)
    cands = base.candidates(max(acfg.candidates, 1))
    n_eval = len(test) if acfg.limit is None else min(acfg.limit, len(test))
    sub = slice(0, n_eval)
    sub_cands = Candidates(cands.source[sub], cands.target[sub], cands.score[sub])
    gold = test[sub, 1]
    metrics: dict = {"pair": acfg.pair, "dataset": data.name, "num_test": len(test),
                     "num_targets": len(base.target_ids), "inference": ccfg.inference,
                     "embedding": emb_metrics,
                     "embedding_subset": {**candidate_metrics(sub_cands.target, gold), "n": n_eval},
                     "seconds_embedding": time.perf_counter() - t_start,
                     "stage_seconds": base.seconds}
    final = sub_cands
    llm_answers: list[str] = ["" for _ in range(n_eval)]
    if acfg.llm != "none":
        cache = acfg.cache or str(out / "llm_cache.sqlite")
        kw = ({"concurrency": acfg.concurrency, "timeout": acfg.timeout} if acfg.llm.startswith("http")
              else {})
        backend = make_backend(acfg.llm, acfg.model, cache=cache, **kw)
        print(f"[kgalign] LLM reranking of {n_eval} entities with {backend.name}:{backend.model}, "
              f"{vcfg.rounds} rounds, cache {cache} ...", flush=True)
        describer = Describer(data, acfg.max_relations, acfg.max_attributes)
        if acfg.calibrate > 0:
            dev = slice(n_eval, min(n_eval + acfg.calibrate, len(test)))
            if dev.start >= dev.stop:
                raise SystemExit("--calibrate needs test links beyond --limit; lower --limit")
            dev_cands = Candidates(cands.source[dev], cands.target[dev], cands.score[dev])
            print(f"[kgalign] calibrating the margin threshold on test links {dev.start}..{dev.stop - 1} ...",
                  flush=True)
            dev_res = rerank(dev_cands, describer, backend, replace(vcfg, margin_threshold=None))
            cal = calibrate_margin_threshold(dev_cands.margin(), dev_cands.target[:, 0] == test[dev, 1],
                                             dev_res.candidates.target[:, 0] == test[dev, 1])
            vcfg = replace(vcfg, margin_threshold=cal.threshold)
            metrics["calibration"] = {"links": [dev.start, dev.stop], "threshold": cal.threshold,
                                      "sent": cal.sent, "hits@1_base": cal.base_hits1, "hits@1": cal.hits1,
                                      "hits@1_all_sent": cal.curve[-1][1]}
            print(f"[kgalign] margin threshold {cal.threshold:.4g} (sends {cal.sent} of {dev.stop - dev.start}; "
                  f"hits@1 there {cal.base_hits1:.4f} -> {cal.hits1:.4f})", flush=True)
        res = rerank(sub_cands, describer, backend, vcfg)
        final = res.candidates
        for i, v in enumerate(res.votes):
            if v is not None:
                llm_answers[i] = "abstain" if v.choice is None else str(v.choice)
        m = candidate_metrics(final.target, gold)
        metrics["llm"] = {**m, "n": n_eval, "llm_entities": res.llm_entities, "llm_calls": res.llm_calls,
                          "calls_per_entity": res.llm_calls / max(res.llm_entities, 1),
                          "first_option_rate": None if math.isnan(res.first_option_rate)
                          else res.first_option_rate,
                          "none_rate": res.none_rate, "abstain_rate": res.abstain_rate,
                          "seconds": res.seconds, "backend": backend.stats.as_dict()}
        print("[kgalign] after LLM: " + " ".join(f"{k}={v:.4f}" for k, v in m.items())
              + f" (before: hits@1={metrics['embedding_subset']['hits@1']:.4f})", flush=True)
    kg1, kg2 = data.kg1, data.kg2
    with open(out / "alignment.tsv", "w") as fh:
        fh.write("source_id\tsource_uri\tpredicted_id\tpredicted_uri\tbase_top1_uri\tllm_choice\tgold_uri\n")
        for i in range(n_eval):
            s, p = int(final.source[i]), int(final.target[i, 0])
            fh.write(f"{s}\t{kg1.uris[s]}\t{p}\t{kg2.uris[p]}\t{kg2.uris[int(sub_cands.target[i, 0])]}\t"
                     f"{llm_answers[i]}\t{kg2.uris[int(gold[i])]}\n")
    metrics["seconds_total"] = time.perf_counter() - t_start
    metrics["config"] = {"align": config_to_dict(acfg), "candidates": config_to_dict(ccfg),
                         "voting": config_to_dict(vcfg), "train": config_to_dict(tcfg)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    print(f"[kgalign] wrote {out / 'alignment.tsv'} and {out / 'metrics.json'} "
          f"({metrics['seconds_total']:.1f} s)", flush=True)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
