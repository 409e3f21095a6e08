"""Losses, retrieval metrics, and alignment of planted correspondences through aligncore.training.fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.altmoe.align import AltAligner, info_nce, retrieval, symmetric_info_nce
from mmalign.altmoe.config import AltMoEConfig, AltMoETrainConfig
from mmalign.altmoe.connector import AltMoEConnector
from mmalign.altmoe.data import synthetic_pairs
from mmalign.altmoe.schedule import AlternatingSchedule, all_directions
from mmalign.altmoe.train import train_altmoe


def _np_info_nce(q: np.ndarray, k: np.ndarray, tau: float) -> float:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    s = qn @ kn.T / tau
    m = s.max(1, keepdims=True)
    logsum = np.log(np.exp(s - m).sum(1)) + m[:, 0]
    return float(np.mean(logsum - np.diag(s)))


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 12), d=st.integers(1, 9), tau=st.floats(0.02, 2.0), seed=st.integers(0, 10_000))
def test_info_nce_matches_float64_numpy(b, d, tau, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((b, d)) + 0.1, rng.standard_normal((b, d)) - 0.1
    got = info_nce(torch.tensor(q, dtype=torch.float32), torch.tensor(k, dtype=torch.float32), tau).item()
    assert got == pytest.approx(_np_info_nce(q, k, tau), rel=1e-4, abs=1e-4)
    sym = symmetric_info_nce(torch.tensor(q), torch.tensor(k), tau).item()
    assert sym == pytest.approx(0.5 * (_np_info_nce(q, k, tau) + _np_info_nce(k, q, tau)), rel=1e-9, abs=1e-9)


def test_info_nce_hand_value():
    # two orthogonal pairs, tau = 1: each row is -log(e / (e + 1))
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert info_nce(q, q.clone(), 1.0).item() == pytest.approx(-np.log(np.e / (np.e + 1)), abs=1e-6)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 1000))
def test_retrieval_ranks_match_brute_force(n, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    res = retrieval(torch.tensor(q), torch.tensor(k), chunk=7)
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (k / np.linalg.norm(k, axis=1, keepdims=True)).T
    ranks = 1 + (cos > np.diag(cos)[:, None] + 1e-12).sum(1)  # continuous data: no ties
    np.testing.assert_array_equal(res.ranks.numpy(), ranks)
    assert res.recall[1] == pytest.approx(np.mean(ranks <= 1))
    assert res.recall[5] == pytest.approx(np.mean(ranks <= 5))
    assert res.mrr == pytest.approx(np.mean(1.0 / ranks))


def test_aligner_forward_follows_schedule_and_returns_loss_parts():
    torch.manual_seed(0)
    con = AltMoEConnector([5, 3], latent=8, hidden=8, n_experts=3, top_k=2)
    al = AltAligner(con, ["a", "b"], AlternatingSchedule(all_directions(2)))
    batch = {"a": torch.randn(6, 5), "b": torch.randn(6, 3)}
    dirs = []
    for _ in range(4):
        loss, extra = al(batch)
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert set(extra) == {"infonce", "reg", "balance", "direction"}
        dirs.append(int(extra["direction"]))
    assert dirs == [0, 1, 0, 1]
    loss, parts = al.direction_loss(batch, 1, 0)
    assert loss.item() == pytest.approx(parts["infonce"] + parts["reg"] + 0.01 * parts["balance"], rel=1e-5)


@pytest.mark.parametrize("model", ["altmoe", "linear"])
def test_planted_linear_correspondence_is_recovered(tmp_path, model):
    torch.set_num_threads(1)
    pairs = synthetic_pairs(600, (24, 16), noise=0.05, seed=1)
    cfg = AltMoEConfig(model=model, experts=4, top_k=2, latent=32, hidden=32, dropout=0.0)
    tcfg = AltMoETrainConfig(out_dir=str(tmp_path / model), max_epochs=25, batch_size=64, lr=3e-3,
                             progress=False, patience=None)
    out = train_altmoe(pairs, cfg, tcfg)
    assert out.test["m0->m1_recall@1"] > 0.9 and out.test["m1->m0_recall@1"] > 0.9
    assert out.test["m0->m1_recall@10"] == pytest.approx(1.0)
    assert out.fit.best_metric > 0.9


def test_three_modalities_quick_run_visits_all_six_directions(tmp_path):
    torch.set_num_threads(1)
    pairs = synthetic_pairs(300, (20, 12, 9), noise=0.05, seed=2)
    cfg = AltMoEConfig(experts=4, top_k=2, latent=32, hidden=32, dropout=0.0)
    tcfg = AltMoETrainConfig(out_dir=str(tmp_path), max_epochs=8, batch_size=32, lr=3e-3, progress=False,
                             patience=None)
    out = train_altmoe(pairs, cfg, tcfg)
    r1 = {k: v for k, v in out.test.items() if k.endswith("recall@1")}
    assert len(r1) == 6
    assert min(r1.values()) > 10 / pairs.test.numel()  # well above chance (1 / 75) in every direction
    assert sorted(out.test_ranks) == sorted(k.removesuffix("_recall@1") for k in r1)
    for name, ranks in out.test_ranks.items():  # the per-query ranks the recalls were read from
        assert ranks.shape == (pairs.test.numel(),)
        assert (ranks <= 1).double().mean().item() == pytest.approx(out.test[f"{name}_recall@1"])
        assert (1 / ranks).mean().item() == pytest.approx(out.test[f"{name}_mrr"], rel=1e-6)
    visits = out.aligner.schedule.visits.tolist()
    assert len(visits) == 6 and max(visits) - min(visits) <= 1  # round robin over the six directions


@pytest.mark.slow
def test_three_modalities_align_in_all_six_directions(tmp_path):
    torch.set_num_threads(1)
    pairs = synthetic_pairs(500, (20, 12, 9), noise=0.05, seed=2)
    cfg = AltMoEConfig(experts=4, top_k=2, latent=32, hidden=32, dropout=0.0)
    tcfg = AltMoETrainConfig(out_dir=str(tmp_path), max_epochs=60, batch_size=64, lr=3e-3, progress=False,
                             patience=None)
    out = train_altmoe(pairs, cfg, tcfg)
    r1 = {k: v for k, v in out.test.items() if k.endswith("recall@1")}
    assert len(r1) == 6
    assert min(r1.values()) > 0.8, r1
    visits = out.aligner.schedule.visits.tolist()
    assert max(visits) - min(visits) <= 1  # round robin over the six directions
