"""Losses against float64 formulas written out by hand, plus invariances and gradient signs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmalign.losses import (
    LOSSES,
    adpa_loss,
    asft_loss,
    d2o_loss,
    dckd_loss,
    dpo_loss,
    hinge_loss,
    ipo_loss,
    kto_loss,
    orpo_loss,
    pair_loss,
    poft_loss,
    robust_dpo_loss,
    sft_loss,
    simpo_loss,
)

logp = st.floats(min_value=-30.0, max_value=-0.05, allow_nan=False)
quad = st.tuples(logp, logp, logp, logp)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_values_at_zero_log_ratios():
    z = t(-3.0, -7.0)
    beta = 0.25
    assert dpo_loss(z, z, z, z, beta=beta).loss.item() == pytest.approx(math.log(2))
    assert robust_dpo_loss(z, z, z, z, beta=beta, label_smoothing=0.2).loss.item() == pytest.approx(math.log(2))
    assert ipo_loss(z, z, z, z, beta=beta).loss.item() == pytest.approx((1 / (2 * beta)) ** 2)
    assert hinge_loss(z, z, z, z, beta=beta).loss.item() == pytest.approx(1.0)
    assert kto_loss(z, z, z, z, beta=beta).loss.item() == pytest.approx(1.0)  # 2 x (1 - sigmoid(0))
    res = dpo_loss(z, z, z, z, beta=beta)
    assert res.margin.item() == 0.0 and res.accuracy.item() == 0.0


@settings(max_examples=40, deadline=None)
@given(quad, st.floats(0.01, 2.0), st.floats(0.0, 0.45))
def test_reference_losses_match_scalar_formulas(q, beta, eps):
    pc, pr, rc, rr = q
    h = (pc - rc) - (pr - rr)
    P, R, RC, RR = t(pc), t(pr), t(rc), t(rr)
    exp_dpo = -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h)
    assert dpo_loss(P, R, RC, RR, beta=beta, label_smoothing=eps).loss.item() == pytest.approx(exp_dpo, rel=1e-9, abs=1e-12)
    exp_rob = (-(1 - eps) * log_sigmoid(beta * h) + eps * log_sigmoid(-beta * h)) / (1 - 2 * eps)
    assert robust_dpo_loss(P, R, RC, RR, beta=beta, label_smoothing=eps).loss.item() == pytest.approx(exp_rob, rel=1e-9, abs=1e-12)
    assert ipo_loss(P, R, RC, RR, beta=beta).loss.item() == pytest.approx((h - 1 / (2 * beta)) ** 2, rel=1e-9)
    assert hinge_loss(P, R, RC, RR, beta=beta).loss.item() == pytest.approx(max(0.0, 1 - beta * h), abs=1e-12)
    res = dpo_loss(P, R, RC, RR, beta=beta)
    assert res.chosen_rewards.item() == pytest.approx(beta * (pc - rc))
    assert res.rejected_rewards.item() == pytest.approx(beta * (pr - rr))
    assert res.margin.item() == pytest.approx(beta * h, abs=1e-12)
    # KTO with an explicit reference point z0
    z0 = 0.3
    exp_kto = (1 - sigmoid(beta * ((pc - rc) - z0))) + (1 - sigmoid(beta * (z0 - (pr - rr))))
    assert kto_loss(P, R, RC, RR, beta=beta, kl=z0).loss.item() == pytest.approx(exp_kto, rel=1e-9)


def test_ipo_length_normalisation():
    got = ipo_loss(t(-4.0), t(-9.0), t(-5.0), t(-6.0), beta=0.5, chosen_lengths=t(2.0), rejected_lengths=t(3.0))
    h = (1.0 / 2) - (-3.0 / 3)
    assert got.loss.item() == pytest.approx((h - 1.0) ** 2)


@settings(max_examples=30, deadline=None)
@given(quad, st.floats(-5, 5), st.floats(-5, 5))
def test_reference_losses_invariant_to_shared_constant(q, c1, c2):
    pc, pr, rc, rr = t(*q[:1]), t(*q[1:2]), t(*q[2:3]), t(*q[3:])
    for name in ("dpo", "robust", "ipo", "hinge", "kto"):
        a = pair_loss(name, pc, pr, ref_chosen=rc, ref_rejected=rr, chosen_lengths=t(3.0), rejected_lengths=t(4.0))
        b = pair_loss(name, pc + c1, pr + c2, ref_chosen=rc + c1, ref_rejected=rr + c2, chosen_lengths=t(3.0),
                      rejected_lengths=t(4.0))
        assert b.loss.item() == pytest.approx(a.loss.item(), rel=1e-9, abs=1e-9), name


@settings(max_examples=30, deadline=None)
@given(quad)
def test_swapping_chosen_and_rejected_flips_margin(q):
    pc, pr, rc, rr = (t(x) for x in q)
    lc, lr = t(3.0), t(5.0)
    for name in ("dpo", "robust", "ipo", "hinge", "kto", "simpo", "orpo", "asft", "sft"):
        a = pair_loss(name, pc, pr, ref_chosen=rc, ref_rejected=rr, chosen_lengths=lc, rejected_lengths=lr)
        b = pair_loss(name, pr, pc, ref_chosen=rr, ref_rejected=rc, chosen_lengths=lr, rejected_lengths=lc)
        if name == "sft":
            continue  # SFT's "rewards" are not symmetric in the pair by design
        assert b.margin.item() == pytest.approx(-a.margin.item(), abs=1e-9), name


@pytest.mark.parametrize("name", ["dpo", "robust", "ipo", "hinge", "kto", "simpo", "orpo", "asft"])
def test_gradient_pushes_chosen_up_and_rejected_down(name):
    pc = torch.tensor([-6.0, -3.0], dtype=torch.float64, requires_grad=True)
    pr = torch.tensor([-5.0, -4.0], dtype=torch.float64, requires_grad=True)
    rc, rr = t(-6.0, -3.0), t(-5.0, -4.0)  # policy == reference: zero log-ratios
    res = pair_loss(name, pc, pr, ref_chosen=rc, ref_rejected=rr, chosen_lengths=t(4.0, 4.0),
                    rejected_lengths=t(4.0, 4.0))
    res.loss.backward()
    assert (pc.grad < 0).all(), (name, pc.grad)
    assert (pr.grad > 0).all(), (name, pr.grad)


def test_simpo_orpo_asft_by_hand():
    pc, pr, lc, lr = t(-2.0), t(-6.0), t(2.0), t(3.0)
    mw, ml = -1.0, -2.0
    # SimPO
    exp = -log_sigmoid(2.0 * mw - 2.0 * ml - 0.5)
    assert simpo_loss(pc, pr, lc, lr, beta=2.0, gamma=0.5).loss.item() == pytest.approx(exp)

    def log_odds(m):
        p = math.exp(m)
        return math.log(p / (1 - p))

    # ORPO: NLL + lambda * -log sigmoid(log odds ratio)
    exp = -mw - 0.2 * log_sigmoid(log_odds(mw) - log_odds(ml))
    assert orpo_loss(pc, pr, lc, lr, beta=0.2).loss.item() == pytest.approx(exp)
    # ASFT (beta = 1): log sigmoid(log odds) = log p, log sigmoid(-log odds) = log(1 - p)
    exp = -mw - 0.7 * (mw + math.log(1 - math.exp(ml)))
    assert asft_loss(pc, pr, lc, lr, lam=0.7).loss.item() == pytest.approx(exp)
    exp = -mw - 0.7 * (log_sigmoid(0.5 * log_odds(mw)) + log_sigmoid(-0.5 * log_odds(ml)))
    assert asft_loss(pc, pr, lc, lr, beta=0.5, lam=0.7).loss.item() == pytest.approx(exp)
    # SFT is token-averaged over the batch
    got = sft_loss(t(-2.0, -9.0), t(2.0, 3.0))
    assert got.loss.item() == pytest.approx(11.0 / 5.0)


def test_d2o_formula_and_reduction_to_dpo():
    ps, rs = t(-3.0, -4.0, -5.0).view(1, 3), t(-3.5, -4.0, -6.0).view(1, 3)
    pr, rr = t(-2.0), t(-1.0)
    beta, alpha = 0.3, 0.2
    exp = -log_sigmoid(beta / 3 * (0.5 + 0.0 + 1.0) - alpha * (-1.0))
    assert d2o_loss(ps, rs, pr, rr, beta=beta, alpha=alpha).loss.item() == pytest.approx(exp)
    # K = 1 and alpha = beta is DPO with the sample as the chosen completion
    a = d2o_loss(ps[:, :1], rs[:, :1], pr, rr, beta=beta, alpha=beta)
    b = dpo_loss(ps[:, 0], pr, rs[:, 0], rr, beta=beta)
    assert a.loss.item() == pytest.approx(b.loss.item())
    # masked samples do not count
    m = torch.tensor([[1, 1, 0]])
    exp = -log_sigmoid(beta / 2 * (0.5 + 0.0) - alpha * (-1.0))
    assert d2o_loss(ps, rs, pr, rr, beta=beta, alpha=alpha, sample_mask=m).loss.item() == pytest.approx(exp)


def test_poft_value_and_gradient_weight():
    # PoFT (authors' code): one Bradley-Terry term against the *mean* of the aligned models' mean-token scores
    pol = torch.tensor([-4.0, -10.0], dtype=torch.float64, requires_grad=True)
    al = t(-5.0, -6.0, -8.0, -9.0).view(2, 2)
    n = t(2.0, 2.0)
    res = poft_loss(pol, al, beta=1.5, lengths=n)
    s = [-2.0, -5.0]
    s_bar = [(-2.5 - 3.0) / 2, (-4.0 - 4.5) / 2]
    per = [-log_sigmoid(1.5 * (s[i] - s_bar[i])) for i in range(2)]
    assert res.loss.item() == pytest.approx(sum(per) / 2)
    assert res.rejected_rewards.tolist() == pytest.approx(s_bar)
    # averaging scores first differs from averaging per-model losses (the log-sigmoid is not linear)
    per_model_mean = -(log_sigmoid(1.5 * (s[0] + 2.5)) + log_sigmoid(1.5 * (s[0] + 3.0))) / 2
    assert per[0] != pytest.approx(per_model_mean, rel=1e-6)
    res.loss.backward()
    # d/d logpi of -log sigmoid(beta (logpi/n - s_bar)) = -(beta/n) sigmoid(beta (s_bar - s)), then / B
    for i in range(2):
        g = -1.5 / 2 * sigmoid(1.5 * (s_bar[i] - s[i])) / 2
        assert pol.grad[i].item() == pytest.approx(g)
    # one aligned model given as (B,) and already-normalised scores (lengths=None) agree with the above
    one = poft_loss(t(-2.0), t(-2.5), beta=1.5)
    assert one.loss.item() == pytest.approx(-log_sigmoid(1.5 * 0.5))


def test_dckd_zero_kd_when_student_is_teacher_and_kl_by_hand():
    torch.manual_seed(0)
    s = torch.randn(2, 3, 5, dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[0, 1, 2], [3, 4, 0]])
    res = dckd_loss(s, s, mask, s, s, mask, labels, sft_weight=1.0)
    assert res.extra["kd_chosen"].item() == pytest.approx(0.0, abs=1e-12)
    lp = torch.log_softmax(s, -1)
    nll = -sum(lp[b, i, labels[b, i]].item() for b in range(2) for i in range(3) if mask[b, i]) / 4
    assert res.loss.item() == pytest.approx(nll)
    tch = torch.randn(2, 3, 5, dtype=torch.float64)
    res = dckd_loss(s, tch, mask, s, tch, mask, sft_weight=0.0)
    kl = 0.0
    for b in range(2):
        for i in range(3):
            if mask[b, i]:
                p = torch.softmax(tch[b, i], -1).tolist()
                q = torch.softmax(s[b, i], -1).tolist()
                kl += sum(pv * math.log(pv / qv) for pv, qv in zip(p, q, strict=True))
    assert res.loss.item() == pytest.approx(2 * kl / 4)


def test_adpa_zero_advantage_and_gradient_direction():
    torch.manual_seed(1)
    student = torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(1, 2, 6, dtype=torch.float64)
    mask = torch.ones(1, 2)
    res = adpa_loss(student, ref, ref, mask)
    assert res.loss.item() == pytest.approx(0.0, abs=1e-12)
    teacher = ref.clone()
    teacher[..., 3] += 2.0  # the aligned teacher prefers token 3 more than its reference does
    res = adpa_loss(student, teacher, ref, mask, beta=0.5)
    res.loss.backward()
    with torch.no_grad():
        stepped = student - 0.5 * student.grad
    assert (torch.softmax(stepped, -1)[..., 3] > torch.softmax(student, -1)[..., 3]).all()
    adv = 0.5 * (torch.log_softmax(teacher, -1) - torch.log_softmax(ref, -1))
    exp = -(torch.softmax(student, -1) * adv).sum(-1).mean()
    assert res.loss.item() == pytest.approx(exp.item())


def test_registry_errors_and_dispatch():
    z = t(-1.0)
    with pytest.raises(KeyError, match="d2o"):
        pair_loss("d2o", z, z)
    with pytest.raises(KeyError, match="known"):
        pair_loss("nope", z, z)
    with pytest.raises(TypeError, match="gamma"):
        pair_loss("dpo", z, z, ref_chosen=z, ref_rejected=z, gamma=1.0)
    with pytest.raises(ValueError, match="reference"):
        pair_loss("dpo", z, z)
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(t(1.0, 2.0), t(1.0), t(1.0), t(1.0))
    assert set(LOSSES) >= {"dpo", "sigmoid", "robust", "ipo", "hinge", "kto", "simpo", "orpo", "asft", "sft"}
    a = pair_loss("simpo", t(-2.0), t(-3.0), chosen_lengths=t(1.0), rejected_lengths=t(1.0), beta=1.0, gamma=0.0)
    assert a.loss.item() == pytest.approx(-log_sigmoid(1.0))
    assert set(a.metrics()) >= {"loss", "rewards_chosen", "rewards_rejected", "margin", "accuracy"}
