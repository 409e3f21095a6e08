"""The one training loop of alignkit.

Every ``python -m <pkg>.train`` entry point calls :func:`fit` with a model, a loss function and a dataset;
the loop owns everything else: seeding, device placement, mixed precision on CUDA, gradient accumulation,
gradient clipping, evaluation and early stopping, atomic checkpoints with resume, a tqdm progress bar, a
JSON-lines metrics log, and DistributedDataParallel when launched by ``torchrun``.

Resume is exact: the shuffling order of each epoch is a pure function of ``(seed, epoch)``, checkpoints
hold the model, optimiser, scheduler, grad-scaler and every RNG state, and a checkpoint taken mid-epoch
records how many batches of the epoch were consumed, so a run killed and resumed ends with the same final
metrics as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from .config import config_to_dict, field

LossOutput = Tensor | tuple[Tensor, dict[str, float]]


@dataclass
class TrainConfig:
    """Options of the training loop (shared by every entry point)."""

    out_dir: str = field("runs/default", help="folder for checkpoints (last.pt, best.pt) and metrics.jsonl")
    max_epochs: int = field(10, help="number of passes over the training data")
    max_steps: int | None = field(None, help="stop after this many optimiser steps (None: no limit)")
    batch_size: int = field(32, help="examples per batch and per process")
    lr: float = field(1e-3, help="learning rate of the default AdamW optimiser")
    weight_decay: float = field(0.0, help="weight decay of the default AdamW optimiser")
    grad_accum: int = field(1, help="micro-batches accumulated per optimiser step")
    max_grad_norm: float | None = field(None, help="clip the global gradient norm to this value (None: off)")
    amp: bool = field(True, help="mixed precision (autocast) on CUDA; ignored on CPU")
    amp_dtype: str = field("bf16", help="autocast dtype on CUDA", choices=["bf16", "fp16"])
    device: str = field("auto", help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ...")
    seed: int = field(0, help="seed of every RNG (python, numpy, torch) and of the data order")
    shuffle: bool = field(True, help="reshuffle the training data each epoch")
    monitor: str = field("val_loss", help="metric returned by the evaluation that selects the best model")
    mode: str = field("min", help="whether the monitored metric should be minimised or maximised",
                      choices=["min", "max"])
    patience: int | None = field(None, help="stop after this many evaluations without improvement (None: off)")
    eval_every: int = field(1, help="evaluate every this many epochs")
    checkpoint_every_steps: int | None = field(None, help="also checkpoint every this many optimiser steps")
    resume: bool = field(True, help="continue from out_dir/last.pt when it exists; a fresh start deletes "
                                     "the folder's earlier last.pt, best.pt and metrics.jsonl")
    checkpoint_trainable_only: bool = field(
        False, help="store only trainable parameters and buffers in checkpoints (frozen backbones are "
        "rebuilt by the caller, not saved)")
    restore_best: bool = field(True, help="load the best weights into the model when training ends")
    progress: bool = field(True, help="show a progress bar")
    num_workers: int = field(0, help="DataLoader worker processes")


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    best_metric: float | None
    best_epoch: int | None
    epochs: int
    steps: int
    history: list[dict[str, Any]]
    final_metrics: dict[str, float]
    stopped_early: bool
    out_dir: Path


# ----------------------------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``'auto'`` picks CUDA when available (the local rank's GPU under torchrun), else CPU."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} requested but CUDA is not available")
        if dev.index is None:  # 'cuda' means this process's GPU: the local rank's under torchrun
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return dev


def move_to(batch: Any, device: torch.device) -> Any:
    """Move tensors (and objects with ``.to``, e.g. torch_geometric batches) nested in lists, tuples and dicts."""
    if isinstance(batch, Tensor) or hasattr(batch, "to") and not isinstance(batch, (type, nn.Module)):
        try:
            return batch.to(device, non_blocking=True)
        except TypeError:
            return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(move_to(v, device) for v in batch)
    if isinstance(batch, tuple):  # namedtuple
        return type(batch)(*(move_to(v, device) for v in batch))
    return batch


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying module of a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _rng_state() -> dict[str, Any]:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    # a checkpoint read with map_location="cuda" brings the generator states to the GPU; the setters want CPU
    # byte tensors
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"].cpu())
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda"]])


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a kill never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a permutation that depends only on ``(seed, epoch)``, split across ranks
    (rank ``r`` takes positions ``r, r + world, ...``), starting ``skip`` indices in (for mid-epoch resume)."""

    def __init__(self, n: int, *, seed: int, epoch: int, shuffle: bool, rank: int = 0, world: int = 1,
                 skip: int = 0) -> None:
        self.n, self.seed, self.epoch, self.shuffle = n, seed, epoch, shuffle
        self.rank, self.world, self.skip = rank, world, skip

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        if self.world > 1:  # equal shares: pad by wrapping around, as DistributedSampler does
            total = math.ceil(self.n / self.world) * self.world
            perm = (perm + perm[: total - self.n])[self.rank :: self.world]
        return perm[self.skip :]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def _model_state(model: nn.Module, trainable_only: bool) -> dict[str, Tensor]:
    sd = model.state_dict()
    if not trainable_only:
        return sd
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v for k, v in sd.items() if k not in frozen}


