r"""Build semantic IDs: ``python -m mmalign.das.train --data beauty|ml-latest-small --method das|rqvae|two-stage``.

- ``rqvae``: plain RQ-VAE on item content (TIGER, https://arxiv.org/abs/2305.05065): no collaborative signal.
- ``two-stage``: align first, quantise after (the "two-stage aligned" family DAS compares with): stage 1 trains the
  DAS components with the quantiser bypassed, stage 2 a plain RQ-VAE on the aligned item latents.
- ``das``: quantisation and alignment in one stage (https://arxiv.org/abs/2508.10584).

Every stage trains with :func:`aligncore.training.fit`. The IDs (with TIGER's disambiguation level), the codebook
utilisation and the collision rate are written to ``<out_dir>/ids.json``, the input of
``python -m mmalign.das.retrieve --ids <out_dir>/ids.json``.
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
from torch.utils.data import Dataset, TensorDataset

from aligncore.config import config_to_dict, field, parse_configs
from aligncore.training import FitResult, TrainConfig, fit, unwrap

from .content import item_content, resolve_encoder, standardise, user_content
from .data import DATASETS, SeqData, Split, interactions, item_counts, leave_one_out, load
from .model import DAS, LOSS_TERMS, DASConfig, InteractionDataset, popularity_targets
from .rqvae import RQVAE, add_disambiguation, collision_rate, utilisation

METHODS = ("das", "rqvae", "two-stage")
DISAMBIGUATION = ("index", "popularity")


@dataclass
class DASRunConfig:
    """What to build semantic IDs for (data, method, content encoder)."""

    data: str = field("ml-latest-small", help="dataset", choices=list(DATASETS))
    method: str = field("das", help="how the IDs are built", choices=list(METHODS))
    root: str | None = field(None, help="dataset folder (default: $ALIGNKIT_DATA, then the project's data/)")
    encoder: str = field("auto", help="content encoder: 'lm' (SmolLM2, pooled), 'tfidf' (TF-IDF + SVD), 'auto' "
                         "(lm for text datasets when installed; tfidf for Beauty, which has attribute ids only)",
                         choices=["auto", "lm", "tfidf"])
    content_dim: int = field(64, help="dimension of the TF-IDF + SVD content embeddings")
    max_users: int | None = field(None, help="use only the first users (quick runs)")
    stage2_epochs: int | None = field(None, help="two-stage only: epochs of the stage-2 RQ-VAE (None: max_epochs)")
    disambiguation: str = field("index", help="order of the items that share a code tuple on the extra ID level: "
                                "'index' (item order, TIGER) or 'popularity' (most training interactions first)",
                                choices=list(DISAMBIGUATION))


@dataclass
class SemanticIDs:
    """Semantic IDs of the items of one dataset and their statistics.

    Attributes:
        codes (np.ndarray): :math:`(N, L + 1)`, the last level disambiguates shared tuples.
        n_codes (int): codebook size :math:`K` of the quantised levels.
        utilisation (float): mean share of codes used per quantised level.
        collision_rate (float): :math:`1 - U / N`, :math:`U` the number of distinct :math:`L`-level tuples (before
            disambiguation): every item of a shared tuple but one counts.
    """

    dataset: str
    method: str
    codes: np.ndarray
    n_codes: int
    utilisation: float
    collision_rate: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_codes(cls, dataset: str, method: str, codes: np.ndarray, n_codes: int, *,
                   priority: np.ndarray | None = None, **info: Any) -> SemanticIDs:
        """IDs from :math:`(N, L)` codes: the disambiguation level is added (items of a shared tuple in item order,
        or by descending :obj:`priority`, see :func:`~mmalign.das.rqvae.add_disambiguation`)."""
        codes = np.asarray(codes, dtype=np.int64)
        return cls(dataset, method, add_disambiguation(codes, priority), n_codes, utilisation(codes, n_codes),
                   collision_rate(codes), info)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        obj = {"dataset": self.dataset, "method": self.method, "n_codes": self.n_codes,
               "utilisation": self.utilisation, "collision_rate": self.collision_rate, "info": self.info,
               "codes": self.codes.tolist()}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(obj, default=str))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SemanticIDs:
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
            codes = np.asarray(obj["codes"], dtype=np.int64)
            return cls(obj["dataset"], obj["method"], codes, int(obj["n_codes"]), float(obj["utilisation"]),
                       float(obj["collision_rate"]), obj.get("info", {}))
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a semantic-ID file written by mmalign.das.train ({e})") from e


def prepare(run: DASRunConfig) -> tuple[SeqData, Split, np.ndarray, np.ndarray]:
    """Load the data, split it, and compute (standardised) item and user content embeddings."""
    data = load(run.data, run.root, max_users=run.max_users)
    split = leave_one_out(data.sequences)
    enc = resolve_encoder(run.encoder, data.name)
    x_item = standardise(item_content(data.item_texts, encoder=enc, dim=run.content_dim))
    x_user = standardise(user_content(split.train, x_item))
    return data, split, x_item, x_user


# ------------------------------------------------------------------------------------------ RQ-VAE

def _rqvae_loss(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    out = model(batch[0])
    return out.loss, {"recon": float(out.recon_loss.detach()), "quant": float(out.quant_loss.detach())}


def train_rqvae(x: np.ndarray, cfg: DASConfig, train_cfg: TrainConfig) -> tuple[RQVAE, FitResult]:
    """Fit a plain RQ-VAE on the rows of :obj:`x` (k-means initialised); ``val_loss`` is the loss on all rows."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    torch.manual_seed(train_cfg.seed)
    model = RQVAE(xt.shape[1], cfg.latent_dim, cfg.n_levels, cfg.n_codes, hidden=[cfg.hidden_dim], beta=cfg.beta,
                  restart_after=cfg.restart_after)
    model.init_codebooks(xt, seed=train_cfg.seed)

    def evaluate(m: nn.Module) -> dict[str, float]:
        m = unwrap(m)
        dev = next(m.parameters()).device
        with torch.no_grad():
            out = m(xt.to(dev))
        return {"val_loss": float(out.loss), "val_recon": float(out.recon_loss)}

    res = fit(model, TensorDataset(xt), loss_fn=_rqvae_loss, config=train_cfg, evaluate=evaluate)
    return model, res


