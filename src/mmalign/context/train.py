r"""``python -m mmalign.context.train``: train a forecaster (DSCA context alignment or a baseline) on an ETT file
with :func:`aligncore.training.fit` (early stopping on validation MSE, checkpoints, resume, progress) and report
test MSE/MAE on the scaled data.

Examples::

    python -m mmalign.context.train --data ETTh1 --seq-len 512 --pred-len 96 --model dsca
    python -m mmalign.context.train --data ETTh1 --seq-len 192 --pred-len 96 --model ofa --few-shot 0.05
    python -m mmalign.context.train --data ETTh1 --model dlinear --zero-shot-target ETTh2
    python -m mmalign.context.train --model dsca --backbone path/to/local/causal-lm --n-layers 6

Writes ``out_dir/metrics.jsonl``, ``best.pt``, ``last.pt``, ``run.json`` (the loop's files),
``out_dir/test_metrics.json`` and ``out_dir/forecast.png`` (one test window of the target column, forecast
against truth).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from aligncore.config import config_to_dict, parse_configs
from aligncore.training import FitResult, TrainConfig, cosine_schedule, fit, resolve_device, steps_per_epoch

from .baselines import DLinear, OFAModel, PatchTST
from .config import ContextConfig, ContextTrainConfig
from .data import ETTSplits, ett_splits, eval_loader
from .dsca import CausalLMBackbone, DSCAModel

__all__ = ["load_backbone_lm", "build_model", "evaluate_forecast", "default_lr", "cosine_schedule", "TrainOutcome",
           "train_context", "main"]


def _word_ids(text: str, vocab: int) -> Tensor:
    """Token ids for tiny random backbones that have no tokenizer: one id per whitespace-separated word (a
    deterministic hash of its UTF-8 bytes modulo the vocabulary), so prompts have word-level lengths."""
    ids = [sum((i + 1) * b for i, b in enumerate(w.encode("utf-8"))) % vocab for w in text.split()]
    return torch.tensor(ids, dtype=torch.long)


def load_backbone_lm(name: str, *, seed: int = 0) -> tuple[nn.Module, Any]:
    """``(causal LM, tokenizer or None)`` for ``"smollm2"``, ``"tiny-llama"``, ``"tiny-gpt2"`` or a local folder.

    The tiny backbones are randomly initialised (seeded): 4 blocks of width 64, for tests and smoke runs.
    """
    if name in ("tiny-llama", "tiny-gpt2"):
        from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

        gen_state = torch.get_rng_state()
        torch.manual_seed(seed)
        if name == "tiny-llama":
            lm = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                                              num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=1024))
        else:
            lm = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_embd=64, n_layer=4, n_head=4, n_positions=1024,
                                            bos_token_id=0, eos_token_id=0))
        torch.set_rng_state(gen_state)
        return lm.eval(), None
    from aligncore.lm import load_causal_lm

    return load_causal_lm(name)


def _prompt_ids(text: str, tokenizer: Any, vocab: int) -> Tensor:
    if tokenizer is None:
        ids_t = _word_ids(text, vocab)
        if ids_t.numel() == 0:
            raise ValueError(f"prompt {text!r} has no tokens")
        return ids_t
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"prompt {text!r} has no tokens")
    return torch.tensor(ids, dtype=torch.long)


def build_model(cfg: ContextConfig, *, lm: nn.Module | None = None, tokenizer: Any = None, seed: int = 0,
                backbone: CausalLMBackbone | None = None,
                prompts: tuple[Tensor, Tensor] | None = None) -> nn.Module:
    """The model named by ``cfg.model``; LM-based ones load ``cfg.backbone`` unless ``lm`` (or a ready
    ``backbone`` with the ``(demo, task)`` prompt embeddings ``prompts``) is given."""
    torch.manual_seed(seed)  # same initial weights for a given seed
    if cfg.model == "dlinear":
        return DLinear(cfg.seq_len, cfg.pred_len, cfg.moving_avg)
    if cfg.model == "patchtst":
        return PatchTST(cfg.seq_len, cfg.pred_len, patch_len=cfg.patchtst_patch_len, stride=cfg.patchtst_stride,
                        d_model=cfg.patchtst_d_model, n_layers=cfg.patchtst_layers)
    if cfg.model not in ("dsca", "ofa"):
        raise ValueError(f"unknown model {cfg.model!r}")
    if backbone is None:
        if lm is None:
            lm, tokenizer = load_backbone_lm(cfg.backbone, seed=seed)
        backbone = CausalLMBackbone(lm, cfg.n_layers)
    elif cfg.model == "dsca" and prompts is None:
        raise ValueError("build_model: a ready backbone needs prompts=(demo, task) embeddings for dsca")
    torch.manual_seed(seed)
    if cfg.model == "ofa":
        backbone.drop_embedding_table()
        model = OFAModel(backbone, seq_len=cfg.seq_len, pred_len=cfg.pred_len, patch_len=cfg.patch_len,
                         stride=cfg.stride, d_ff=cfg.d_ff, head_dropout=cfg.head_dropout,
                         head_dropout_on=cfg.head_dropout_on)
        return _with_positions(model, model.n_patch, cfg)
    if prompts is None:
        vocab = int(backbone._embed.weight.shape[0])
        prompts = (backbone.embed_text(_prompt_ids(cfg.demo_prompt, tokenizer, vocab)),
                   backbone.embed_text(_prompt_ids(cfg.task_prompt, tokenizer, vocab)))
    demo, task = prompts
    backbone.drop_embedding_table()
    model = DSCAModel(backbone, demo, task, seq_len=cfg.seq_len, pred_len=cfg.pred_len, patch_len=cfg.patch_len,
                      stride=cfg.stride, n_segments=cfg.n_segments, gnn=cfg.gnn, gnn_layers=cfg.gnn_layer_tuple(),
                      coarse_weight=cfg.coarse_weight, coarse_dim=cfg.coarse_dim, d_ff=cfg.d_ff,
                      head_dropout=cfg.head_dropout, head_dropout_on=cfg.head_dropout_on)
    return _with_positions(model, model.graph.n_nodes, cfg)


def _with_positions(model: nn.Module, n_tokens: int, cfg: ContextConfig) -> nn.Module:
    """``cfg.learned_positions`` on a rotary backbone: a trainable position table for ``n_tokens`` tokens."""
    if cfg.learned_positions and model.backbone.kind == "rotary":
        model.backbone.add_position_table(n_tokens)
    return model


@torch.no_grad()
def evaluate_forecast(model: nn.Module, ds: Dataset, *, batch_size: int = 64,
                      device: str | torch.device | None = None) -> dict[str, float]:
    """MSE and MAE over every window of ``ds`` (the last partial batch included), accumulated in float64.

    Returns:
        ``{"mse": ..., "mae": ..., "n_windows": ...}``
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    se = ae = 0.0
    n_el = n_win = 0
    for x, y in eval_loader(ds, batch_size):
        pred = model(x.to(dev)).double()
        err = pred - y.to(dev).double()
        se += float((err * err).sum())
        ae += float(err.abs().sum())
        n_el += err.numel()
        n_win += x.shape[0]
    model.train(was_training)
    if n_win == 0:
        raise ValueError("evaluate_forecast: empty dataset")
    return {"mse": se / n_el, "mae": ae / n_el, "n_windows": float(n_win)}


