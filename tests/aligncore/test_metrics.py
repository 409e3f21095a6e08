from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from aligncore import metrics as M


def test_ranks_hits_mrr_by_hand():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.8], [0.3, 0.3, 0.3]])
    target = torch.tensor([0, 2, 1])
    # row 0: best -> 1; row 1: tied with one other at the top -> 1.5 (average), 1 / 2 (opt / pess)
    # row 2: three-way tie -> 2 (average), 1, 3
    assert M.rank_of_target(scores, target).tolist() == [1.0, 1.5, 2.0]
    assert M.rank_of_target(scores, target, ties="optimistic").tolist() == [1.0, 1.0, 1.0]
    assert M.rank_of_target(scores, target, ties="pessimistic").tolist() == [1.0, 2.0, 3.0]
    ranks = M.rank_of_target(scores, target)
    assert M.hits_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert M.hits_at_k(ranks, 2) == pytest.approx(1.0)
    assert M.mrr(ranks) == pytest.approx((1 + 1 / 1.5 + 1 / 2) / 3)


def test_recall_and_ndcg_by_hand():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    rel = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 0]])
    # top-2 of row 0 = items 0, 1 -> 1 of 2 relevant; row 1 top-2 = items 3, 2 -> 0 of 1
    assert M.recall_at_k(scores, rel, 2) == pytest.approx((0.5 + 0.0) / 2)
    dcg0 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg0 = 1 + 1 / math.log2(3)
    dcg1 = 1 / math.log2(5)
    assert M.ndcg_at_k(scores, rel, 4) == pytest.approx((dcg0 / idcg0 + dcg1 / 1.0) / 2)
    assert M.ndcg_single(torch.tensor([1.0, 3.0, 11.0]), 10) == pytest.approx((1 + 0.5 + 0) / 3)


def test_topk_ties_broken_by_index():
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert M.recall_at_k(scores, torch.tensor([[1, 0, 0, 0]]), 1) == 1.0
    assert M.recall_at_k(scores, torch.tensor([[0, 0, 0, 1]]), 1) == 0.0


def test_regression_by_hand():
    p, t = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 4.0, 1.0])
    assert M.mse(p, t) == pytest.approx((0 + 4 + 9) / 3)
    assert M.mae(p, t) == pytest.approx((0 + 2 + 3) / 3)
    assert M.rmse(p, t) == pytest.approx(math.sqrt(13 / 3))
    with pytest.raises(ValueError, match="same shape"):
        M.mse(p, t[:2])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 40), st.integers(2, 6))
def test_rank_correlations_match_scipy(seed, n, levels):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, size=n).astype(float)  # many ties
    y = x + rng.integers(0, levels, size=n)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return
    assert float(M.kendall_tau(torch.tensor(x), torch.tensor(y))) == pytest.approx(stats.kendalltau(x, y).statistic)
    assert float(M.spearman_rho(torch.tensor(x), torch.tensor(y))) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_rank_correlations_batched_and_chunked():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    tau = M.kendall_tau(torch.tensor(x), torch.tensor(y), chunk=7)
    rho = M.spearman_rho(torch.tensor(x), torch.tensor(y))
    for k in range(3):
        assert float(tau[k]) == pytest.approx(stats.kendalltau(x[k], y[k]).statistic)
        assert float(rho[k]) == pytest.approx(stats.spearmanr(x[k], y[k]).statistic)


def test_rank_validation():
    with pytest.raises(ValueError, match="ties must be one of"):
        M.rank_of_target(torch.rand(2, 3), torch.tensor([0, 1]), ties="random")
    with pytest.raises(ValueError, match="target indices"):
        M.rank_of_target(torch.rand(2, 3), torch.tensor([0, 3]))
    nan = float("nan")
    for ties in ("average", "optimistic", "pessimistic"):  # a NaN target used to rank first (or 0.5)
        with pytest.raises(ValueError, match="NaN"):
            M.rank_of_target(torch.tensor([[nan, 2.0, 3.0]]), torch.tensor([0]), ties=ties)
    # infinite scores stay allowed (masked candidates)
    assert M.rank_of_target(torch.tensor([[1.0, -float("inf"), 3.0]]), torch.tensor([0])).tolist() == [2.0]


def test_paired_hits_by_hand():
    inf = float("inf")
    a = torch.tensor([1.0, 3.0, inf, 12.0, 2.0])
    b = torch.tensor([inf, 4.0, 5.0, inf, inf])
    r = M.paired_hits(a, b, 10)  # hits a: 1,1,0,0,1; b: 0,1,1,0,0
    d = np.array([1, 0, -1, 0, 1], dtype=float)
    assert r.diff == pytest.approx(0.2) and r.n == 5 and (r.a_only, r.b_only) == (2, 1)
    assert r.se == pytest.approx(d.std(ddof=1) / math.sqrt(5))
    assert r.p_value == pytest.approx(1.0)  # 2 * P(Bin(3, 1/2) <= 1) = 2 * 4/8
    same = M.paired_hits(a, a, 10)
    assert (same.diff, same.se, same.p_value) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same queries"):
        M.paired_hits(a, b[:4], 10)