def _load_model_state(model: nn.Module, sd: dict[str, Tensor], trainable_only: bool, path: Path) -> None:
    if not trainable_only:
        model.load_state_dict(sd)
        return
    missing, unexpected = model.load_state_dict(sd, strict=False)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    bad = [k for k in missing if k not in frozen]
    if bad or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not fit the model (missing trainable {bad[:5]}, "
                           f"unexpected {list(unexpected)[:5]})")


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def steps_per_epoch(n_examples: int, cfg: TrainConfig, world: int | None = None) -> int:
    """Optimiser steps :func:`fit` takes per epoch over ``n_examples`` (each of ``world`` processes takes an equal
    share; ``None``: the launcher's ``WORLD_SIZE``), so that a schedule can be set in epochs."""
    world = _dist_info()[1] if world is None else world
    return math.ceil(math.ceil(math.ceil(n_examples / world) / cfg.batch_size) / cfg.grad_accum)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, *, warmup_steps: int = 0,
                    period_steps: int | None = None, eta_min: float = 1e-8) -> torch.optim.lr_scheduler.LRScheduler:
    r"""Linear warm-up, then cosine annealing, stepped per optimiser step (pass it to :func:`fit` through
    ``functools.partial``, which supplies ``optimizer`` and ``total_steps``).

    For a group with initial rate :math:`\eta_0`, at step :math:`s` with :math:`W` = ``warmup_steps`` and
    :math:`T` = ``period_steps`` (default: the steps left after the warm-up):

    .. math::
        \eta(s) = \eta_0 \frac{s + 1}{W} \;(s < W), \qquad
        \eta(s) = \eta_{min} + (\eta_0 - \eta_{min}) \frac{1 + \cos(\pi (s - W) / T)}{2} \;(s \ge W).

    Without ``period_steps`` the rate reaches :math:`\eta_{min}` at the end of the budget; with it, it reaches
    :math:`\eta_{min}` after :math:`T` steps and rises again (periodic, like torch's ``CosineAnnealingLR``).
    """
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    t_max = max(int(total_steps - warmup_steps if period_steps is None else period_steps), 1)

    def factor(base: float) -> Callable[[int], float]:
        floor = min(eta_min / base, 1.0) if base > 0 else 0.0

        def f(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / t_max))
        return f

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(g["lr"]) for g in optimizer.param_groups])


def _broadcast(obj: Any, world: int) -> Any:
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------------------------- the loop


def fit(
    model: nn.Module,
    train_data: Dataset,
    *,
    loss_fn: Callable[[nn.Module, Any], LossOutput],
    config: TrainConfig | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None,
    run_info: dict[str, Any] | None = None,
) -> FitResult:
    r"""Train ``model`` on ``train_data`` with the shared loop.

    Args:
        model (nn.Module): the model; moved to the configured device. Only parameters with
            ``requires_grad`` are optimised.
        train_data (Dataset): a map-style dataset; batches are formed by ``collate_fn``.
        loss_fn (callable): ``loss_fn(model, batch) -> loss`` or ``(loss, {name: float})``. Under torchrun
            ``model`` is the DistributedDataParallel wrapper: run the computation that needs gradients
            through ``model(...)`` (its ``forward``) so that gradients are synchronised; use
            :func:`unwrap` for anything else.
        config (TrainConfig, optional): loop options. (default: :obj:`TrainConfig()`)
        evaluate (callable, optional): ``evaluate(model) -> {metric: value}`` on the validation data, run
            with the unwrapped model in eval mode under :func:`torch.no_grad` (on rank 0 only, results
            broadcast). Must contain ``config.monitor`` when early stopping or best-model selection is
            wanted. (default: :obj:`None`)
        collate_fn (callable, optional): batches a list of examples. (default: PyTorch's default)
        optimizer (callable, optional): ``optimizer(params) -> Optimizer``; AdamW with ``config.lr`` and
            ``config.weight_decay`` when :obj:`None`.
        scheduler (callable, optional): ``scheduler(optimizer, total_steps) -> LRScheduler`` stepped after
            every optimiser step. (default: :obj:`None`)
        run_info (dict, optional): written to ``out_dir/run.json`` with the config, for provenance.

    Returns:
        :class:`FitResult`
    """
    cfg = config or TrainConfig()
    if cfg.grad_accum < 1 or cfg.batch_size < 1 or cfg.max_epochs < 0:
        raise ValueError(f"grad_accum, batch_size must be >= 1 and max_epochs >= 0; got {cfg}")
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise ValueError("train_data is empty")
    rank, world = _dist_info()
    started_pg = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
        started_pg = True
    try:
        return _fit(model, train_data, loss_fn, cfg, evaluate, collate_fn, optimizer, scheduler, run_info,
                    rank, world)
    finally:
        if started_pg:
            dist.destroy_process_group()