def default_lr(model: str) -> float:
    """The learning rate used when none is given: 1e-4 for the frozen-backbone models (``dsca``, ``ofa``: the FSCA
    and GPT4TS scripts; at 1e-3 they trained far worse in our few-shot runs), 1e-3 for ``dlinear`` and
    ``patchtst``."""
    return 1e-4 if model in ("dsca", "ofa") else 1e-3


def mse_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """The training objective: MSE on the scaled target window."""
    x, y = batch
    return F.mse_loss(model(x), y)


@dataclass
class TrainOutcome:
    """What :func:`train_context` returns."""

    model: nn.Module
    fit: FitResult
    test: dict[str, float]  #: ``{"mse", "mae", "n_windows"}`` on the test split of ``cfg.data``
    zero_shot: dict[str, float] | None  #: the same on ``cfg.zero_shot_target``'s test split
    n_trainable: int
    n_frozen: int
    seconds_per_epoch: float
    splits: ETTSplits
    lr: float = float("nan")  #: the learning rate used (``default_lr`` when none was given)


def train_context(cfg: ContextConfig, train_cfg: TrainConfig, *, splits: ETTSplits | None = None,
                  lm: nn.Module | None = None, tokenizer: Any = None,
                  model: nn.Module | None = None) -> TrainOutcome:
    """Train ``cfg.model`` on ``cfg.data`` with :func:`aligncore.training.fit`; test on the test split.
    ``model`` (built by :func:`build_model`) replaces the one ``cfg`` names."""
    if splits is None:
        splits = ett_splits(cfg.data, cfg.seq_len, cfg.pred_len, few_shot=cfg.few_shot, root=cfg.root,
                            eval_stride=cfg.eval_stride)
    if train_cfg.lr is None:
        train_cfg = dataclasses.replace(train_cfg, lr=default_lr(cfg.model))
    if model is None:
        model = build_model(cfg, lm=lm, tokenizer=tokenizer, seed=train_cfg.seed)
    n_tr = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_fr = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    device = resolve_device(train_cfg.device)

    def evaluate(m: nn.Module) -> dict[str, float]:
        r = evaluate_forecast(m, splits.val, batch_size=cfg.eval_batch_size, device=device)
        return {"val_loss": r["mse"], "val_mae": r["mae"]}

    schedule = getattr(train_cfg, "lr_schedule", "constant")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
    tmax = getattr(train_cfg, "lr_tmax", None)
    if tmax is not None and tmax < 1:
        raise ValueError(f"lr_tmax must be a positive number of epochs, got {tmax}")
    sched = None
    if schedule == "cosine":
        period = None if tmax is None else tmax * steps_per_epoch(len(splits.train), train_cfg)
        sched = functools.partial(cosine_schedule, period_steps=period)
    res = fit(model, splits.train, loss_fn=mse_loss, config=train_cfg, evaluate=evaluate, scheduler=sched,
              run_info={"context": config_to_dict(cfg), "n_trainable": n_tr, "n_frozen": n_fr,
                        "windows": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}})
    secs = [h["seconds"] for h in res.history if "seconds" in h]
    test = evaluate_forecast(model, splits.test, batch_size=cfg.eval_batch_size, device=device)
    zero = None
    if cfg.zero_shot_target:
        tgt = ett_splits(cfg.zero_shot_target, cfg.seq_len, cfg.pred_len, root=cfg.root,
                         eval_stride=cfg.eval_stride)
        zero = evaluate_forecast(model, tgt.test, batch_size=cfg.eval_batch_size, device=device)
    return TrainOutcome(model, res, test, zero, n_tr, n_fr, sum(secs) / max(len(secs), 1), splits, train_cfg.lr)


