import warnings

import networkx as nx
import numpy as np
import pytest

from graphalign import UNIT, exact_ged
from graphalign.data import (
    arrays_to_graphs,
    dedupe_isomorphic,
    graphedx_split,
    graphs_to_arrays,
    load_ged_dataset,
    load_tu_dataset,
    within_split_pairs,
)

warnings.filterwarnings("ignore", message="The hashes produced", category=UserWarning)


def sample_40(ds, seed):
    """A fixed sample: 30 train graphs and 10 test graphs (test-test pairs have no published value)."""
    rng = np.random.default_rng(seed)
    tr = np.flatnonzero(ds.split == "train")
    te = np.flatnonzero(ds.split == "test")
    return np.concatenate([rng.choice(tr, 30, replace=False), rng.choice(te, 10, replace=False)])


@pytest.mark.parametrize("name,label", [("AIDS700nef", "label"), ("LINUX", None)])
def test_agrees_with_published_matrix_on_40_graphs(name, label):
    ds = load_ged_dataset(name)  # the project's vendored copy (data/graphs/<name>.npz)
    assert len(ds.graphs) == (700 if name == "AIDS700nef" else 1000)
    idx = sample_40(ds, seed=0)
    checked = 0
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            i, j = idx[a], idx[b]
            pub = ds.ged[i, j]
            if not np.isfinite(pub):
                continue
            r = exact_ged(ds.graphs[i], ds.graphs[j], UNIT, node_label=label)
            assert r.optimal
            assert r.value == pub, (name, ds.graph_ids[i], ds.graph_ids[j], r.value, pub)
            checked += 1
    assert checked == 40 * 39 // 2 - 45


def test_vendored_dataset_shapes():
    ds = load_ged_dataset("aids700nef")
    assert ds.ged.shape == (700, 700)
    tr = ds.split == "train"
    assert np.isfinite(ds.ged[np.ix_(tr, tr)]).all() and np.isinf(ds.ged[np.ix_(~tr, ~tr)]).all()
    assert np.array_equal(ds.ged[np.ix_(tr, tr)], ds.ged[np.ix_(tr, tr)].T)
    assert sum(g.number_of_nodes() for g in ds.graphs) == 6230  # PROVENANCE totals
    assert sum(g.number_of_edges() for g in ds.graphs) == 6163
    with pytest.raises(ValueError, match="unknown dataset"):
        load_ged_dataset("imdb")


def test_missing_root_names_the_places_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="looked in"):
        load_ged_dataset("linux", root=tmp_path)


def test_pack_roundtrip():
    gs = [nx.path_graph(3), nx.complete_graph(4), nx.empty_graph(2)]
    for g in gs:
        for u in g:
            g.nodes[u]["label"] = "C" if u % 2 else "N"
    back = arrays_to_graphs(graphs_to_arrays(gs))
    for g, h in zip(gs, back, strict=True):
        assert nx.utils.graphs_equal(g, h)


def test_dedupe_keeps_first_of_each_isomorphism_class():
    gs = [nx.path_graph(4), nx.star_graph(3), nx.relabel_nodes(nx.path_graph(4), {0: 3, 3: 0}), nx.cycle_graph(4),
          nx.star_graph(3), nx.path_graph(3)]
    assert dedupe_isomorphic(gs) == [0, 1, 3, 5]
    for k, g in enumerate(gs):
        for u in g:
            g.nodes[u]["label"] = int(k == 2)  # graph 2 differs from graph 0 by its labels only
    assert dedupe_isomorphic(gs, node_label="label") == [0, 1, 2, 3, 5]


def test_graphedx_split_protocol():
    import random

    gs = [nx.path_graph(n) for n in range(1, 26)] + [nx.path_graph(3)]  # one duplicate, sizes 1..25
    sp = graphedx_split(gs, max_nodes=20, seed=0)
    kept = list(range(20))  # path graphs with <= 20 nodes, the later duplicate dropped
    assert sp.kept == kept
    expect = list(kept)
    random.seed(0)
    random.shuffle(expect)  # what GraphEdX's notebook does
    assert sp.train == expect[:12] and sp.val == expect[12:16] and sp.test == expect[16:]