def test_paired_runs_hits_by_hand():
    inf = float("inf")
    a = torch.tensor([[1.0, 2.0, inf, 1.0], [1.0, inf, inf, 3.0]])  # hits@2: 1,1,0,1 / 1,0,0,0
    b = torch.tensor([[inf, 2.0, 1.0, inf], [1.0, inf, inf, inf]])  # hits@2: 0,1,1,0 / 1,0,0,0
    r = M.paired_runs_hits(a, b, 1, n_boot=50)  # k=1: a 1,0,0,1 / 1,0,0,0; b 0,0,1,0 / 1,0,0,0
    d = np.array([[1, 0, -1, 1], [0, 0, 0, 0]], dtype=float)
    assert r.diff == pytest.approx(d.mean()) and (r.seeds, r.n) == (2, 4)
    assert r.se_seed == pytest.approx(d.mean(1).std(ddof=1) / math.sqrt(2))
    assert r.se_query == pytest.approx(d.mean(0).std(ddof=1) / math.sqrt(4))
    one = M.paired_runs_hits(a[:1], b[:1], 1, n_boot=50)
    assert one.se_seed == 0.0 and one.seeds == 1
    with pytest.raises(ValueError, match="seeds, queries"):
        M.paired_runs_hits(a, b[:, :3], 1)
    with pytest.raises(ValueError, match="n_boot"):
        M.paired_runs_hits(a, b, 1, n_boot=1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(2, 40), st.integers(0, 2**31 - 1), st.integers(1, 3))
def test_paired_runs_hits_matches_explicit_resampling(s, q, data_seed, k):
    """The weighted bootstrap equals redrawing seed rows and query columns by index (same draws), and the
    analytic parts equal numpy's float64 reading."""
    rng = np.random.default_rng(data_seed)
    a = torch.from_numpy(rng.integers(1, 5, (s, q)).astype(np.float64))
    b = torch.from_numpy(rng.integers(1, 5, (s, q)).astype(np.float64))
    r = M.paired_runs_hits(a, b, k, n_boot=30, seed=data_seed)
    d = ((a <= k).double() - (b <= k).double()).numpy()
    assert r.diff == pytest.approx(d.mean(), abs=1e-12)
    assert r.se_seed == pytest.approx(d.mean(1).std(ddof=1) / math.sqrt(s) if s > 1 else 0.0, abs=1e-12)
    assert r.se_query == pytest.approx(d.mean(0).std(ddof=1) / math.sqrt(q), abs=1e-12)
    g = torch.Generator().manual_seed(data_seed)
    boot = []
    for _ in range(30):
        i_s = torch.randint(s, (s,), generator=g).numpy()
        i_q = torch.randint(q, (q,), generator=g).numpy()
        boot.append(d[i_s][:, i_q].mean())
    assert r.se_both == pytest.approx(np.std(boot, ddof=1), abs=1e-12)


def test_paired_runs_hits_bootstrap_matches_its_exact_expectation():
    """The bootstrap SE matches its exact expectation: multinomial weights have E[w w^T] = I + (1 - 1/n) J, so
    the bootstrap variance of w_s^T d w_q / (S Q) is tr(d^T M_S d M_Q) / (S Q)^2 - mean^2. With cell noise alone
    it is about three times the naive sigma^2 / (S Q) (the pigeonhole bootstrap's conservatism); with identical
    seeds it falls back to the query noise alone."""
    rng = np.random.default_rng(0)
    s, q = 8, 3000
    a = torch.from_numpy(np.where(rng.random((s, q)) < 0.3, 1.0, 9.0))
    b = torch.from_numpy(np.where(rng.random((s, q)) < 0.3, 1.0, 9.0))
    r = M.paired_runs_hits(a, b, 1, n_boot=3000)
    d = ((a <= 1).double() - (b <= 1).double()).numpy()
    m_s, m_q = np.eye(s) + (1 - 1 / s), np.eye(q) + (1 - 1 / q)
    exact = np.trace(d.T @ m_s @ d @ m_q) / (s * q) ** 2 - d.mean() ** 2
    assert r.se_both == pytest.approx(math.sqrt(exact), rel=0.05)
    assert 2 < exact / (d.var() / (s * q)) < 3.2
    assert r.se_seed == pytest.approx(r.se_query, rel=0.5)  # both carry the cell noise once
    same = M.paired_runs_hits(a[:1].repeat(s, 1), b[:1].repeat(s, 1), 1, n_boot=3000)
    assert same.se_seed == 0.0
    assert same.se_both == pytest.approx(same.se_query, rel=0.1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=300))
def test_paired_hits_matches_scipy_mcnemar(pairs):
    ha = np.array([p[0] for p in pairs])
    hb = np.array([p[1] for p in pairs])
    ra = torch.tensor(np.where(ha, 1.0, np.inf))
    rb = torch.tensor(np.where(hb, 3.0, np.inf))
    r = M.paired_hits(ra, rb, 5)
    a_only, b_only = int((ha & ~hb).sum()), int((~ha & hb).sum())
    assert (r.a_only, r.b_only) == (a_only, b_only)
    expected = 1.0 if a_only + b_only == 0 else stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert r.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    d = ha.astype(float) - hb.astype(float)
    assert r.diff == pytest.approx(d.mean(), abs=1e-12)
    assert r.se == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_exact_is_symmetric_binomial_test(a_only, b_only):
    p = M.mcnemar_exact(a_only, b_only)
    assert p == M.mcnemar_exact(b_only, a_only)
    expected = 1.0 if a_only + b_only == 0 else stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_exact_edges():
    assert M.mcnemar_exact(0, 0) == 1.0 and M.mcnemar_exact(3, 3) == 1.0
    assert M.mcnemar_exact(10, 0) == pytest.approx(2 / 2 ** 10)
    with pytest.raises(ValueError, match="non-negative"):
        M.mcnemar_exact(-1, 2)
