r"""Train a neural GED estimator (GraphEdX, arXiv 2409.17687, or a baseline) on :func:`aligncore.training.fit`.

``python -m graphalign.train --dataset aids700nef --costs unit --model graphedx --out-dir runs/graphedx``

The loss is the squared error to the exact GED, :math:`(\widehat{\mathrm{GED}} - \mathrm{GED})^2` (GraphEdX's loss
with equal lower and upper bounds); the validation MSE selects the best epoch and drives early stopping
(``--patience``); checkpoints (``last.pt``, ``best.pt``), resume and ``metrics.jsonl`` come from the shared loop.
At the end ``metrics.json`` holds the validation and test metrics of the best model (MSE, RMSE, MAE, Kendall's tau,
Spearman's rho, precision@10) and ``test_scatter.png`` plots predicted against exact GED. ``--time-budget`` stops
training after that many seconds (the loop is resumed in chunks of ``--budget-chunk-steps`` steps, each ending
with a validation). ``--model bipartite`` is
evaluated without training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aligncore.config import config_to_dict, field, parse_configs
from aligncore.training import FitResult, TrainConfig, fit, resolve_device

from .costs import get_costs
from .evaluate import evaluate_split
from .models import MODELS, GEDModel, GEDPairs, GraphEdXConfig, PairBatch, build_model, load_ged_pairs

__all__ = ["GEDTrainConfig", "train", "main"]


@dataclass
class GEDTrainConfig:
    """Data and run options of ``python -m graphalign.train``."""

    dataset: str = field("aids700nef", help="dataset (published unit-cost labels: aids700nef, linux; others need --labels)")
    costs: str = field("unit", help="edit costs: unit, graphedx (3,1,2,1: GraphEdX's unequal setting) or "
                                    "'node_del,node_ins,edge_del,edge_ins[,node_sub]'")
    model: str = field("graphedx", help="estimator", choices=sorted(MODELS))
    labels: str | None = field(None, help="label file from `python -m graphalign.label --out` (default: published "
                                          "matrices for unit costs, data/graphs/labels/<dataset>_<costs>_*.npz else)")
    root: str | None = field(None, help="dataset root (default: $ALIGNKIT_DATA, then the project's data/)")
    max_nodes: int | None = field(20, help="GraphEdX protocol: drop graphs with more nodes (published labels)")
    dedupe: bool = field(True, help="GraphEdX protocol: drop graphs isomorphic to an earlier one (published labels)")
    split_seed: int = field(0, help="seed of the 60/20/20 split and of pair subsamples")
    max_train_pairs: int | None = field(None, help="subsample the training pairs to at most this many")
    max_eval_pairs: int | None = field(20000, help="subsample val and test pairs to at most this many")
    eval_batch_size: int = field(256, help="pairs per batch in evaluation")
    time_budget: float | None = field(None, help="seconds of training after which the loop stops (checked every "
                                                 "budget_chunk_steps steps, after an evaluation)")
    budget_chunk_steps: int = field(100, help="with time_budget: steps between budget checks (and evaluations)")
    threads: int | None = field(None, help="torch.set_num_threads (default: leave torch's choice)")
    plot: bool = field(True, help="write test_scatter.png (predicted vs exact GED on the test split)")


def _mse_loss(model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
    pred = model(batch)
    return ((pred - batch.target) ** 2).mean()


def _plot(pred: torch.Tensor, target: torch.Tensor, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(target.numpy(), pred.numpy(), s=3, alpha=0.3)
    hi = float(max(target.max(), pred.max())) if len(pred) else 1.0
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    ax.set_xlabel("exact GED")
    ax.set_ylabel("predicted GED")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fit_with_budget(model: GEDModel, data: GEDPairs, cfg: GEDTrainConfig, tcfg: TrainConfig, evaluate: Any,
                     run_info: dict[str, Any]) -> FitResult:
    kw = dict(loss_fn=_mse_loss, evaluate=evaluate, collate_fn=data.splits["train"].collate, run_info=run_info)
    if cfg.time_budget is None:
        return fit(model, data.splits["train"], config=tcfg, **kw)
    # Run the loop in chunks of at most `budget_chunk_steps` optimiser steps (fit resumes exactly from last.pt and
    # evaluates at the end of every chunk), until the budget is spent, early stopping triggers or the limits are hit.
    steps_per_epoch = math.ceil(math.ceil(len(data.splits["train"]) / tcfg.batch_size) / tcfg.grad_accum)
    total = steps_per_epoch * tcfg.max_epochs
    if tcfg.max_steps is not None:
        total = min(total, tcfg.max_steps)
    chunk = max(1, min(steps_per_epoch, cfg.budget_chunk_steps))
    t0 = time.perf_counter()
    steps, first = 0, True
    while True:
        c = dataclasses.replace(tcfg, max_steps=min(total, steps + chunk), resume=tcfg.resume or not first,
                                restore_best=False)
        res = fit(model, data.splits["train"], config=c, **kw)
        first = False
        steps = res.steps
        if res.stopped_early or steps >= total or time.perf_counter() - t0 >= cfg.time_budget:
            break
    best = Path(tcfg.out_dir) / "best.pt"
    if tcfg.restore_best and best.exists():
        model.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["model"])
    return res


def train(cfg: GEDTrainConfig, mcfg: Any = None, tcfg: TrainConfig | None = None) -> dict[str, Any]:
    """Train (or, for ``bipartite``, just evaluate) one model; returns what ``metrics.json`` holds.

    Args:
        cfg (GEDTrainConfig): data and run options.
        mcfg: the model's config (:class:`GraphEdXConfig`, ...; the default when :obj:`None`).
        tcfg (TrainConfig, optional): loop options; ``monitor`` ``"val_loss"`` is the validation MSE.
    """
    tcfg = tcfg or TrainConfig()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    costs = get_costs(cfg.costs)
    data = load_ged_pairs(cfg.dataset, costs, labels=cfg.labels, root=cfg.root, max_nodes=cfg.max_nodes,
                          dedupe=cfg.dedupe, seed=cfg.split_seed,
                          max_pairs={"train": cfg.max_train_pairs, "val": cfg.max_eval_pairs,
                                     "test": cfg.max_eval_pairs})
    for s, d in data.splits.items():
        if len(d) == 0:
            raise ValueError(f"{cfg.dataset} ({data.source.get('labels')}): the {s} split has no labelled pairs")
    model = build_model(cfg.model, mcfg, costs=costs, node_label=data.node_label, label_vocab=data.store.label_vocab)
    symmetric = data.source.get("labels", "").startswith("published")  # unordered pairs, unit costs
    out = Path(tcfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_cfg = getattr(model, "config", None)
    run_info = {"model": cfg.model, "model_config": None if model_cfg is None else config_to_dict(model_cfg),
                "costs": costs.as_dict(), "node_label": data.node_label, "label_vocab": data.store.label_vocab,
                "data": config_to_dict(cfg), "source": data.source,
                "pairs": {s: len(d) for s, d in data.splits.items()}}
    device = resolve_device(tcfg.device)
    n_params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    fit_info: dict[str, Any] = {}
    if n_params == 0:  # the bipartite baseline: nothing to train
        (out / "run.json").write_text(json.dumps({"config": config_to_dict(tcfg), **run_info}, indent=2, default=str))
        torch.save({"model": model.state_dict()}, out / "best.pt")
    else:
        def evaluate(m: GEDModel) -> dict[str, float]:
            met, _ = evaluate_split(m, data.splits["val"], batch_size=cfg.eval_batch_size, symmetric=symmetric)
            return {"val_loss": met["mse"], **{f"val_{k}": v for k, v in met.items()}}

        res = _fit_with_budget(model, data, cfg, tcfg, evaluate, run_info)
        fit_info = {"epochs": res.epochs, "steps": res.steps, "best_epoch": res.best_epoch,
                    "stopped_early": res.stopped_early}
    train_seconds = time.perf_counter() - t0
    model.to(device).eval()
    val, _ = evaluate_split(model, data.splits["val"], batch_size=cfg.eval_batch_size, symmetric=symmetric)
    test, pred = evaluate_split(model, data.splits["test"], batch_size=cfg.eval_batch_size, symmetric=symmetric)
    result = {"model": cfg.model, "dataset": cfg.dataset, "costs": costs.as_dict(), "params": n_params,
              "train_seconds": train_seconds, **fit_info, "pairs": run_info["pairs"], "val": val, "test": test}
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    if cfg.plot:
        _plot(pred, data.splits["test"].target, out / "test_scatter.png",
              f"{cfg.model} on {cfg.dataset} ({cfg.costs}): test MSE {test['mse']:.3g}")
    return result


def main(argv: list[str] | None = None) -> int:
    cfg, mcfg, tcfg = parse_configs([GEDTrainConfig, GraphEdXConfig, TrainConfig], argv,
                                    description="Train a neural GED estimator (GraphEdX or a baseline).")
    if tcfg.out_dir == TrainConfig().out_dir:
        tcfg = dataclasses.replace(tcfg, out_dir=f"runs/{cfg.model}-{cfg.dataset}-{cfg.costs}")
    if cfg.model != "graphedx":  # the baselines share the encoder sizes given for GraphEdX
        _, cfg_cls = MODELS[cfg.model]
        mcfg = None if cfg_cls is None else cfg_cls(**{f.name: getattr(mcfg, f.name)
                                                       for f in dataclasses.fields(cfg_cls)
                                                       if hasattr(mcfg, f.name)})
    res = train(cfg, mcfg, tcfg)
    print(json.dumps({k: res[k] for k in ("model", "dataset", "val", "test")}, indent=2))
    print(f"[graphalign.train] wrote {Path(tcfg.out_dir) / 'metrics.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
