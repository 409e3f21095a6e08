r"""Evaluate semantic IDs by TIGER-style generative retrieval: ``python -m mmalign.das.retrieve --ids <file>``.

``--ids`` is a file written by ``python -m mmalign.das.train`` or ``letter`` (LETTER's published Beauty IDs,
https://arxiv.org/abs/2405.07314, bundled). A :class:`~mmalign.das.retriever.GenerativeRetriever` is trained with
:func:`aligncore.training.fit` on every prefix of the users' training histories (leave-one-out), selected on
validation Recall@10, and scored on the test items by constrained beam search: Recall@5/10 and NDCG@5/10
(``<out_dir>/results.json``). Each test user's rank of the held-out item goes to ``<out_dir>/test_ranks.npz``
(``users``, ``ranks``; :obj:`inf` outside the beam), so two ID sets scored on the same users can be compared
user by user (:func:`aligncore.metrics.paired_hits`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aligncore.config import config_to_dict, field, parse_configs
from aligncore.training import TrainConfig, fit, unwrap

from .data import Split, leave_one_out, letter_semantic_ids, load
from .retriever import GenerativeRetriever, NextItemDataset, PrefixTrie, evaluate_retrieval, pad_histories
from .rqvae import add_disambiguation
from .train import SemanticIDs


@dataclass
class RetrieveConfig:
    """Generative retrieval over semantic IDs (TIGER, https://arxiv.org/abs/2305.05065)."""

    ids: str = field("letter", help="semantic-ID file from mmalign.das.train, or 'letter' (LETTER's Beauty IDs)")
    root: str | None = field(None, help="dataset folder (default: $ALIGNKIT_DATA, then the project's data/)")
    max_users: int | None = field(None, help="use only the first users (must match the IDs' run when it used one)")
    max_history: int = field(20, help="most recent history items the encoder reads (TIGER: 20)")
    d_model: int = field(64, help="transformer width")
    n_heads: int = field(4, help="attention heads")
    n_layers: int = field(2, help="encoder and decoder layers each")
    dim_ff: int = field(256, help="feed-forward width")
    dropout: float = field(0.1, help="dropout")
    beam: int = field(20, help="beam size of the constrained beam search (>= 10)")
    eval_users: int | None = field(2000, help="users scored for validation and test (a fixed random sample; None: all)")
    test_users: int | None = field(0, help="users scored for the test when it should differ from the validation "
                                           "sample: 0 = the validation sample, None = all, k = a fixed random k drawn "
                                           "with the same seed (k >= eval_users contains the validation sample)")


def load_ids(spec: str, root: str | None = None) -> SemanticIDs:
    """A :class:`SemanticIDs` from a file or ``"letter"``."""
    if spec == "letter":
        raw = letter_semantic_ids(root)
        return SemanticIDs.from_codes("beauty", "letter", raw, 256)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"--ids {spec!r}: no such file (expected ids.json from mmalign.das.train, or 'letter')")
    ids = SemanticIDs.load(spec)
    if torch.unique(torch.as_tensor(ids.codes), dim=0).shape[0] != len(ids.codes):
        ids.codes = add_disambiguation(ids.codes)
    return ids


def _sample_users(n_users: int, k: int | None, seed: int) -> np.ndarray:
    if k is None or k >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).choice(n_users, size=k, replace=False))


def run_retrieval(ids: SemanticIDs, split: Split, cfg: RetrieveConfig, train_cfg: TrainConfig) -> dict[str, Any]:
    """Train the retriever on ``ids`` and return validation and test metrics (and the ID statistics)."""
    n_items = len(ids.codes)
    seen = max(max(s) for s in split.full) + 1
    if seen > n_items:
        raise ValueError(f"the IDs cover {n_items} items but the data has item id {seen - 1}")
    codes = torch.as_tensor(ids.codes, dtype=torch.long)
    trie = PrefixTrie(codes)
    torch.manual_seed(train_cfg.seed)
    model = GenerativeRetriever(trie.level_sizes, max_history=cfg.max_history, d_model=cfg.d_model,
                                n_heads=cfg.n_heads, n_layers=cfg.n_layers, dim_ff=cfg.dim_ff, dropout=cfg.dropout)
    ds = NextItemDataset(split.train, cfg.max_history)
    users = _sample_users(len(split.full), cfg.eval_users, train_cfg.seed)
    t_users = users if cfg.test_users == 0 else _sample_users(len(split.full), cfg.test_users, train_cfg.seed)
    val_h = pad_histories([split.full[u][:-2] for u in users], cfg.max_history)
    test_h = pad_histories([split.full[u][:-1] for u in t_users], cfg.max_history)
    val_t, test_t = torch.as_tensor(split.val[users]), torch.as_tensor(split.test[t_users])
    dev_cache: dict[str, Any] = {}

    def on(dev: torch.device) -> tuple[torch.Tensor, PrefixTrie]:
        if dev_cache.get("dev") != dev:
            dev_cache.update(dev=dev, codes=codes.to(dev), trie=PrefixTrie(codes).to(dev))
        return dev_cache["codes"], dev_cache["trie"]

    def loss_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        hist, tgt = batch
        c, _ = on(hist.device)
        return m(hist, c[tgt], c)

    def evaluate(m: nn.Module) -> dict[str, float]:
        m = unwrap(m)
        dev = next(m.parameters()).device
        c, t = on(dev)
        r = evaluate_retrieval(m, val_h.to(dev), val_t.to(dev), c, t, beam=cfg.beam)
        return {f"val_{k}": v for k, v in r.values.items()}

    res = fit(model, ds, loss_fn=loss_fn, config=train_cfg, evaluate=evaluate,
              run_info={"retrieve": config_to_dict(cfg), "ids_method": ids.method, "dataset": ids.dataset})
    dev = next(model.parameters()).device
    c, t = on(dev)
    test = evaluate_retrieval(model, test_h.to(dev), test_t.to(dev), c, t, beam=cfg.beam)
    ranks_file = Path(train_cfg.out_dir) / "test_ranks.npz"
    ranks_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ranks_file, users=t_users, ranks=test.ranks.numpy())
    return {"dataset": ids.dataset, "model": ids.method, **test.values, "eval_users": test.n_users,
            "ranks_file": str(ranks_file),
            "utilisation": ids.utilisation, "collision_rate": ids.collision_rate,
            "best_epoch": res.best_epoch, "steps": res.steps,
            **{k: v for k, v in res.final_metrics.items() if k.startswith("val_")}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    torch.set_num_threads(int(os.environ.get("ALIGNKIT_THREADS", "1")))  # small tensors: 1 thread is fastest here
    cfg, train_cfg = parse_configs([RetrieveConfig, TrainConfig], argv,
                                   description="Generative retrieval over semantic IDs (TIGER-style).")
    if cfg.beam < 10:
        raise ValueError(f"--beam must be >= 10 to score Recall@10, got {cfg.beam}")
    ids = load_ids(cfg.ids, cfg.root)
    if train_cfg.out_dir == "runs/default":
        train_cfg = dataclasses.replace(train_cfg, out_dir=f"runs/das-retrieve-{ids.dataset}-{ids.method}")
    if train_cfg.monitor == "val_loss":  # the loop's default; this evaluation reports retrieval metrics
        train_cfg = dataclasses.replace(train_cfg, monitor="val_recall@10", mode="max")
    data = load(ids.dataset, cfg.root, max_users=cfg.max_users)
    res = run_retrieval(ids, leave_one_out(data.sequences), cfg, train_cfg)
    out = Path(train_cfg.out_dir) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res))
    return res


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
