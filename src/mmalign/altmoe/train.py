r"""``python -m mmalign.altmoe.train``: train an Alt-MoE connector (or a baseline) on a pair set with
:func:`aligncore.training.fit` and report two-way retrieval on the held-out pairs.

Examples::

    python -m mmalign.altmoe.train --pairs movielens --experts 12 --top-k 4 --max-epochs 30
    ALIGNKIT_DATA=../shared/data python -m mmalign.altmoe.train --pairs dbp15k-zh-en --model mlp
    python -m mmalign.altmoe.train --pairs path/to/folder --schedule recall --out-dir runs/mine

Writes ``out_dir/metrics.jsonl``, ``best.pt``, ``last.pt``, ``run.json`` (the loop's files) and
``out_dir/test_metrics.json`` (Recall@1/5/10 and MRR per direction on the test rows).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aligncore.config import config_to_dict, parse_configs
from aligncore.training import FitResult, TrainConfig, cosine_schedule, fit, steps_per_epoch

from .align import AltAligner, PairDataset, evaluate_retrieval, make_evaluator
from .baselines import LinearProjection, mlp_connector
from .config import AltMoEConfig, AltMoETrainConfig
from .connector import AltMoEConnector
from .data import PairSet, load_pairs
from .schedule import AlternatingSchedule, all_directions

__all__ = ["build_connector", "build_aligner", "TrainOutcome", "train_altmoe", "main"]


def build_connector(cfg: AltMoEConfig, dims: dict[str, int]) -> nn.Module:
    """The connector named by ``cfg.model`` for modalities of widths ``dims``."""
    if cfg.model == "altmoe":
        return AltMoEConnector(dims, cfg.latent, cfg.hidden, cfg.experts, cfg.top_k, dropout=cfg.dropout,
                               router_noise=cfg.router_noise, multi_gate=cfg.multi_gate)
    if cfg.model == "mlp":
        return mlp_connector(dims, cfg.latent, cfg.hidden, cfg.top_k, dropout=cfg.dropout,
                             multi_gate=cfg.multi_gate)
    if cfg.model == "linear":
        return LinearProjection(dims, cfg.latent)
    raise ValueError(f"unknown model {cfg.model!r}")


def build_aligner(cfg: AltMoEConfig, pairs: PairSet, *, seed: int = 0) -> AltAligner:
    """Connector + alternating schedule over every ordered pair of the set's modalities."""
    schedule = AlternatingSchedule(all_directions(len(pairs.names)), cfg.schedule,
                                   temperature=cfg.schedule_temperature, seed=seed)
    return AltAligner(build_connector(cfg, pairs.dims), pairs.names, schedule, tau=cfg.tau,
                      reg_weight=cfg.reg_weight, balance_weight=cfg.balance_weight)


@dataclass
class TrainOutcome:
    """What :func:`train_altmoe` returns."""

    aligner: AltAligner
    fit: FitResult
    test: dict[str, float]  #: ``{"<s>-><t>_recall@1": ..., "<s>-><t>_mrr": ...}`` on the test rows
    n_params: int
    seconds_per_epoch: float
    #: ``{"<s>-><t>": ranks}``: the 1-based rank of each test query's partner (test row order)
    test_ranks: dict[str, Tensor] = field(default_factory=dict)


def train_altmoe(pairs: PairSet, cfg: AltMoEConfig, train_cfg: TrainConfig) -> TrainOutcome:
    """Train ``cfg.model`` on ``pairs`` with :func:`aligncore.training.fit`; evaluate on the test rows."""
    if cfg.standardise:
        pairs = pairs.standardised(token_stats=cfg.token_stats)
    torch.manual_seed(train_cfg.seed)  # same initial weights for a given seed, whatever was drawn before
    aligner = build_aligner(cfg, pairs, seed=train_cfg.seed)
    n_params = sum(p.numel() for p in aligner.parameters() if p.requires_grad)
    has_val = pairs.val.numel() > 0
    train = PairDataset(pairs, "train")
    schedule = getattr(train_cfg, "lr_schedule", "constant")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
    warmup = getattr(train_cfg, "warmup_epochs", 0.0)
    if warmup < 0 or (warmup > 0 and schedule != "cosine"):
        raise ValueError(f"warmup_epochs must be >= 0 and needs lr_schedule='cosine', got {warmup} with {schedule!r}")
    sched = None if schedule == "constant" else functools.partial(
        cosine_schedule, warmup_steps=round(warmup * steps_per_epoch(len(train), train_cfg)))
    res = fit(aligner, train, loss_fn=lambda model, batch: model(batch), config=train_cfg, scheduler=sched,
              collate_fn=train.collate,
              evaluate=make_evaluator(pairs, "val") if has_val else None,
              run_info={"altmoe": config_to_dict(cfg), "pairs": pairs.name, "pairs_info": pairs.info,
                        "n_params": n_params, "sizes": {p: int(getattr(pairs, p).numel())
                                                        for p in ("train", "val", "test")}})
    secs = [h["seconds"] for h in res.history if "seconds" in h]
    test: dict[str, float] = {}
    ranks: dict[str, Tensor] = {}
    if cfg.eval_test and pairs.test.numel() > 0:
        for (s, t), r in evaluate_retrieval(aligner.connector, pairs, "test").items():
            name = f"{pairs.names[s]}->{pairs.names[t]}"
            test.update({f"{name}_recall@{k}": v for k, v in r.recall.items()})
            test[f"{name}_mrr"] = r.mrr
            ranks[name] = r.ranks
    return TrainOutcome(aligner, res, test, n_params, sum(secs) / max(len(secs), 1), ranks)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, train_cfg = parse_configs([AltMoEConfig, AltMoETrainConfig], argv,
                                   description="Train an Alt-MoE connector between frozen encoders.")
    t0 = time.perf_counter()
    pairs = load_pairs(cfg.pairs, cfg.data_root, seed=cfg.split_seed, text_store=cfg.text_store,
                       tokens=cfg.text_tokens, structure_tokens=cfg.structure_tokens, progress=train_cfg.progress)
    print(f"pairs {pairs.name}: {len(pairs)} rows, modalities {pairs.dims}, train/val/test "
          f"{pairs.train.numel()}/{pairs.val.numel()}/{pairs.test.numel()} ({time.perf_counter() - t0:.1f} s)")
    out = train_altmoe(pairs, cfg, train_cfg)
    report = {"pairs": pairs.name, "model": cfg.model, "n_params": out.n_params,
              "seconds_per_epoch": out.seconds_per_epoch, "epochs": out.fit.epochs, "best_epoch": out.fit.best_epoch,
              "best_val": out.fit.best_metric, "test": out.test}
    Path(train_cfg.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(train_cfg.out_dir) / "test_metrics.json").write_text(json.dumps(report, indent=2))
    print(f"{cfg.model}: {out.n_params} parameters, {out.seconds_per_epoch:.2f} s/epoch, best epoch "
          f"{out.fit.best_epoch} (val mean Recall@1 {out.fit.best_metric})")
    for k, v in out.test.items():
        print(f"  test {k}: {v:.4f}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