# ------------------------------------------------------------------------------------------ DAS

def _das_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    out = model(batch)
    return out.loss, {k: float(v.detach()) for k, v in out.terms.items()}


def build_das(split: Split, x_item: np.ndarray, x_user: np.ndarray, cfg: DASConfig, *, quantize: bool = True,
              seed: int = 0) -> tuple[DAS, Dataset]:
    """The DAS model (codebooks k-means initialised) and its dataset of ``(u, i, j, v)`` tuples."""
    n_items = x_item.shape[0]
    pop, conf = popularity_targets(split.train, n_items)
    torch.manual_seed(seed)
    model = DAS(torch.as_tensor(x_item), torch.as_tensor(x_user), torch.as_tensor(pop), torch.as_tensor(conf), cfg,
                quantize=quantize)
    if quantize:
        model.init_codebooks(seed=seed)
    u, i, j = interactions(split.train)
    return model, InteractionDataset(u, i, j, seed=seed)


def das_evaluator(split: Split, *, n: int = 2048, seed: int = 0):
    """``evaluate(model)``: the DAS loss on validation interactions ``(u, val[u])`` (``j`` = last training item,
    ``v`` = ``u``), for at most :obj:`n` users drawn once; returns ``val_loss`` and ``val_<term>``."""
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(len(split.train), size=min(n, len(split.train)), replace=False))
    batch = {"u": torch.as_tensor(users), "i": torch.as_tensor(split.val[users]),
             "j": torch.as_tensor(np.array([split.train[u][-1] for u in users])), "v": torch.as_tensor(users)}

    def evaluate(model: nn.Module) -> dict[str, float]:
        m = unwrap(model)
        dev = next(m.parameters()).device
        was = m.training
        m.eval()
        with torch.no_grad():
            out = m({k: v.to(dev) for k, v in batch.items()})
        m.train(was)
        return {"val_loss": float(out.loss), **{f"val_{k}": float(v) for k, v in out.terms.items()}}

    return evaluate