def _fit(model, train_data, loss_fn, cfg: TrainConfig, evaluate, collate_fn, optimizer, scheduler, run_info,
         rank: int, world: int) -> FitResult:
    is_main = rank == 0
    out = Path(cfg.out_dir)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    seed_everything(cfg.seed + rank)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    opt = optimizer(params) if optimizer is not None else torch.optim.AdamW(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(train_data)
    per_rank = math.ceil(n / world)
    batches_per_epoch = math.ceil(per_rank / cfg.batch_size)
    total_steps = steps_per_epoch(n, cfg, world) * cfg.max_epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    sched = scheduler(opt, total_steps) if scheduler is not None else None
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    wrapped: nn.Module = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    sign = 1.0 if cfg.mode == "min" else -1.0
    state: dict[str, Any] = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best": None, "best_epoch": None,
                             "bad_evals": 0, "history": [], "final_metrics": {}, "stopped_early": False}
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "metrics.jsonl"
    if cfg.resume and last_path.exists():
        ck = torch.load(last_path, map_location=device, weights_only=False)
        _load_model_state(model, ck["model"], cfg.checkpoint_trainable_only, last_path)
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler") is not None:
            sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        state.update(ck["loop"])
        _set_rng_state(ck["rng"][rank] if isinstance(ck["rng"], list) and rank < len(ck["rng"]) else ck["rng"])
        if is_main:  # the log is written before last.pt: a kill between the two left a line the resumed run repeats
            with open(log_path, "w") as fh:
                fh.writelines(json.dumps(rec) + "\n" for rec in state["history"])
        if is_main and cfg.progress:
            tqdm.write(f"resumed from {last_path} at epoch {state['epoch']}, batch {state['batch_in_epoch']}, "
                       f"step {state['step']}")
    elif is_main:
        out.mkdir(parents=True, exist_ok=True)
        # a fresh start owns the folder: an earlier run's best.pt would otherwise be restored into this model at
        # the end (always so without an evaluation), and its last.pt resumed by a later --resume
        for stale in (log_path, best_path, last_path):
            if stale.exists():
                stale.unlink()
        with open(out / "run.json", "w") as fh:
            json.dump({"config": config_to_dict(cfg), **(run_info or {})}, fh, indent=2, default=str)

    def log(rec: dict[str, Any]) -> None:
        if is_main:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    def save_last() -> None:
        rngs = _rng_state()
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
        if is_main:
            atomic_save({"model": _model_state(model, cfg.checkpoint_trainable_only), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict() if sched is not None else None,
                         "scaler": scaler.state_dict(), "loop": dict(state), "rng": rngs}, last_path)

    def run_eval() -> dict[str, float]:
        metrics: dict[str, float] = {}
        if evaluate is not None and is_main:
            model.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in evaluate(model).items()}
        return _broadcast(metrics, world)

    done = state["stopped_early"] or state["step"] >= total_steps and total_steps > 0
    while not done and state["epoch"] < cfg.max_epochs:
        epoch = state["epoch"]
        skip = state["batch_in_epoch"] * cfg.batch_size
        sampler = EpochSampler(n, seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle, rank=rank, world=world,
                               skip=skip)
        # A dedicated generator: creating the loader must not draw from the global RNG, or a resumed
        # epoch (a second loader) would shift every later random number.
        loader_gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch + 7919 * (rank + 1))
        loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_fn,
                            num_workers=cfg.num_workers, generator=loader_gen)
        model.train()
        bar = tqdm(total=batches_per_epoch, initial=state["batch_in_epoch"], desc=f"epoch {epoch + 1}/{cfg.max_epochs}",
                   disable=not (is_main and cfg.progress), leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        acc = state.setdefault("acc", {"loss": 0.0, "n": 0, "extra": {}})  # survives a mid-epoch resume
        opt.zero_grad(set_to_none=True)
        for batch in loader:
            state["batch_in_epoch"] += 1
            micro = state["batch_in_epoch"]
            boundary = micro % cfg.grad_accum == 0 or micro == batches_per_epoch
            batch = move_to(batch, device)
            sync = contextlib.nullcontext() if (boundary or world == 1) else wrapped.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    res = loss_fn(wrapped, batch)
                loss, extra = (res if isinstance(res, tuple) else (res, {}))
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(f"non-finite loss {float(loss)} at epoch {epoch + 1}, "
                                             f"batch {micro}, step {state['step']}")
                scaler.scale(loss / cfg.grad_accum).backward()
            acc["loss"] += float(loss.detach())
            acc["n"] += 1
            for k, v in extra.items():
                acc["extra"][k] = acc["extra"].get(k, 0.0) + float(v)
            bar.update(1)
            bar.set_postfix(loss=f"{acc['loss'] / acc['n']:.4g}")
            if not boundary:
                continue
            if cfg.max_grad_norm is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            if sched is not None:
                sched.step()
            state["step"] += 1
            if cfg.checkpoint_every_steps and state["step"] % cfg.checkpoint_every_steps == 0:
                save_last()
            if state["step"] >= total_steps:
                break
        bar.close()
        nb = max(acc["n"], 1)
        partial = state["batch_in_epoch"] < batches_per_epoch  # stopped by max_steps inside the epoch
        rec: dict[str, Any] = {"epoch": epoch + (state["batch_in_epoch"] / batches_per_epoch if partial else 1),
                               "step": state["step"], "train_loss": acc["loss"] / nb,
                               "seconds": time.perf_counter() - t0,
                               **{f"train_{k}": v / nb for k, v in acc["extra"].items()}}
        if not partial:  # a partial epoch keeps its position, so a later run with more steps continues it
            state.pop("acc")
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
        last_epoch = partial or state["epoch"] >= cfg.max_epochs or state["step"] >= total_steps
        if evaluate is not None and (state["epoch"] % cfg.eval_every == 0 or last_epoch):
            metrics = run_eval()
            rec.update(metrics)
            state["final_metrics"] = metrics
            if cfg.monitor not in metrics:
                raise KeyError(f"evaluate() returned {sorted(metrics)}, which lacks monitor={cfg.monitor!r}")
            value = metrics[cfg.monitor]
            # NaN is never an improvement, nor ever the best (every later comparison with it would fail)
            if value != value and is_main and cfg.progress:
                tqdm.write(f"warning: {cfg.monitor} is NaN at epoch {state['epoch']}; not a candidate for best.pt")
            if value == value and (state["best"] is None or sign * value < sign * state["best"]):
                state["best"], state["best_epoch"], state["bad_evals"] = value, state["epoch"], 0
                if is_main:
                    atomic_save({"model": _model_state(model, cfg.checkpoint_trainable_only),
                                 "epoch": state["epoch"], "metrics": metrics}, best_path)
            else:
                state["bad_evals"] += 1
                if cfg.patience is not None and state["bad_evals"] >= cfg.patience:
                    state["stopped_early"] = True
        state["history"].append(rec)
        log(rec)
        if is_main and cfg.progress:
            shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in rec.items()}
            tqdm.write(" ".join(f"{k}={v}" for k, v in shown.items()))
        save_last()
        done = state["stopped_early"] or state["step"] >= total_steps
    if cfg.restore_best and best_path.exists():
        ck = torch.load(best_path, map_location=device, weights_only=False)
        _load_model_state(model, ck["model"], cfg.checkpoint_trainable_only, best_path)
    if world > 1:
        dist.barrier()
        # free the DDP wrapper (its reducer holds the process group) while the group still exists: one left to the
        # interpreter's exit, after destroy_process_group, could abort the process ("terminate called without an
        # active exception", seen in 2 of 8 two-process CPU runs under load)
        del wrapped
        gc.collect()
    return FitResult(best_metric=state["best"], best_epoch=state["best_epoch"], epochs=state["epoch"],
                     steps=state["step"], history=list(state["history"]), final_metrics=state["final_metrics"],
                     stopped_early=state["stopped_early"], out_dir=out)


def config_replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with some fields changed."""
    return dataclasses.replace(cfg, **changes)
