import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.das.model import DAS, DASConfig, InteractionDataset, info_nce, orthogonality, popularity_targets


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(1, 6), st.floats(0.05, 2.0), st.integers(0, 10_000))
def test_info_nce_matches_float64(b, d, tau, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    qn = q.double() / q.double().norm(dim=1, keepdim=True)
    kn = k.double() / k.double().norm(dim=1, keepdim=True)
    s = (qn @ kn.T / tau).numpy()
    ref = np.mean([-(s[i, i] - np.log(np.exp(s[i]).sum())) for i in range(b)])
    assert float(info_nce(q, k, tau)) == pytest.approx(ref, rel=1e-4, abs=1e-5)


def test_info_nce_minimal_for_aligned_pairs():
    b, tau = 6, 0.1
    q = torch.eye(b)
    aligned = float(info_nce(q, q.clone(), tau))
    assert aligned == pytest.approx(math.log(1 + (b - 1) * math.exp(-1 / tau)), abs=1e-6)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert float(info_nce(q, torch.randn(b, b, generator=g), tau)) > aligned
    assert float(info_nce(q, q[torch.roll(torch.arange(b), 1)], tau)) > aligned


def test_orthogonality_penalty():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 3.0], [2.0, 0.0]])
    assert float(orthogonality(a, b)) == pytest.approx((0.0 + 0.5) / 2)
    assert float(orthogonality(a, a)) == pytest.approx(1.0)


def test_popularity_targets_by_hand():
    pop, conf = popularity_targets([[0, 1], [0], [0, 2]], 4)
    lp = np.log1p(np.array([3.0, 1.0, 1.0, 0.0]))
    z = (lp - lp.mean()) / lp.std()
    assert np.allclose(pop, z, atol=1e-6)
    c = np.array([z[[0, 1]].mean(), z[0], z[[0, 2]].mean()])
    assert np.allclose(conf, (c - c.mean()) / c.std(), atol=1e-6)


def _synthetic(n_users=60, n_items=40, d=12, seed=0):
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, 4, n_items)
    x_item = (np.eye(4)[topics] @ rng.normal(size=(4, d)) + 0.1 * rng.normal(size=(n_items, d))).astype(np.float32)
    train = []
    for u in range(n_users):
        t = u % 4
        pool = np.flatnonzero(topics == t)
        train.append(list(rng.choice(pool, size=5)))
    x_user = np.stack([x_item[s].mean(0) for s in train]).astype(np.float32)
    return train, x_item, x_user


def _model(train, x_item, x_user, cfg):
    pop, conf = popularity_targets(train, len(x_item))
    return DAS(torch.as_tensor(x_item), torch.as_tensor(x_user), torch.as_tensor(pop), torch.as_tensor(conf), cfg)


def test_debias_split_shapes_and_values():
    train, xi, xu = _synthetic()
    cfg = DASConfig(n_levels=2, n_codes=4, latent_dim=6, hidden_dim=16)
    m = _model(train, xi, xu, cfg)
    e = torch.randn(5, 12)
    s = m.split(e)
    assert s.debiased.shape == (5, 6) and s.bias.shape == (5, 6)
    assert torch.equal(torch.cat([s.debiased, s.bias], 1), e)
    with pytest.raises(ValueError, match="last dimension 12"):
        m.split(torch.randn(5, 10))


def test_interaction_dataset_co_users_share_the_item():
    u = np.array([0, 1, 2, 0, 3])
    i = np.array([5, 5, 5, 7, 8])
    j = np.array([7, 5, 5, 5, 8])
    ds = InteractionDataset(u, i, j, seed=3)
    for k in range(len(ds)):
        row = ds[k]
        users_of_item = set(u[i == int(row["i"])].tolist())
        assert int(row["v"]) in users_of_item
        if len(users_of_item) > 1:
            assert int(row["v"]) != int(row["u"])


def test_short_joint_training_lowers_every_loss_term():
    """Every term falls from the start to the end of a short run, except the quantisation (commitment) term:
    k-means fits the codebooks to the untrained encoder's nearly collapsed latents, so that term starts near zero
    and first rises while the alignment spreads the latents apart; it is asserted to fall over the second half."""
    torch.manual_seed(0)
    train, xi, xu = _synthetic()
    cfg = DASConfig(n_levels=2, n_codes=4, latent_dim=8, hidden_dim=32, restart_after=0)
    m = _model(train, xi, xu, cfg)
    m.init_codebooks()
    users = np.repeat(np.arange(len(train)), 5)
    items = np.array([i for s in train for i in s])
    nxt = np.array([s[(t + 1) % 5] for s in train for t in range(5)])
    ds = InteractionDataset(users, items, nxt)
    batch = {k: torch.stack([ds[n][k] for n in range(len(ds))]) for k in ("u", "i", "j", "v")}

    def terms():
        m.eval()
        with torch.no_grad():
            out = {k: float(v) for k, v in m(batch).terms.items()}
        m.train()
        return out

    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    seen = [terms()]
    for step in range(1, 101):
        idx = torch.randperm(len(ds), generator=g)[:64]
        opt.zero_grad()
        m({k: v[idx] for k, v in batch.items()}).loss.backward()
        opt.step()
        if step % 50 == 0:
            seen.append(terms())
    before, middle, after = seen
    for k in before:
        if k != "quant":
            assert after[k] < before[k], (k, before[k], after[k])
    assert after["quant"] < middle["quant"]


def test_dedup_negatives_when_one_user_fills_the_batch():
    """Every row is the same user: with dedup_negatives no other row is a negative of the user-keyed views, so
    the CF softmax and the dual view are exactly 0; without it they are not. Items with equal content share a
    group, so an item's duplicate content is not its negative either."""
    train, xi, xu = _synthetic()
    xi[1] = xi[0]
    items = torch.tensor([0, 1, 2, 3, 4, 5])
    batch = {"u": torch.zeros(6, dtype=torch.long), "i": items, "j": items.roll(1), "v": torch.ones(6, dtype=torch.long)}
    out = {}
    for dedup in (True, False):
        torch.manual_seed(0)
        cfg = DASConfig(n_levels=2, n_codes=4, latent_dim=6, hidden_dim=16, dedup_negatives=dedup)
        m = _model(train, xi, xu, cfg).eval()
        m.init_codebooks()
        with torch.no_grad():
            out[dedup] = {k: float(v) for k, v in m(batch).terms.items()}
        assert int(m.item_group[0]) == int(m.item_group[1]) != int(m.item_group[2])
    assert out[True]["cf"] == 0.0 and out[True]["dual"] == 0.0
    assert out[False]["cf"] > 0.1 and out[False]["dual"] > 0.1
    for k in ("u2i", "i2i", "co"):
        assert out[True][k] < out[False][k]
    for k in ("recon", "quant", "pop", "orth"):
        assert out[True][k] == pytest.approx(out[False][k])