def train_das(split: Split, x_item: np.ndarray, x_user: np.ndarray, cfg: DASConfig, train_cfg: TrainConfig, *,
              quantize: bool = True) -> tuple[DAS, FitResult]:
    """Joint training of DAS with :func:`aligncore.training.fit`."""
    model, ds = build_das(split, x_item, x_user, cfg, quantize=quantize, seed=train_cfg.seed)
    res = fit(model, ds, loss_fn=_das_loss, config=train_cfg, evaluate=das_evaluator(split, seed=train_cfg.seed),
              run_info={"das": config_to_dict(cfg), "quantize": quantize, "loss_terms": list(LOSS_TERMS)})
    return model, res


def build_ids(run: DASRunConfig, cfg: DASConfig, train_cfg: TrainConfig) -> SemanticIDs:
    """Train the chosen method and return the item semantic IDs (also saved to ``<out_dir>/ids.json``)."""
    if run.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {run.method!r}")
    if run.disambiguation not in DISAMBIGUATION:
        raise ValueError(f"disambiguation must be one of {DISAMBIGUATION}, got {run.disambiguation!r}")
    data, split, x_item, x_user = prepare(run)
    out = Path(train_cfg.out_dir)
    info: dict[str, Any] = {"n_users": data.n_users, "n_items": data.n_items, "n_levels": cfg.n_levels,
                            "encoder": resolve_encoder(run.encoder, data.name)}
    if run.method == "rqvae":
        model, res = train_rqvae(x_item, cfg, train_cfg)
        codes = model.semantic_codes(torch.as_tensor(x_item).to(next(model.parameters()).device))
        info["restarts"] = model.quantizer.n_restarts
    elif run.method == "das":
        model, res = train_das(split, x_item, x_user, cfg, train_cfg)
        codes = model.item_codes()
        info["restarts"] = model.item_rq.quantizer.n_restarts
        info["user_collision_rate"] = collision_rate(model.user_codes().cpu().numpy())
    else:
        c1 = dataclasses.replace(train_cfg, out_dir=str(out / "stage1"))
        aligned, res1 = train_das(split, x_item, x_user, cfg, c1, quantize=False)
        z = standardise(aligned.item_latents().cpu().numpy())
        c2 = dataclasses.replace(train_cfg, out_dir=str(out / "stage2"),
                                 max_epochs=run.stage2_epochs or train_cfg.max_epochs)
        model, res = train_rqvae(z, cfg, c2)
        codes = model.semantic_codes(torch.as_tensor(z).to(next(model.parameters()).device))
        info["stage1_final"] = res1.final_metrics
        info["restarts"] = model.quantizer.n_restarts
    info["final_metrics"] = res.final_metrics
    info["disambiguation"] = run.disambiguation
    priority = item_counts(split.train, data.n_items) if run.disambiguation == "popularity" else None
    ids = SemanticIDs.from_codes(data.name, run.method, codes.cpu().numpy(), cfg.n_codes, priority=priority, **info)
    ids.save(out / "ids.json")
    return ids


def main(argv: list[str] | None = None) -> SemanticIDs:
    torch.set_num_threads(int(os.environ.get("ALIGNKIT_THREADS", "1")))  # small tensors: 1 thread is fastest here
    cfg, run, train_cfg = parse_configs([DASConfig, DASRunConfig, TrainConfig], argv,
                                        description="Build semantic IDs (RQ-VAE, two-stage aligned, or DAS).")
    if train_cfg.out_dir == "runs/default":
        train_cfg = dataclasses.replace(train_cfg, out_dir=f"runs/das-{run.data}-{run.method}")
    ids = build_ids(run, cfg, train_cfg)
    print(json.dumps({"dataset": ids.dataset, "method": ids.method, "items": int(ids.codes.shape[0]),
                      "utilisation": round(ids.utilisation, 4), "collision_rate": round(ids.collision_rate, 4),
                      "ids": str(Path(train_cfg.out_dir) / "ids.json")}))
    return ids


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
