from __future__ import annotations

import lzma

import pytest
import torch

from kgalign.data import load_dbp15k, load_openea, read_attribute_triples, read_rows

# Counts copied from data/dbp15k/PROVENANCE.txt (the shared data README), not from the loader.
COUNTS = {
    "zh_en": dict(e1=19388, e2=19572, r1=1701, r2=1323, t1=70414, t2=95142, train=4500, test=10500),
    "ja_en": dict(e1=19814, e2=19780, r1=1299, r2=1153, t1=77214, t2=93484, train=4500, test=10500),
}


@pytest.mark.parametrize("pair", ["zh_en", "ja_en"])
def test_dbp15k_counts_match_provenance(pair):
    d = load_dbp15k(pair)
    c = COUNTS[pair]
    assert (d.kg1.num_entities, d.kg2.num_entities) == (c["e1"], c["e2"])
    assert (d.kg1.num_relations, d.kg2.num_relations) == (c["r1"], c["r2"])
    assert (len(d.kg1.triples), len(d.kg2.triples)) == (c["t1"], c["t2"])
    assert (len(d.train_links), len(d.test_links)) == (c["train"], c["test"])
    # ids are contiguous and links are one-to-one
    assert int(d.kg1.triples[:, [0, 2]].max()) < c["e1"] and int(d.kg2.triples[:, [0, 2]].max()) < c["e2"]
    links = torch.cat([d.train_links, d.test_links])
    assert len(set(links[:, 0].tolist())) == len(links) == len(set(links[:, 1].tolist()))


def test_dbp15k_translated_names_joined_by_uri():
    d = load_dbp15k("zh_en")
    # Hand-checked in names/dbp_zh_en.json: LightEA id 1 -> ["kim", "dae", "jung"] and
    # names/zh_en/ent_ids_1 maps id 1 to http://zh.dbpedia.org/resource/金大中.
    i = d.kg1.uris.index("http://zh.dbpedia.org/resource/金大中")
    assert d.kg1.names[i] == "kim dae jung"
    j = d.kg2.uris.index("http://dbpedia.org/resource/Kim_Dae-jung")
    assert d.kg2.names[j] == "kim dae jung"
    # without translations, names come from the URI
    raw = load_dbp15k("zh_en", translated_names=False)
    assert raw.kg1.names[i] == "金大中"


def _write_dbp(tmp_path, triples_1="0\t0\t1\n"):
    d = tmp_path / "dbp15k" / "zh_en"
    d.mkdir(parents=True)
    (d / "ent_ids_1").write_text("0\thttp://zh/a\n1\thttp://zh/b\n")
    (d / "ent_ids_2").write_text("5\thttp://en/A\n6\thttp://en/B\n")
    (d / "rel_ids_1").write_text("0\thttp://zh/p\n")
    (d / "rel_ids_2").write_text("3\thttp://en/p\n")
    (d / "triples_1").write_text(triples_1)
    with lzma.open(d / "triples_2.xz", "wt") as fh:  # compressed copies are found too
        fh.write("6\t3\t5\n")
    (d / "sup_pairs").write_text("0\t5\n")
    (d / "ref_pairs").write_text("1\t6\n")
    return tmp_path


def test_dbp15k_small_layout_reindexes(tmp_path):
    d = load_dbp15k("zh_en", _write_dbp(tmp_path))
    assert d.kg2.uris == ["http://en/A", "http://en/B"]
    assert d.kg2.triples.tolist() == [[1, 0, 0]]
    assert d.train_links.tolist() == [[0, 0]] and d.test_links.tolist() == [[1, 1]]
    assert d.kg1.names == ["a", "b"]


def test_malformed_line_names_file_and_line(tmp_path):
    root = _write_dbp(tmp_path, "0\t0\t1\n1\t0\n")
    with pytest.raises(ValueError, match=r"triples_1:2: expected 3"):
        load_dbp15k("zh_en", root)
    (tmp_path / "x").write_text("0\ta\nzz\tb\n")
    with pytest.raises(ValueError, match=r"x:2: field 1 must be an integer"):
        list(read_rows(tmp_path / "x", 2, int_cols=(0,)))


def test_attribute_triples_both_formats(tmp_path):
    p = tmp_path / "zh_att_triples"
    p.write_text('<http://zh/a> <http://zh/p/born> "1950-01-01"^^<http://www.w3.org/2001/XMLSchema#date> .\n'
                 '<http://zh/b> <http://zh/p/label> "B"@zh .\n<http://zh/other> <http://zh/p/x> "y" .\n')
    got = read_attribute_triples(p, {"http://zh/a": 0, "http://zh/b": 1})
    assert got == [(0, "http://zh/p/born", "1950-01-01"), (1, "http://zh/p/label", "B")]
    q = tmp_path / "attr_triples_1"
    q.write_text("http://zh/a\tcode\tX 1\n")
    assert read_attribute_triples(q, {"http://zh/a": 0}) == [(0, "code", "X 1")]
    q.write_text("http://zh/a code\n")
    with pytest.raises(ValueError, match="attr_triples_1:1"):
        read_attribute_triples(q, {"http://zh/a": 0})


def test_openea_layout(tiny_openea):
    d = load_openea(tiny_openea)
    assert (len(d.train_links), len(d.valid_links), len(d.test_links)) == (4, 2, 6)
    assert d.kg1.num_entities == d.kg2.num_entities == 12
    assert len(d.kg1.triples) == len(d.kg2.triples) == 16
    assert len(d.kg1.attributes) == 12 and d.kg2.attributes == []
    # links connect the same-numbered entities
    for a, b in torch.cat([d.train_links, d.valid_links, d.test_links]).tolist():
        assert d.kg1.uris[a].split("_")[-1] == d.kg2.uris[b].split("_")[-2]