def test_within_split_pairs():
    p = within_split_pairs(4)
    assert len(p) == 12 and not np.any(p[:, 0] == p[:, 1])
    assert len({tuple(x) for x in p.tolist()}) == 12
    assert len(within_split_pairs(4, ordered=False)) == 6


def test_tu_reader_on_a_tiny_file(tmp_path):
    raw = tmp_path / "Mutagenicity" / "raw"
    raw.mkdir(parents=True)
    # graph 1: nodes 1-3 path; graph 2: nodes 4-5 edge (both directions listed, as TU does)
    (raw / "Mutagenicity_A.txt").write_text("1, 2\n2, 1\n2, 3\n3, 2\n4, 5\n5, 4\n")
    (raw / "Mutagenicity_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n")
    (raw / "Mutagenicity_node_labels.txt").write_text("0\n1\n0\n4\n4\n")
    (raw / "Mutagenicity_label_readme.txt").write_text(
        "Node labels were converted to integer values using this map:\n\nComponent 0:\n\t0\tC\n\t1\tO\n\t4\tN\n\n"
        "Edge labels were converted to integer values using this map:\n\nComponent 0:\n\t0\t1\n")
    gs = load_tu_dataset("mutagenicity", root=tmp_path / "Mutagenicity")
    assert [sorted(g.edges()) for g in gs] == [[(0, 1), (1, 2)], [(0, 1)]]
    assert [gs[0].nodes[u]["label"] for u in gs[0]] == ["C", "O", "C"]
    assert len(load_tu_dataset("mutagenicity", root=tmp_path / "Mutagenicity", max_nodes=2)) == 1


def test_vendor_roundtrip_from_gedataset_layout(tmp_path):
    import torch

    from graphalign.data import vendor_ged_dataset

    src = tmp_path / "AIDS700nef"
    graphs = {"train": {4: nx.path_graph(3), 9: nx.cycle_graph(4)}, "test": {2: nx.star_graph(2)}}
    rows = ["matrix_index\tsplit\tgraph_id\tnum_nodes\tnum_edges"]
    k = 0
    for split, gs in graphs.items():
        (src / "raw" / "AIDS700nef" / split).mkdir(parents=True)
        for gid in sorted(gs):
            g = gs[gid]
            nx.set_node_attributes(g, {u: ("C" if u else "O") for u in g}, "type")
            nx.write_gexf(g, src / "raw" / "AIDS700nef" / split / f"{gid}.gexf")
            rows.append(f"{k}\t{split}\t{gid}\t{g.number_of_nodes()}\t{g.number_of_edges()}")
            k += 1
    (src / "index.tsv").write_text("\n".join(rows) + "\n")
    (src / "processed").mkdir()
    ged = torch.tensor([[0, 3, 2], [3, 0, 4], [2, 4, float("inf")]])
    torch.save(ged, src / "processed" / "AIDS700nef_ged.pt")
    direct = load_ged_dataset("aids700nef", root=src)
    out = vendor_ged_dataset(src, "AIDS700nef", tmp_path / "vend" / "graphs" / "AIDS700nef.npz")
    packed = load_ged_dataset("aids700nef", root=out.parent.parent)
    for ds in (direct, packed):
        assert list(ds.graph_ids) == [4, 9, 2] and list(ds.split) == ["train", "train", "test"]
        assert np.array_equal(ds.ged, ged.numpy().astype(np.float64))
        assert [g.number_of_edges() for g in ds.graphs] == [2, 4, 2]
        assert ds.graphs[0].nodes[0]["label"] == "O" and ds.graphs[0].nodes[1]["label"] == "C"
