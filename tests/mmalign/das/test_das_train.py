import json

import numpy as np
import pytest
import torch

from mmalign.das import retrieve, train
from mmalign.das.data import item_counts, leave_one_out, load
from mmalign.das.train import SemanticIDs


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNKIT_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_semantic_ids_roundtrip(tmp_path):
    ids = SemanticIDs.from_codes("beauty", "rqvae", np.array([[0, 1], [0, 1], [2, 3]]), 4)
    assert ids.codes.tolist() == [[0, 1, 0], [0, 1, 1], [2, 3, 0]]
    back = SemanticIDs.load(ids.save(tmp_path / "ids.json"))
    assert np.array_equal(back.codes, ids.codes)
    assert back.collision_rate == pytest.approx(1 / 3) and back.utilisation == pytest.approx(0.5)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        SemanticIDs.load(tmp_path / "bad.json")


def test_semantic_ids_popularity_disambiguation():
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1]])
    ids = SemanticIDs.from_codes("beauty", "rqvae", codes, 4, priority=np.array([0, 3, 9, 7]))
    assert ids.codes.tolist() == [[0, 1, 2], [0, 1, 1], [2, 3, 0], [0, 1, 0]]
    assert ids.collision_rate == pytest.approx(SemanticIDs.from_codes("beauty", "rqvae", codes, 4).collision_rate)


def test_build_ids_popularity_order_follows_training_counts(tmp_path):
    args = ["--data", "beauty", "--encoder", "tfidf", "--max-users", "40", "--batch-size", "64", "--no-progress",
            "--method", "rqvae", "--n-codes", "4", "--max-steps", "1"]
    by_pop = train.main([*args, "--disambiguation", "popularity", "--out-dir", str(tmp_path / "pop")])
    by_index = train.main([*args, "--out-dir", str(tmp_path / "index")])
    assert by_pop.info["disambiguation"] == "popularity" and by_index.info["disambiguation"] == "index"
    assert np.array_equal(by_pop.codes[:, :-1], by_index.codes[:, :-1])  # same tuples, re-numbered
    split = leave_one_out(load("beauty", max_users=40).sequences)
    counts = item_counts(split.train, 12101)
    for ids, ordered in ((by_pop, True), (by_index, False)):
        monotone = True  # within every shared tuple, the counts fall along the extra level
        for t in np.unique(ids.codes[:, :-1], axis=0):
            members = np.flatnonzero((ids.codes[:, :-1] == t).all(1))
            monotone &= bool(np.all(np.diff(counts[members[np.argsort(ids.codes[members, -1])]]) <= 0))
        assert monotone == ordered
    with pytest.raises(SystemExit):
        train.main([*args, "--disambiguation", "random", "--out-dir", str(tmp_path / "bad")])


@pytest.mark.parametrize("method", ["das", pytest.param("two-stage", marks=pytest.mark.slow)])
def test_train_then_retrieve_end_to_end(tmp_path, method):
    out = tmp_path / method
    common = ["--data", "beauty", "--encoder", "tfidf", "--max-users", "40", "--batch-size", "64", "--no-progress"]
    ids = train.main([*common, "--method", method, "--n-codes", "8", "--max-steps", "2", "--out-dir", str(out)])
    assert (out / "ids.json").is_file()
    assert ids.codes.shape == (12101, 4)
    assert len(np.unique(ids.codes, axis=0)) == 12101  # disambiguated
    assert 0 < ids.utilisation <= 1 and 0 <= ids.collision_rate < 1
    lines = (out / ("metrics.jsonl" if method == "das" else "stage2/metrics.jsonl")).read_text().splitlines()
    assert "val_loss" in json.loads(lines[-1])
    res = retrieve.main(["--ids", str(out / "ids.json"), "--max-users", "40", "--max-steps", "2", "--batch-size",
                         "32", "--eval-users", "10", "--beam", "10", "--d-model", "16", "--dim-ff", "16",
                         "--no-progress", "--out-dir", str(tmp_path / "ret")])
    assert res["model"] == method and res["eval_users"] == 10
    for k in ("recall@5", "recall@10", "ndcg@5", "ndcg@10"):
        assert 0.0 <= res[k] <= 1.0
    assert res["recall@10"] >= res["recall@5"]
    assert json.loads((tmp_path / "ret" / "results.json").read_text())["steps"] == 2
    # the test can score every user while validation keeps its sample
    res = retrieve.main(["--ids", str(out / "ids.json"), "--max-users", "40", "--max-steps", "1", "--batch-size",
                         "32", "--eval-users", "10", "--test-users", "none", "--beam", "10", "--d-model", "16",
                         "--dim-ff", "16", "--no-progress", "--out-dir", str(tmp_path / "ret_all")])
    assert res["eval_users"] == 40
    saved = np.load(tmp_path / "ret_all" / "test_ranks.npz")
    assert saved["users"].tolist() == list(range(40)) and saved["ranks"].shape == (40,)
    assert res["recall@10"] == pytest.approx(float((saved["ranks"] <= 10).mean()))


def test_letter_ids_load_and_disambiguate():
    ids = retrieve.load_ids("letter")
    assert ids.method == "letter" and ids.codes.shape == (12101, 5)
    assert len(np.unique(ids.codes, axis=0)) == 12101
    assert ids.collision_rate == pytest.approx(1 - 12088 / 12101)
    with pytest.raises(FileNotFoundError, match="no such file"):
        retrieve.load_ids("/nonexistent/ids.json")
