import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.das.rqvae import (
    RQVAE,
    ResidualQuantizer,
    add_disambiguation,
    collision_rate,
    kmeans,
    utilisation,
)


def _clustered(n=400, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, d, generator=g) * 3
    return centres[torch.randint(6, (n,), generator=g)] + 0.3 * torch.randn(n, d, generator=g)


def test_kmeans_recovers_separated_centres():
    g = torch.Generator().manual_seed(1)
    true = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = true.repeat_interleave(50, 0) + 0.1 * torch.randn(150, 2, generator=g)
    c = kmeans(x, 3, generator=g)
    d = torch.cdist(true, c)
    assert float(d.min(1).values.max()) < 0.1  # every true centre has a found centre next to it


def test_reconstruction_error_decreases_with_levels():
    x = _clustered()
    errs = []
    for levels in (1, 2, 3):
        q = ResidualQuantizer(8, levels, 16, restart_after=0)
        q.init_kmeans(x, seed=0)
        q.eval()
        out = q(x)
        errs.append(float(((out.quantized - x) ** 2).sum(1).mean()))
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] < float((x ** 2).sum(1).mean())  # one level already beats the zero code


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(2, 9), st.integers(1, 40), st.integers(0, 10_000))
def test_codes_in_range_and_greedy_nearest(levels, k, n, seed):
    g = torch.Generator().manual_seed(seed)
    q = ResidualQuantizer(4, levels, k, restart_after=0)
    q.codebooks.data = torch.randn(levels, k, 4, generator=g)
    q.eval()
    x = torch.randn(n, 4, generator=g)
    out = q(x)
    assert out.codes.shape == (n, levels)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < k
    # independent float64 greedy residual quantisation
    r = x.double()
    cb = q.codebooks.detach().double()
    total = torch.zeros_like(r)
    for lvl in range(levels):
        d = ((r[:, None, :] - cb[lvl][None]) ** 2).sum(-1)
        best = d.min(1).values
        chosen = d.gather(1, out.codes[:, lvl:lvl + 1]).squeeze(1)
        assert torch.allclose(chosen, best, atol=1e-5)  # the chosen code is a nearest one
        total = total + cb[lvl][out.codes[:, lvl]]
        r = r - cb[lvl][out.codes[:, lvl]]
    assert torch.allclose(out.quantized.double(), total, atol=1e-5)


def test_straight_through_gradient_reaches_encoder_input():
    q = ResidualQuantizer(3, 2, 4, restart_after=0)
    q.init_kmeans(torch.randn(50, 3), seed=0)
    x = torch.randn(5, 3, requires_grad=True)
    out = q(x)
    out.quantized.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # d(x + sg[q - x])/dx = I


def test_dead_codes_are_restarted():
    q = ResidualQuantizer(2, 1, 3, restart_after=2)
    q.initialised.fill_(True)
    q.codebooks.data[0] = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1000.0, 1000.0]])  # code 2 is never nearest
    q.train()
    x = torch.randn(64, 2) * 0.5
    q(x)
    assert q.n_restarts == 0 and int(q.idle[0, 2]) == 1
    q(x)
    assert q.n_restarts >= 1
    assert float(q.codebooks.data[0, 2].abs().max()) < 10  # moved onto the data
    assert int(q.idle[0, 2]) == 0


def test_utilisation_collision_disambiguation_by_hand():
    codes = np.array([[0, 1], [0, 1], [1, 2], [0, 1]])
    assert utilisation(codes, 4) == pytest.approx((2 / 4 + 2 / 4) / 2)
    assert collision_rate(codes) == pytest.approx(1 - 2 / 4)
    d = add_disambiguation(codes)
    assert d.tolist() == [[0, 1, 0], [0, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert collision_rate(d) == 0.0


def test_disambiguation_by_priority_by_hand():
    codes = np.array([[0, 1], [0, 1], [1, 2], [0, 1]])
    d = add_disambiguation(codes, np.array([1.0, 5.0, 0.0, 5.0]))  # item 1 and 3 tie: item order breaks it
    assert d.tolist() == [[0, 1, 2], [0, 1, 0], [1, 2, 0], [0, 1, 1]]
    assert add_disambiguation(codes, torch.zeros(4)).tolist() == add_disambiguation(codes).tolist()
    with pytest.raises(ValueError, match="one value per item"):
        add_disambiguation(codes, np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        add_disambiguation(codes, np.array([0.0, np.nan, 1.0, 2.0]))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_disambiguation_numbers_each_tuple_by_descending_priority(data):
    n = data.draw(st.integers(1, 40))
    codes = np.array(data.draw(st.lists(st.lists(st.integers(0, 2), min_size=2, max_size=2), min_size=n,
                                        max_size=n)))
    prio = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=float)
    d = add_disambiguation(codes, prio)
    assert np.array_equal(d[:, :2], codes)  # the quantised levels are kept
    assert len(np.unique(d, axis=0)) == n  # unique IDs
    for t in {tuple(r) for r in codes}:
        members = [i for i in range(n) if tuple(codes[i]) == t]
        assert sorted(d[members, 2].tolist()) == list(range(len(members)))  # 0..m-1 within the tuple
        by_rank = sorted(members, key=lambda i: d[i, 2])
        assert by_rank == sorted(members, key=lambda i: (-prio[i], i))  # highest priority first, ties by index


def test_rqvae_training_lowers_reconstruction():
    torch.manual_seed(0)
    x = _clustered(200, 8)
    m = RQVAE(8, 4, 2, 8, hidden=[16])
    m.init_codebooks(x)
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    first = float(m(x).recon_loss)
    for _ in range(60):
        opt.zero_grad()
        m(x).loss.backward()
        opt.step()
    assert float(m(x).recon_loss) < 0.5 * first
    assert m.semantic_codes(x).shape == (200, 2)
