from collections import Counter

import numpy as np
import pytest

from mmalign.das.data import (
    interactions,
    item_counts,
    leave_one_out,
    letter_semantic_ids,
    load_beauty,
    load_movielens,
)
from mmalign.das.retriever import NextItemDataset
from mmalign.das.rqvae import collision_rate


@pytest.fixture(scope="module")
def beauty():
    return load_beauty()


def test_beauty_counts_match_provenance(beauty):
    # data/README: 22,363 users, 12,101 items, 198,502 interactions
    assert beauty.n_users == 22363
    assert beauty.n_items == 12101
    assert sum(len(s) for s in beauty.sequences) == 198502
    assert min(len(s) for s in beauty.sequences) >= 5  # 5-core
    assert beauty.sequences[0] == [0, 1, 2, 3, 4]  # Beauty.txt line 1: "1 1 2 3 4 5", ids shifted by one


def test_letter_ids_match_provenance():
    ids = letter_semantic_ids()
    assert ids.shape == (12101, 4)
    assert ids.min() >= 0 and ids.max() < 256
    assert ids[0].tolist() == [183, 70, 232, 6]  # "<a_183>", "<b_70>", "<c_232>", "<d_6>"
    assert collision_rate(ids) == pytest.approx(1 - 12088 / 12101)  # 12,088 distinct tuples


def test_movielens_sequences_are_chronological():
    ml = load_movielens()
    assert ml.n_users == 610 and ml.n_items == 9724
    assert sum(len(s) for s in ml.sequences) == 100836
    assert "Toy Story (1995)" in ml.item_texts[0]


def test_leave_one_out_leaks_nothing(beauty):
    seqs = beauty.sequences[:500]
    sp = leave_one_out(seqs)
    for u, s in enumerate(seqs):
        assert sp.train[u] + [int(sp.val[u]), int(sp.test[u])] == s
    ds = NextItemDataset(sp.train, max_history=5)
    # training targets are exactly the training items after the first, never a validation or test position
    want = Counter(i for s in sp.train for i in s[1:])
    assert Counter(ds.target.tolist()) == want
    hist_items = set(ds.history[ds.history >= 0].tolist())
    assert hist_items <= {i for s in sp.train for i in s}
    u, i, j = interactions(sp.train)
    assert len(u) == sum(len(s) for s in sp.train)
    assert Counter(i.tolist()) == Counter(x for s in sp.train for x in s)


def test_leave_one_out_rejects_short_sequences():
    with pytest.raises(ValueError, match="user 1 has 2 interactions"):
        leave_one_out([[1, 2, 3], [4, 5]])


def test_interactions_co_items_by_hand():
    u, i, j = interactions([[5, 6, 7], [8]])
    assert u.tolist() == [0, 0, 0, 1]
    assert i.tolist() == [5, 6, 7, 8]
    assert j.tolist() == [6, 7, 6, 8]
    assert np.all(u >= 0)


def test_item_counts_count_training_interactions_only(beauty):
    split = leave_one_out(beauty.sequences)
    counts = item_counts(split.train, beauty.n_items)
    expected = Counter(i for s in split.train for i in s)
    assert counts.shape == (beauty.n_items,) and counts.dtype == np.int64
    assert counts.sum() == sum(len(s) - 2 for s in beauty.sequences)  # held-out items are not counted
    assert all(counts[i] == c for i, c in expected.items())
    assert item_counts([[0, 2, 2]], 4).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        item_counts([[0, 3]], 3)
