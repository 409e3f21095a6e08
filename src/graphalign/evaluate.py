r"""Evaluation of GED estimators: regression and ranking metrics, checkpoint loading, and the CLI

``python -m graphalign.evaluate runs/graphedx/best.pt [--split test] [--out metrics.json]``

Metrics (:func:`ged_metrics`): MSE, RMSE, MAE (:mod:`aligncore.metrics`), Kendall's :math:`\tau_b` and Spearman's
:math:`\rho` over all pairs, and precision@10 for retrieval: for every query graph with at least 10 labelled partners,
the fraction of its 10 nearest partners by prediction whose exact GED is at most the 10th smallest exact GED of that
query (ties in the exact values count as hits), averaged over queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aligncore import metrics as M
from aligncore.training import resolve_device

from .costs import EditCosts
from .models import GEDModel, PairDataset, build_model, load_ged_pairs

__all__ = ["ged_metrics", "precision_at_k", "predict_dataset", "load_checkpoint", "evaluate_checkpoint", "main"]


def precision_at_k(pred: Any, target: Any, query: Any, k: int = 10) -> float:
    """Mean precision@k of retrieving each query's k nearest partners (see the module docstring); NaN when no query
    has k partners. ``query`` holds the query id of each pair."""
    pred, target, query = (np.asarray(a, dtype=np.float64) for a in (pred, target, query))
    order = np.argsort(query, kind="stable")
    q, p, t = query[order], pred[order], target[order]
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    ends = np.r_[starts[1:], len(q)]
    out = []
    for a, b in zip(starts, ends, strict=True):
        if b - a < k:
            continue
        pp, tt = p[a:b], t[a:b]
        top = np.argsort(pp, kind="stable")[:k]
        thr = np.partition(tt, k - 1)[k - 1]
        out.append(float(np.mean(tt[top] <= thr)))
    return float(np.mean(out)) if out else float("nan")


def ged_metrics(pred: Tensor, target: Tensor, pairs: Tensor | None = None, *, symmetric: bool = False,
                k: int = 10) -> dict[str, float]:
    """``mse``, ``rmse``, ``mae``, ``kendall_tau``, ``spearman_rho`` and (with ``pairs``) ``precision@10``.

    Args:
        pred, target: :math:`(P,)` predictions and exact GED values.
        pairs: :math:`(P, 2)` graph ids of the pairs, for precision@k (query = first graph).
        symmetric: the pairs are unordered (``i < j``) and the costs symmetric: each pair also serves graph ``j``
            as a query.
    """
    pred = torch.as_tensor(pred, dtype=torch.float64).flatten()
    target = torch.as_tensor(target, dtype=torch.float64).flatten()
    out = {"mse": M.mse(pred, target), "rmse": M.rmse(pred, target), "mae": M.mae(pred, target),
           "kendall_tau": float(M.kendall_tau(pred, target)), "spearman_rho": float(M.spearman_rho(pred, target))}
    if pairs is not None:
        pr = torch.as_tensor(pairs).numpy()
        p, t, q = pred.numpy(), target.numpy(), pr[:, 0]
        if symmetric:
            p, t, q = np.r_[p, p], np.r_[t, t], np.r_[pr[:, 0], pr[:, 1]]
        out[f"precision@{k}"] = precision_at_k(p, t, q, k)
    return out


@torch.no_grad()
def predict_dataset(model: GEDModel, data: PairDataset, *, batch_size: int = 256) -> Tensor:
    """Predictions for every pair of ``data`` (eval mode, on the model's device), on the CPU."""
    was = model.training
    model.eval()
    dev = model.cost_vector.device
    try:
        out = [model(b.to(dev)).float().cpu() for b in data.batches(batch_size)]
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0)


def evaluate_split(model: GEDModel, data: PairDataset, *, batch_size: int = 256,
                   symmetric: bool = False) -> tuple[dict[str, float], Tensor]:
    """Metrics of ``model`` on one split, plus its predictions (also ``pairs_per_s`` of the prediction pass)."""
    t0 = time.perf_counter()
    pred = predict_dataset(model, data, batch_size=batch_size)
    sec = time.perf_counter() - t0
    m = ged_metrics(pred, data.target, data.pairs, symmetric=symmetric)
    m["pairs_per_s"] = len(data) / max(sec, 1e-9)
    return m, pred


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[GEDModel, dict[str, Any]]:
    """Rebuild a model saved by ``python -m graphalign.train`` (``best.pt`` or ``last.pt``; the ``run.json`` of the
    same folder describes the model) and load its weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    info_path = path.parent / "run.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} not found: checkpoints of graphalign.train sit next to their run.json")
    info = json.loads(info_path.read_text())
    if "model" not in info or "costs" not in info:
        raise ValueError(f"{info_path} was not written by graphalign.train (no 'model' / 'costs' entries)")
    model = build_model(info["model"], info.get("model_config"), costs=EditCosts(**info["costs"]),
                        node_label=info.get("node_label"), label_vocab=info.get("label_vocab"))
    ck = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(ck["model"])
    return model.to(device).eval(), info


def evaluate_checkpoint(path: str | Path, *, split: str = "test", labels: str | None = None, root: str | None = None,
                        batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Metrics of a saved model on a split of the data it was trained on (or of another ``labels`` file), computed
    on ``device`` (CPU and CUDA predictions agree to float32 round-off, not bit for bit)."""
    model, info = load_checkpoint(path, device=device)
    d = info["data"]
    data = load_ged_pairs(d["dataset"], model.costs, labels=labels or d.get("labels"), root=root or d.get("root"),
                          max_nodes=d.get("max_nodes", 20), dedupe=d.get("dedupe", True), seed=d.get("split_seed", 0),
                          max_pairs={"val": d.get("max_eval_pairs"), "test": d.get("max_eval_pairs")},
                          label_vocab=model.label_vocab)
    sym = data.source.get("labels", "").startswith("published")
    m, _ = evaluate_split(model, data.splits[split], batch_size=batch_size, symmetric=sym)
    return {"checkpoint": str(path), "model": info["model"], "dataset": d["dataset"], "costs": info["costs"],
            "split": split, "pairs": len(data.splits[split]), **m}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate a GED model saved by `python -m graphalign.train`.")
    ap.add_argument("checkpoint", help="best.pt or last.pt of a training run (run.json must sit beside it)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate")
    ap.add_argument("--labels", default=None, help="evaluate on another label file (same costs)")
    ap.add_argument("--root", default=None, help="dataset root (default: as in training)")
    ap.add_argument("--batch-size", type=int, default=256, help="pairs per batch")
    ap.add_argument("--device", default="cpu", help="'cpu', 'cuda', 'cuda:1', ... or 'auto' (CUDA when present)")
    ap.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    a = ap.parse_args(argv)
    res = evaluate_checkpoint(a.checkpoint, split=a.split, labels=a.labels, root=a.root, batch_size=a.batch_size,
                              device=resolve_device(a.device))
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
