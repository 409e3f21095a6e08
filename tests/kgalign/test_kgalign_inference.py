from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from kgalign.inference import (
    Candidates,
    candidate_metrics,
    csls,
    hungarian_match,
    ranking_metrics,
    sinkhorn_scores,
    top_candidates,
)


def test_csls_against_float64_formula():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((5, 7))
    k = 2
    r_rows = np.sort(s, axis=1)[:, -k:].mean(1)
    r_cols = np.sort(s, axis=0)[-k:, :].mean(0)
    expected = 2 * s - r_rows[:, None] - r_cols[None, :]
    got = csls(torch.tensor(s, dtype=torch.float32), k=k, chunk=2).double().numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_csls_demotes_a_hub():
    # column 0 is close to every row (a hub); row 1's true match is column 1 but cosine prefers the hub
    s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.75, 0.0], [0.85, 0.0, 0.6]])
    assert int(s[1].argmax()) == 0
    assert int(csls(s, k=2)[1].argmax()) == 1


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 7), st.integers(0, 10_000))
def test_sinkhorn_matching_equals_hungarian_on_one_to_one_case(n, seed):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    sim = 0.3 * torch.rand(n, n, generator=g)
    sim[torch.arange(n), perm] += 0.5  # a planted one-to-one matching, clearly best
    rows, cols = linear_sum_assignment(sim.numpy(), maximize=True)
    assert (torch.as_tensor(cols) == perm).all()  # independent reference
    plan = sinkhorn_scores(sim, eps=0.01, n_iter=200)
    assert torch.equal(plan.argmax(1), perm)
    assert torch.equal(hungarian_match(sim), perm)
    assert torch.allclose(plan.sum(1), torch.ones(n), atol=1e-4)


def test_sinkhorn_resolves_a_conflict_csls_like():
    # rows 0 and 1 both prefer column 0 by cosine; one-to-one matching gives column 1 to row 1
    sim = torch.tensor([[0.9, 0.1], [0.8, 0.7]])
    assert int(sim[1].argmax()) == 0
    assert torch.equal(sinkhorn_scores(sim, eps=0.02, n_iter=200).argmax(1), torch.tensor([0, 1]))


def test_ranking_metrics_hand_case():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.4], [0.5, 0.5, 0.1]])
    m = ranking_metrics(scores, torch.tensor([0, 0, 1]))
    # ranks: 1, 3, 1.5 (tie shared) -> hits@1 = 1/3, mrr = (1 + 1/3 + 1/1.5) / 3
    assert abs(m["hits@1"] - 1 / 3) < 1e-9
    assert abs(m["mrr"] - (1 + 1 / 3 + 1 / 1.5) / 3) < 1e-9
    assert m["hits@10"] == 1.0


def test_top_candidates_and_candidate_metrics():
    scores = torch.tensor([[0.1, 0.7, 0.3, 0.6], [0.9, 0.2, 0.8, 0.1]])
    c = top_candidates(scores, torch.tensor([5, 6]), 2, target_ids=torch.tensor([10, 11, 12, 13]))
    assert c.target.tolist() == [[11, 13], [10, 12]]
    assert torch.allclose(c.margin(), torch.tensor([0.1, 0.1]))
    m = candidate_metrics(c.target, torch.tensor([13, 99]))  # rank 2, then absent
    assert m["hits@1"] == 0.0 and abs(m["mrr"] - 0.25) < 1e-9
    assert isinstance(c, Candidates) and len(c) == 2
