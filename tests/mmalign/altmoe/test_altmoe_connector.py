"""Router, load-balancing loss, sparse MoE dispatch and the direction-conditioned connector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.altmoe.baselines import LinearProjection, mlp_connector
from mmalign.altmoe.connector import AltMoEConnector, MoE, TopKRouter, load_balancing_loss


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), e=st.integers(1, 12), data=st.data(), seed=st.integers(0, 10_000))
def test_router_picks_exactly_k_distinct_experts_and_gates_sum_to_one(n, e, data, seed):
    k = data.draw(st.integers(1, e))
    torch.manual_seed(seed)
    router = TopKRouter(8, e, k)
    torch.nn.init.normal_(router.gate.weight, std=1.0)
    x = torch.randn(n, 8)
    r = router(x)
    assert r.experts.shape == (n, k) and r.gates.shape == (n, k)
    for row in r.experts.tolist():
        assert len(set(row)) == k and all(0 <= i < e for i in row)
    torch.testing.assert_close(r.gates.sum(-1), torch.ones(n))
    # independent float64 reference: softmax, sort descending, take the k largest, renormalise
    logits = (x.double() @ router.gate.weight.detach().double().T).numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = -np.sort(-p, axis=1)[:, :k]
    np.testing.assert_allclose(r.gates.detach().double().numpy(), top / top.sum(1, keepdims=True), atol=1e-5)
    chosen = np.take_along_axis(p, r.experts.numpy(), axis=1)
    np.testing.assert_allclose(np.sort(chosen, axis=1), np.sort(top, axis=1), atol=1e-6)


def test_load_balancing_loss_is_one_for_uniform_routing():
    e, n, k = 6, 12, 2
    probs = torch.full((n, e), 1.0 / e)
    experts = torch.tensor([[(2 * i) % e, (2 * i + 1) % e] for i in range(n)])  # every expert 4 of 24 slots
    assert load_balancing_loss(probs, experts).item() == pytest.approx(1.0, abs=1e-6)
    # a zero router gives uniform probabilities: the loss is 1 whatever the tie-breaking picked
    router = TopKRouter(5, e, k)
    torch.nn.init.zeros_(router.gate.weight)
    assert router(torch.randn(n, 5)).aux_loss.item() == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 20), min_size=2, max_size=8).filter(lambda c: sum(c) > 0))
def test_load_balancing_loss_is_minimal_for_uniform_confident_routing(counts):
    # confident top-1 routing: each input puts all its probability on its chosen expert, so P_e = f_e and the
    # loss is E * sum_e f_e^2 (hand formula) >= 1, with equality exactly when the load is uniform
    e, n = len(counts), sum(counts)
    experts = torch.tensor([i for i, c in enumerate(counts) for _ in range(c)])[:, None]
    probs = torch.nn.functional.one_hot(experts[:, 0], e).double()
    f = np.array(counts, dtype=np.float64) / n
    value = load_balancing_loss(probs, experts).item()
    assert value == pytest.approx(e * (f ** 2).sum(), rel=1e-9)
    assert value >= 1.0 - 1e-9
    assert (abs(value - 1.0) < 1e-9) == (len(set(counts)) == 1)


def test_load_balancing_loss_higher_when_routing_collapses():
    torch.manual_seed(0)
    e, n = 8, 64
    probs = torch.softmax(torch.randn(n, e) * 0.01, -1)
    spread = load_balancing_loss(probs, torch.arange(n)[:, None] % e)
    collapsed_p = torch.softmax(torch.tensor([5.0] + [0.0] * (e - 1)).expand(n, e), -1)
    collapsed = load_balancing_loss(collapsed_p, torch.zeros(n, 1, dtype=torch.long))
    assert spread.item() == pytest.approx(1.0, abs=0.02)
    assert collapsed.item() > 5.0


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 30), e=st.integers(1, 6), data=st.data(), seed=st.integers(0, 1000))
def test_sparse_moe_equals_dense_per_row_reference(n, e, data, seed):
    k = data.draw(st.integers(1, e))
    torch.manual_seed(seed)
    moe = MoE(6, 10, e, k).double()
    torch.nn.init.normal_(moe.router.gate.weight, std=1.0)
    u = torch.randn(n, 6, dtype=torch.float64)
    out, r = moe(u)
    ref = torch.zeros_like(u)
    for i in range(n):  # Σ_{e in T} g_e (W2 gelu(W1 u + b1) + b2), one row and one expert at a time
        for j in range(k):
            ex = int(r.experts[i, j])
            h = torch.nn.functional.gelu(u[i] @ moe.w1[ex] + moe.b1[ex])
            ref[i] += r.gates[i, j] * (h @ moe.w2[ex] + moe.b2[ex])
    torch.testing.assert_close(out, ref)


def test_moe_gradients_reach_router_and_only_chosen_experts():
    torch.manual_seed(1)
    moe = MoE(4, 8, 5, 2)
    u = torch.randn(1, 4)
    out, r = moe(u)
    (out.sum() + r.aux_loss).backward()
    chosen = set(r.experts[0].tolist())
    assert moe.router.gate.weight.grad is not None and moe.router.gate.weight.grad.abs().sum() > 0
    for ex in range(5):
        has = moe.w1.grad[ex].abs().sum() > 0
        assert bool(has) == (ex in chosen)


def test_connector_is_direction_conditioned_and_shapes():
    torch.manual_seed(0)
    c = AltMoEConnector({"a": 7, "b": 7, "c": 3}, latent=16, hidden=8, n_experts=4, top_k=2, dropout=0.0)
    torch.nn.init.normal_(c.direction.weight, std=1.0)
    x = torch.randn(5, 7)
    ab, ac = c(x, "a", "b"), c(x, 0, 2)
    assert ab.query.shape == (5, 16) and ab.pred.shape == (5, 7) and ac.pred.shape == (5, 3)
    # same source, same target head: the direction embedding alone changes the output (a->b vs b->a uses
    # the b head vs the a head, so compare a->b with a->b after changing only its direction row)
    before = c(x, "a", "b").query.detach().clone()
    with torch.no_grad():
        c.direction.weight[0 * 3 + 1] += 1.0
    assert not torch.allclose(c(x, "a", "b").query, before)
    assert c.key(torch.randn(2, 3), "c").shape == (2, 16)
    with pytest.raises(ValueError, match="shape"):
        c(torch.randn(5, 3), "a", "b")
    with pytest.raises(ValueError, match="differ"):
        c(x, "a", "a")
    with pytest.raises(KeyError, match="unknown modality"):
        c(x, "z", "a")


def test_latent_width_is_independent_of_encoder_widths():
    for latent in (8, 100):
        c = AltMoEConnector([300, 5], latent=latent, hidden=4, n_experts=3, top_k=1)
        assert c(torch.randn(2, 300), 0, 1).query.shape == (2, latent)
        assert c(torch.randn(2, 5), 1, 0).pred.shape == (2, 300)


def test_baselines_interface_and_mlp_is_one_expert_k_times_wider():
    m = mlp_connector([4, 6], latent=8, hidden=5, top_k=3)
    assert m.moe.w1.shape == (1, 8, 15)
    out = m(torch.randn(3, 4), 0, 1)
    assert out.query.shape == (3, 8) and out.pred.shape == (3, 6)
    lin = LinearProjection([4, 6], latent=8)
    x = torch.randn(3, 4)
    o = lin(x, 0, 1)
    torch.testing.assert_close(o.query, x @ lin.proj[0].weight.T + lin.proj[0].bias)
    assert o.pred is None and o.aux_loss.item() == 0.0


def test_multi_gate_routes_each_objective_on_its_own_task_embedding():
    torch.manual_seed(0)
    kw = dict(latent=16, hidden=8, n_experts=6, top_k=2, dropout=0.0)
    plain = AltMoEConnector([7, 5], **kw)
    torch.manual_seed(0)
    mg = AltMoEConnector([7, 5], **kw, multi_gate=True)
    # the option adds its parameters after the shared ones: the shared initial weights are those of the default
    for name, p in plain.named_parameters():
        torch.testing.assert_close(dict(mg.named_parameters())[name], p)
    assert {n for n, _ in mg.named_parameters()} - {n for n, _ in plain.named_parameters()} == {
        "task", "reg_norm.weight", "reg_norm.bias"}
    with torch.no_grad():
        mg.task.normal_(std=3.0)
        torch.nn.init.normal_(mg.moe.router.gate.weight, std=1.0)
    x = torch.randn(64, 7)
    out = mg(x, 0, 1)
    assert out.query.shape == (64, 16) and out.pred.shape == (64, 5)
    # an independent evaluation of each pass: u + task embedding -> MoE -> own norm -> residual -> head
    u = mg.inp[0](x) + mg.direction.weight[1]
    for j, norm, head, got in ((0, mg.norm, mg.q_head[1], out.query), (1, mg.reg_norm, mg.reg_head[1], out.pred)):
        v = u + mg.task[j]
        mixed, _ = mg.moe(v)
        torch.testing.assert_close(got, head(v + torch.nn.functional.gelu(norm(mixed))))
    # the two objectives are routed differently (distinct task embeddings shift the router's input)
    chosen_cl = mg.moe.router(u + mg.task[0]).experts
    chosen_reg = mg.moe.router(u + mg.task[1]).experts
    assert (chosen_cl != chosen_reg).any()
    # retrieval needs only the contrastive pass: pred=False skips the regression and keeps the query
    q_only = mg(x, 0, 1, pred=False)
    assert q_only.pred is None
    torch.testing.assert_close(q_only.query, out.query)
    # the regression loss trains the regression path's norm, not the contrastive one's
    mg.zero_grad()
    mg(x, 0, 1).pred.pow(2).mean().backward()
    assert mg.reg_norm.weight.grad.abs().sum() > 0 and mg.norm.weight.grad is None
    assert mg.task.grad[1].abs().sum() > 0 and mg.task.grad[0].abs().sum() == 0
