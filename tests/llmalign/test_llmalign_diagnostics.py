"""Diagnostics: top-k indicators by hand, token KL, best-of-N against brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmalign.diagnostics import (
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_probs,
    best_of_n_sample,
    sequence_kl_estimate,
    token_kl,
    topk_token_stats,
)


def test_topk_stats_by_hand():
    p = torch.tensor([0.5, 0.3, 0.1, 0.1])
    s = topk_token_stats(p.log(), k=2)
    q = [0.5 / 0.8, 0.3 / 0.8]
    assert s.mass.item() == pytest.approx(0.8, rel=1e-6)
    assert s.entropy.item() == pytest.approx(-sum(x * math.log(x) for x in q), rel=1e-6)
    # uniform logits: entropy log k and mass k / V; k = V gives the full entropy
    u = topk_token_stats(torch.zeros(3, 10), k=4)
    assert u.entropy.item() == pytest.approx(math.log(4), rel=1e-6)
    assert u.mass.item() == pytest.approx(0.4, rel=1e-6)
    full = topk_token_stats(p.log(), k=4)
    assert full.entropy.item() == pytest.approx(-sum(x * math.log(x) for x in p.tolist()), rel=1e-6)
    # the mask selects positions
    logits = torch.stack([p.log(), torch.zeros(4)])
    m = topk_token_stats(logits, torch.tensor([1, 0]), k=2)
    assert m.mass.item() == pytest.approx(0.8, rel=1e-6)
    with pytest.raises(ValueError, match="k="):
        topk_token_stats(logits, k=5)


def test_token_kl_and_estimate():
    p = torch.tensor([[[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]]])
    q = torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]])
    exp = sum(a * math.log(a / b) for a, b in zip([0.7, 0.2, 0.1], [0.5, 0.25, 0.25], strict=True))
    assert token_kl(p.log(), q.log()).item() == pytest.approx(exp, rel=1e-5)
    assert token_kl(p.log(), q.log(), torch.tensor([[0, 1]])).item() == pytest.approx(0.0, abs=1e-7)
    assert sequence_kl_estimate(torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -3.0])).item() == pytest.approx(0.75)


def brute_force_best_of_n(probs, rewards, n):
    """Enumerate all N-tuples; the best reward wins, ties split uniformly among the tied draws."""
    m = len(probs)
    out = [0.0] * m
    for tup in itertools.product(range(m), repeat=n):
        w = math.prod(probs[i] for i in tup)
        best = max(rewards[i] for i in tup)
        winners = [i for i in tup if rewards[i] == best]
        for i in winners:
            out[i] += w / len(winners)
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.05, 1.0), min_size=2, max_size=4), st.lists(st.integers(0, 2), min_size=4, max_size=4),
       st.integers(1, 4))
def test_best_of_n_matches_brute_force(weights, rewards, n):
    probs = [w / sum(weights) for w in weights]
    rew = [float(r) for r in rewards[: len(probs)]]
    exp = brute_force_best_of_n(probs, rew, n)
    got = best_of_n_probs(torch.tensor(probs, dtype=torch.float64), torch.tensor(rew), n)
    assert got.tolist() == pytest.approx(exp, abs=1e-12)
    kl = sum(q * math.log(q / p) for q, p in zip(exp, probs, strict=True) if q > 0)
    assert best_of_n_kl(torch.tensor(probs, dtype=torch.float64), torch.tensor(rew), n).item() == pytest.approx(kl, abs=1e-10)
    assert kl <= best_of_n_kl_bound(n) + 1e-12


def test_best_of_n_kl_approaches_the_bound_on_a_continuum():
    m = 4000
    probs = torch.full((m,), 1.0 / m, dtype=torch.float64)
    rewards = torch.arange(m, dtype=torch.float64)
    for n in (1, 2, 8):
        kl = best_of_n_kl(probs, rewards, n).item()
        assert kl <= best_of_n_kl_bound(n) + 1e-12
        assert kl == pytest.approx(best_of_n_kl_bound(n), abs=5e-3)
    # with few outcomes the bound is loose: two equiprobable outcomes, N large -> KL -> log 2 < log N - 1
    two = best_of_n_kl(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.0, 1.0]), 16).item()
    assert two < math.log(2) < best_of_n_kl_bound(16)


def test_best_of_n_sample_keeps_the_best(tiny_lm_with_tokenizer):
    lm, tok = tiny_lm_with_tokenizer

    def reward(prompt, completion):
        return float(len(completion))

    res = best_of_n_sample(lm, tok, ["What is 2+3?", "Hello"], reward, n=3, max_new_tokens=4, generator_seed=0)
    assert res.all_rewards.shape == (2, 3)
    assert torch.equal(res.rewards, res.all_rewards.max(-1).values)
    assert all(len(c) == r for c, r in zip(res.completions, res.rewards.tolist(), strict=True))