def plot_forecast(model: nn.Module, splits: ETTSplits, path: Path, *, index: int = 0, column: int = -1) -> Path:
    """Save one test window (input, truth, forecast) of one column as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = splits.test[index]
    dev = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        pred = model(x[None].to(dev))[0].cpu()
    L, H = x.shape[0], y.shape[0]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(range(L), x[:, column], color="0.4", label="input")
    ax.plot(range(L, L + H), y[:, column], color="k", label="truth")
    ax.plot(range(L, L + H), pred[:, column], color="C3", label="forecast")
    ax.set_title(f"{splits.name} test window {index}, column {column} (scaled)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, train_cfg = parse_configs([ContextConfig, ContextTrainConfig], argv,
                                   description="Context-alignment (DSCA-GNN) forecasting on ETT.")
    t0 = time.perf_counter()
    out = train_context(cfg, train_cfg)
    report = {"data": cfg.data, "model": cfg.model, "backbone": cfg.backbone if cfg.model in ("dsca", "ofa")
              else None, "seq_len": cfg.seq_len, "pred_len": cfg.pred_len, "few_shot": cfg.few_shot, "lr": out.lr,
              "n_trainable": out.n_trainable, "n_frozen": out.n_frozen, "epochs": out.fit.epochs,
              "best_epoch": out.fit.best_epoch, "best_val_mse": out.fit.best_metric,
              "seconds_per_epoch": out.seconds_per_epoch, "test": out.test, "wall_seconds": time.perf_counter() - t0}
    if out.zero_shot is not None:
        report["zero_shot"] = {"target": cfg.zero_shot_target, **out.zero_shot}
    od = Path(train_cfg.out_dir)
    od.mkdir(parents=True, exist_ok=True)
    (od / "test_metrics.json").write_text(json.dumps(report, indent=2))
    plot_forecast(out.model, out.splits, od / "forecast.png")
    print(f"{cfg.model} on {cfg.data} (L={cfg.seq_len}, H={cfg.pred_len}, few_shot={cfg.few_shot}): "
          f"{out.n_trainable} trainable / {out.n_frozen} frozen parameters, {out.seconds_per_epoch:.1f} s/epoch, "
          f"best epoch {out.fit.best_epoch} (val MSE {out.fit.best_metric:.4f})")
    print(f"  test MSE {out.test['mse']:.4f}  MAE {out.test['mae']:.4f}  ({int(out.test['n_windows'])} windows)")
    if out.zero_shot is not None:
        print(f"  zero-shot {cfg.zero_shot_target}: MSE {out.zero_shot['mse']:.4f}  MAE {out.zero_shot['mae']:.4f}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
