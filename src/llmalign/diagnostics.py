r"""Diagnostics of preference training: likelihood over-optimisation, KL to the reference, best-of-N.

* :func:`topk_token_stats`: the two indicators of likelihood over-optimisation of
  `"Understanding Likelihood Over-optimisation in Direct Alignment Algorithms"
  <https://arxiv.org/abs/2410.11677>`_: the entropy of the next-token distribution restricted to its top-:math:`k`
  tokens, and the probability mass of those :math:`k` tokens. Falling entropy and falling mass over training
  signal over-optimised diversity.
* :func:`token_kl`: the exact per-token :math:`\mathrm{KL}(\pi_\theta\|\pi_{\mathrm{ref}})` summed over a
  completion; :func:`sequence_kl_estimate` the Monte-Carlo estimate from sampled completions.
* :func:`best_of_n_probs` and :func:`best_of_n_kl`: the exact distribution of best-of-:math:`N` sampling with
  a reward on a finite outcome space and its KL to the base policy, next to the folklore value
  :math:`\log N - \frac{N-1}{N}` that `"Theoretical guarantees on the best-of-n alignment policy"
  <https://arxiv.org/abs/2401.01879>`_ proves is only an upper bound (see also `"Information Theoretic
  Guarantees For Policy Alignment In Large Language Models" <https://arxiv.org/abs/2404.01730>`_);
  :func:`best_of_n_sample` draws best-of-:math:`N` completions from a language model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class TopKStats:
    """Top-:math:`k` indicators averaged over the masked positions.

    Attributes:
        entropy (Tensor): mean entropy of the renormalised top-:math:`k` distribution (nats).
        mass (Tensor): mean probability mass of the top-:math:`k` tokens.
        k (int): the :math:`k` used.
    """

    entropy: Tensor
    mass: Tensor
    k: int


def topk_token_stats(logits: Tensor, mask: Tensor | None = None, *, k: int = 10) -> TopKStats:
    r"""Entropy over the top-:math:`k` tokens and top-:math:`k` probability mass, from the
    `"Understanding Likelihood Over-optimisation in Direct Alignment Algorithms"
    <https://arxiv.org/abs/2410.11677>`_ paper.

    With :math:`p = \mathrm{softmax}(z)` at a position and :math:`\mathcal{T}_k` its :math:`k` most likely
    tokens,

    .. math::
        M_k = \sum_{v\in\mathcal{T}_k} p_v, \qquad
        H_k = -\sum_{v\in\mathcal{T}_k} \frac{p_v}{M_k}\log\frac{p_v}{M_k}

    both averaged over the positions where ``mask`` is 1 (in float32).

    Args:
        logits (Tensor): next-token logits.
        mask (Tensor, optional): positions to average over. (default: all)
        k (int, optional): number of tokens. (default: :obj:`10`)

    Shapes:
        - logits: :math:`(*, V)`; mask: :math:`(*)`
    """
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k={k} must be in [1, vocab size {logits.shape[-1]}]")
    logp = F.log_softmax(logits.float(), -1)
    top = logp.topk(k, dim=-1).values
    log_mass = torch.logsumexp(top, -1)
    q_log = top - log_mass.unsqueeze(-1)
    ent = -(q_log.exp() * q_log).sum(-1)
    mass = log_mass.exp()
    if mask is None:
        return TopKStats(entropy=ent.mean(), mass=mass.mean(), k=k)
    if mask.shape != ent.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must match logits {tuple(logits.shape)} without the vocab dim")
    m = mask.to(ent.dtype)
    n = m.sum().clamp(min=1)
    return TopKStats(entropy=(ent * m).sum() / n, mass=(mass * m).sum() / n, k=k)


def token_kl(policy_logits: Tensor, ref_logits: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Exact token-level KL summed along each sequence:

    .. math::
        \sum_t \sum_{v} \pi_\theta(v|s_t)\log\frac{\pi_\theta(v|s_t)}{\pi_{\mathrm{ref}}(v|s_t)}

    over the prefixes :math:`s_t` of a given completion (the per-step KL of the two next-token distributions;
    its expectation under :math:`\pi_\theta`'s own samples is the sequence KL).

    Shapes:
        - policy_logits, ref_logits: :math:`(B, T, V)`; mask: :math:`(B, T)`; returns :math:`(B,)`
    """
    if policy_logits.shape != ref_logits.shape:
        raise ValueError(f"policy logits {tuple(policy_logits.shape)} vs reference {tuple(ref_logits.shape)}")
    lp = F.log_softmax(policy_logits.float(), -1)
    lq = F.log_softmax(ref_logits.float(), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    if mask is not None:
        kl = kl * mask.to(kl.dtype)
    return kl.sum(-1)


def sequence_kl_estimate(policy_logps: Tensor, ref_logps: Tensor) -> Tensor:
    r"""Monte-Carlo estimate :math:`\frac{1}{n}\sum_i \log\frac{\pi_\theta(y_i|x)}{\pi_{\mathrm{ref}}(y_i|x)}`
    of :math:`\mathrm{KL}(\pi_\theta\|\pi_{\mathrm{ref}})` from completions :math:`y_i \sim \pi_\theta`."""
    if policy_logps.shape != ref_logps.shape:
        raise ValueError(f"policy_logps {tuple(policy_logps.shape)} vs ref_logps {tuple(ref_logps.shape)}")
    return (policy_logps.double() - ref_logps.double()).mean()


# ----------------------------------------------------------------------------------------------- best-of-N


def best_of_n_probs(probs: Tensor, rewards: Tensor, n: int) -> Tensor:
    r"""Exact distribution of best-of-:math:`N` sampling on a finite outcome space.

    Draw :math:`N` i.i.d. outcomes from :math:`\pi` and keep the one with the highest reward (ties broken
    uniformly at random). With :math:`F(r) = \pi(R \le r)` and :math:`F^-(r) = \pi(R < r)`, the best reward
    equals :math:`r` with probability :math:`F(r)^N - F^-(r)^N`, shared among outcomes of reward :math:`r` in
    proportion to :math:`\pi` (by exchangeability):

    .. math::
        \pi_N(y) = \frac{\pi(y)}{\pi(R = r(y))}\bigl(F(r(y))^N - F^-(r(y))^N\bigr)

    Args:
        probs (Tensor): base distribution :math:`\pi` (non-negative, sums to 1).
        rewards (Tensor): reward of each outcome.
        n (int): number of samples :math:`N \ge 1`.

    Shapes:
        - probs, rewards: :math:`(M,)`; returns :math:`(M,)` in float64
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if probs.dim() != 1 or probs.shape != rewards.shape:
        raise ValueError(f"probs {tuple(probs.shape)} and rewards {tuple(rewards.shape)} must be equal-length vectors")
    p = probs.double()
    if (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-6:
        raise ValueError("probs must be non-negative and sum to 1")
    r = rewards.double()
    le = (r.unsqueeze(0) <= r.unsqueeze(1)).double()  # le[i, j] = r_j <= r_i
    lt = (r.unsqueeze(0) < r.unsqueeze(1)).double()
    eq = le - lt
    f_le, f_lt, p_eq = le @ p, lt @ p, eq @ p
    top = f_le.pow(n) - f_lt.pow(n)
    return torch.where(p > 0, p / p_eq.clamp(min=1e-300) * top, torch.zeros_like(p))


def best_of_n_kl(probs: Tensor, rewards: Tensor, n: int) -> Tensor:
    r""":math:`\mathrm{KL}(\pi_N\,\|\,\pi)` of best-of-:math:`N` (see :func:`best_of_n_probs`), exact, in
    float64. It never exceeds :func:`best_of_n_kl_bound` (`Beirami et al., 2024
    <https://arxiv.org/abs/2401.01879>`_), with equality only in the limit of a continuum of outcomes of
    distinct rewards."""
    q = best_of_n_probs(probs, rewards, n)
    p = probs.double()
    keep = q > 0
    return (q[keep] * (q[keep].log() - p[keep].log())).sum()


def best_of_n_kl_bound(n: int) -> float:
    r"""The often-quoted :math:`\mathrm{KL}(\pi_N\|\pi) = \log N - \frac{N-1}{N}`, an upper bound."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


@dataclass
class BestOfN:
    """Result of :func:`best_of_n_sample`.

    Attributes:
        completions (list[str]): the chosen completion per prompt.
        rewards (Tensor): its reward, :math:`(P,)`.
        all_completions (list[list[str]]): the :math:`N` samples per prompt.
        all_rewards (Tensor): their rewards, :math:`(P, N)`.
    """

    completions: list[str]
    rewards: Tensor
    all_completions: list[list[str]]
    all_rewards: Tensor


@torch.no_grad()
def best_of_n_sample(model: Any, tokenizer: Any, prompts: Sequence[str], reward_fn: Callable[[str, str], float], *,
                     n: int = 4, max_new_tokens: int = 32, temperature: float = 1.0, chat_template: bool = True,
                     generator_seed: int | None = None) -> BestOfN:
    """Sample ``n`` completions per prompt from a causal LM and keep the one ``reward_fn(prompt, completion)``
    scores highest (first one on ties).

    Args:
        model: a HuggingFace causal LM; tokenizer: its tokenizer (left padding is used for generation).
        prompts (list[str]): user messages (wrapped in the chat template when ``chat_template``).
        reward_fn (callable): ``reward_fn(prompt, completion) -> float``.
        n (int, optional): samples per prompt. (default: :obj:`4`)
    """
    from .data import render_prompts  # local: data imports nothing from here

    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    texts = render_prompts(tokenizer, prompts, chat_template=chat_template)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        device = next(model.parameters()).device
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                             max_new_tokens=max_new_tokens, num_return_sequences=n,
                             pad_token_id=tokenizer.pad_token_id)
    finally:
        tokenizer.padding_side = side
    gen = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    all_c = [gen[i * n:(i + 1) * n] for i in range(len(prompts))]
    all_r = torch.tensor([[float(reward_fn(p, c)) for c in cs] for p, cs in zip(prompts, all_c, strict=True)])
    best = all_r.argmax(-1)
    return BestOfN(completions=[cs[int(b)] for cs, b in zip(all_c, best, strict=True)],
                   rewards=all_r.gather(1, best.unsqueeze(1)).squeeze(1), all_completions=all_c, all_rewards=all_r)
