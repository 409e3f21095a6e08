"""Pair sets: bundled MovieLens, a DBP15K-format folder, folders of .npy files, splits."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest
import torch

from aligncore.data import project_data_dir
from mmalign.altmoe.data import (
    PairSet,
    dbp15k_pairs,
    dbp15k_pooled_pairs,
    folder_pairs,
    load_pairs,
    movielens_items,
    movielens_pairs,
    split_indices,
    synthetic_pairs,
)


def test_split_is_a_seeded_partition():
    tr, va, te = split_indices(101, 0.1, 0.2, seed=4)
    allidx = torch.cat([tr, va, te])
    assert sorted(allidx.tolist()) == list(range(101))
    assert (va.numel(), te.numel()) == (10, 20)
    assert torch.equal(split_indices(101, 0.1, 0.2, seed=4)[1], va)


def test_movielens_items_from_the_bundled_copy():
    items = movielens_items(project_data_dir() / "recsys" / "ml-latest-small")
    with gzip.open(project_data_dir() / "recsys" / "ml-latest-small" / "ratings.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    rated = sorted({int(r["movieId"]) for r in rows})
    assert items["movie_ids"] == rated and len(rated) == 9724
    assert len(items["ratings"]) == len(rows) == 100836
    toy = items["texts"][rated.index(1)]
    assert toy.startswith("Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy.")
    assert "pixar" in toy
    # the 0-based matrix indices point back at the right rating
    r0 = rows[0]
    assert items["movie_ids"][items["items"][0]] == int(r0["movieId"])
    assert items["ratings"][0] == float(r0["rating"])


def test_movielens_pairs_rows_are_aligned():
    pairs = movielens_pairs(mf_dim=16)
    assert pairs.names == ["text", "behaviour"]
    assert pairs.dims == {"text": 128, "behaviour": 16}
    assert len(pairs) == 9724 and pairs.ids[0] == "1"
    assert pairs.train.numel() + pairs.val.numel() + pairs.test.numel() == 9724
    z = np.load(project_data_dir() / "altmoe" / "movielens_smollm2_pca128.npz")
    row = list(z["movie_ids"]).index(int(pairs.ids[5]))
    np.testing.assert_array_equal(pairs.modalities["text"][5].numpy(), z["emb"][row].astype(np.float32))
    std = pairs.standardised()
    tr = std.modalities["behaviour"][std.train]
    np.testing.assert_allclose(tr.mean(0).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(tr.std(0).numpy(), 1, atol=1e-3)


def _fake_dbp15k(root, pair="zh_en", first_name=0):
    base = root / "dbp15k" / pair
    base.mkdir(parents=True)
    n1, n2 = 12, 12
    (base / "ent_ids_1").write_text("".join(f"{i}\thttp://{pair[:2]}.dbpedia.org/resource/E{i}\n" for i in range(n1)))
    (base / "ent_ids_2").write_text("".join(f"{100 + i}\thttp://dbpedia.org/resource/Name_{first_name + i}_%C3%A9\n"
                                            for i in range(n2)))
    trip = [(i, i % 3, (i + 1) % n1) for i in range(n1)] + [(i, 3, (i + 5) % n1) for i in range(0, n1, 2)]
    (base / "triples_1").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in trip))
    (base / "sup_pairs").write_text("".join(f"{i}\t{100 + i}\n" for i in range(5)))
    (base / "ref_pairs").write_text("".join(f"{i}\t{100 + i}\n" for i in range(5, n1)))


def test_dbp15k_pairs_joins_structure_of_kg1_with_names_of_kg2(tmp_path):
    _fake_dbp15k(tmp_path)
    seen = []

    def enc(names):
        seen.extend(names)
        return torch.tensor([[float(len(s)), float(s.split()[1])] for s in names])

    pairs = dbp15k_pairs("zh_en", tmp_path, name_store=tmp_path / "store", struct_dim=3, rel_dim=2, val=0.2,
                         transe_dim=0, name_encoder=enc, progress=False)
    assert pairs.names == ["structure", "names"] and pairs.dims == {"structure": 5, "names": 2}
    assert len(pairs) == 12
    assert pairs.test.tolist() == list(range(5, 12))
    assert sorted(pairs.train.tolist() + pairs.val.tolist()) == list(range(5)) and pairs.val.numel() == 1
    assert "Name 0 é" in seen  # URI names are decoded and de-underscored
    assert pairs.modalities["names"][:, 1].tolist() == [float(i) for i in range(12)]  # row i <-> link i
    assert pairs.ids[3] == "http://zh.dbpedia.org/resource/E3|http://dbpedia.org/resource/Name_3_%C3%A9"


def test_dbp15k_pooled_pairs_keeps_each_english_entity_once(tmp_path):
    _fake_dbp15k(tmp_path)
    _fake_dbp15k(tmp_path, "ja_en", first_name=8)  # Name_8 .. Name_11 are linked in both pairs

    def enc(names):
        return torch.tensor([[float(s.split()[1]), 0.0] for s in names])

    kw = dict(name_store=tmp_path / "stores", struct_dim=3, rel_dim=2, val=0.2, transe_dim=0, name_encoder=enc,
              progress=False)
    pooled = dbp15k_pooled_pairs(("zh_en", "ja_en"), tmp_path, **kw)
    assert pooled.name == "dbp15k-zh+ja-en"
    assert len(pooled) == 12 + 8 and pooled.dims == {"structure": 5, "names": 2}
    english = [i.split("|")[1] for i in pooled.ids]
    assert len(set(english)) == len(english)  # no duplicate gallery rows
    assert pooled.modalities["names"][:, 0].tolist() == [float(i) for i in range(20)]  # zh rows, then new ja rows
    assert pooled.ids[12].startswith("ja_en:http://ja.dbpedia.org/resource/E4|")
    zh = dbp15k_pairs("zh_en", tmp_path, **{**kw, "name_store": tmp_path / "stores" / "zh_en"})
    assert torch.equal(pooled.modalities["structure"][:12], zh.modalities["structure"])
    # ja links 0-4 are seeds (train/val), 5-11 reference links (test); links 4..11 point at Name_12..19 -> kept
    assert pooled.test.tolist() == list(range(5, 12)) + list(range(13, 20))
    assert sorted(pooled.train.tolist() + pooled.val.tolist()) == list(range(5)) + [12]
    assert pooled.info["pooled"]["ja_en"]["rows"] == 8
    with pytest.raises(ValueError, match="at least two"):
        dbp15k_pooled_pairs(("zh_en",), tmp_path, **kw)


def test_folder_pairs_and_load_pairs(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((20, 3)))
    np.save(tmp_path / "b.npy", rng.standard_normal((20, 5)))
    (tmp_path / "split.json").write_text(json.dumps({"train": list(range(14)), "val": [14, 15],
                                                     "test": [16, 17, 18, 19]}))
    p = load_pairs(str(tmp_path))
    assert p.names == ["a", "b"] and p.dims == {"a": 3, "b": 5}
    assert p.test.tolist() == [16, 17, 18, 19]
    np.save(tmp_path / "c.npy", rng.standard_normal((19, 5)))
    with pytest.raises(ValueError, match="different row counts"):
        folder_pairs(tmp_path)
    with pytest.raises(ValueError, match="expected movielens"):
        load_pairs("nonsense")


def test_pairset_validation():
    s = synthetic_pairs(50)
    with pytest.raises(ValueError, match="overlap"):
        PairSet("x", s.modalities, s.ids, s.train, s.train[:3], s.test)
    with pytest.raises(ValueError, match="two modalities"):
        PairSet("x", {"m0": s.modalities["m0"]}, s.ids, s.train, s.val, s.test)
    bad = dict(s.modalities, m1=s.modalities["m1"][:10])
    with pytest.raises(ValueError, match="shape"):
        PairSet("x", bad, s.ids, s.train, s.val, s.test)


def test_export_pca_keeps_the_principal_subspace(tmp_path):
    from mmalign.altmoe.data import export_pca
    from mmalign.altmoe.store import StoreWriter

    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 8)) + 0.01 * rng.standard_normal((50, 8))
    w = StoreWriter(tmp_path / "s", 50, 8, ids=[str(10 + i) for i in range(50)])
    w.write(x)
    out = export_pca(w.close(), tmp_path / "p.npz", dim=3)
    z = np.load(out)
    assert z["emb"].dtype == np.float16 and z["emb"].shape == (50, 3)
    assert z["movie_ids"].tolist() == list(range(10, 60))
    assert float(z["explained_variance_ratio"]) > 0.99
    xc = x - x.mean(0)
    # independent check: the Gram matrix of the projection equals that of the centred data (rank 3 + noise)
    np.testing.assert_allclose(z["emb"].astype(np.float64) @ z["emb"].T.astype(np.float64), xc @ xc.T,
                               atol=0.05 * np.abs(xc @ xc.T).max())


def test_dbp15k_structure_joins_transe_trained_once_and_cached(tmp_path, monkeypatch):
    _fake_dbp15k(tmp_path)
    monkeypatch.setenv("ALIGNKIT_CACHE", str(tmp_path / "cache"))

    def enc(names):
        return torch.tensor([[float(len(s))] for s in names])

    kw = dict(name_store=tmp_path / "store", struct_dim=3, rel_dim=2, transe_dim=4, transe_epochs=3,
              name_encoder=enc, progress=False)
    first = dbp15k_pairs("zh_en", tmp_path, **kw)
    assert first.dims["structure"] == 3 + 2 + 4
    cached = list((tmp_path / "cache" / "altmoe").glob("transe-*-d4-e3-s0.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.zeros((12, 4), dtype=np.float32))  # a second call reads the cache, not a retrain
    again = dbp15k_pairs("zh_en", tmp_path, **kw)
    assert torch.equal(again.modalities["structure"][:, :5], first.modalities["structure"][:, :5])
    assert not again.modalities["structure"][:, 5:].any()


def test_dbp15k_pairs_with_name_tokens_pools_them_and_caches(tmp_path):
    """tokens=True: the names' per-token states are kept (float16, cached beside the store) and the names rows
    are their means; a second build reads the cache without the encoder."""
    _fake_dbp15k(tmp_path)

    class WordEncoder:  # one token per word: (number of letters, the word's number or -1)
        calls = 0

        def tokens(self, texts, *, batch_size=32, progress=False):
            WordEncoder.calls += 1
            words = [t.split() for t in texts]
            t = max(len(w) for w in words)
            states = torch.zeros(len(texts), t, 2, dtype=torch.float16)
            for i, ws in enumerate(words):
                for j, w in enumerate(ws):
                    states[i, j] = torch.tensor([len(w), float(w) if w.isdigit() else -1.0])
            return states, torch.tensor([len(w) for w in words])

    kw = dict(name_store=tmp_path / "store", struct_dim=3, rel_dim=2, val=0.2, transe_dim=0, progress=False,
              tokens=True)
    pairs = dbp15k_pairs("zh_en", tmp_path, name_encoder=WordEncoder(), **kw)
    ts = pairs.tokens["names"]
    assert ts.lengths.tolist() == [3] * 12  # "Name <i> é"
    torch.testing.assert_close(ts.pooled(), pairs.modalities["names"])
    assert pairs.modalities["names"][:, 1].tolist() == pytest.approx([(i - 2) / 3 for i in range(12)])
    again = dbp15k_pairs("zh_en", tmp_path, name_encoder=lambda: 1 / 0, **kw)
    assert WordEncoder.calls == 1 and torch.equal(again.tokens["names"].values, ts.values)
    assert (tmp_path / "store-tokens" / "values.npy").exists()


def test_dbp15k_pairs_with_structure_tokens_keeps_the_entity_beside_its_neighbours(tmp_path):
    """structure_tokens=K: one [entity | neighbour] token per KG1 neighbour; the structure rows are their mean,
    whose first half is the plain structure row."""
    _fake_dbp15k(tmp_path)

    def enc(names):
        return torch.tensor([[float(len(s))] for s in names])

    kw = dict(name_store=tmp_path / "store", struct_dim=3, rel_dim=2, transe_dim=0, name_encoder=enc,
              progress=False)
    plain = dbp15k_pairs("zh_en", tmp_path, **kw)
    tok = dbp15k_pairs("zh_en", tmp_path, structure_tokens=2, **kw)
    assert tok.dims["structure"] == 2 * plain.dims["structure"] and "structure" in tok.tokens
    assert int(tok.tokens["structure"].lengths.max()) <= 2
    torch.testing.assert_close(tok.modalities["structure"][:, :5], plain.modalities["structure"], atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(tok.tokens["structure"].pooled(), tok.modalities["structure"])
    assert torch.equal(tok.modalities["names"], plain.modalities["names"])
