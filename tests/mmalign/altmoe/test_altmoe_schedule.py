"""The alternating schedule: declared order, recall-driven sampling, checkpointed state."""

from __future__ import annotations

import math

import pytest
import torch

from mmalign.altmoe.schedule import AlternatingSchedule, all_directions


def test_all_directions_lists_every_ordered_pair_once():
    for m in (2, 3, 4):
        d = all_directions(m)
        assert len(d) == m * (m - 1) and len(set(d)) == len(d)
        assert set(d) == {(s, t) for s in range(m) for t in range(m) if s != t}
    assert all_directions(2) == [(0, 1), (1, 0)]


def test_round_robin_visits_directions_in_declared_order():
    dirs = [(2, 0), (0, 1), (1, 2), (1, 0)]
    s = AlternatingSchedule(dirs, "round_robin")
    seen = [s.next() for _ in range(10)]
    assert seen == (dirs * 3)[:10]
    assert s.visits.tolist() == [3, 3, 2, 2]
    assert int(s.step) == 10


def test_recall_policy_matches_softmax_of_negative_recall():
    dirs = all_directions(3)
    s = AlternatingSchedule(dirs, "recall", temperature=0.2, seed=3)
    recalls = [0.9, 0.1, 0.5, 0.5, 0.3, 0.8]
    s.observe(recalls)
    w = [math.exp(-r / 0.2) for r in recalls]
    expected = [x / sum(w) for x in w]
    torch.testing.assert_close(s.probabilities(), torch.tensor(expected, dtype=torch.float64))
    n = 6000
    for _ in range(n):
        s.next()
    freq = (s.visits.double() / n).tolist()
    for f, p in zip(freq, expected, strict=True):
        assert abs(f - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3
    assert int(s.visits.argmax()) == 1  # the weakest direction is trained most


def test_schedule_state_is_checkpointed_and_resumes_the_same_sequence():
    a = AlternatingSchedule(all_directions(2), "recall", seed=5)
    a.observe([0.2, 0.7])
    first = [a.next() for _ in range(7)]
    b = AlternatingSchedule(all_directions(2), "recall", seed=5)
    b.load_state_dict(a.state_dict())
    assert [a.next() for _ in range(20)] == [b.next() for _ in range(20)]
    c = AlternatingSchedule(all_directions(2), "recall", seed=5)
    c.observe([0.2, 0.7])
    assert [c.next() for _ in range(7)] == first


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        AlternatingSchedule([(0, 1)], "random")
    with pytest.raises(ValueError, match="differ"):
        AlternatingSchedule([(1, 1)])
    s = AlternatingSchedule([(0, 1), (1, 0)])
    with pytest.raises(ValueError, match="expected 2 recalls"):
        s.observe([0.1, 0.2, 0.3])
