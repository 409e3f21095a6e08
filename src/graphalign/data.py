r"""GED datasets: AIDS700nef / LINUX with their published unit-cost GED matrices, TU molecule datasets (AIDS,
Mutagenicity), and the GraphEdX protocol of the
`"Graph Edit Distance with General Costs Using Neural Set Divergence" <https://arxiv.org/abs/2409.17687>`_ paper:
keep graphs of at most ``max_nodes`` nodes, drop graphs isomorphic (ignoring labels) to an earlier one, shuffle with
Python's ``random.Random(seed)``, split 60/20/20 (``int(0.6 n)``, ``int(0.2 n)``, rest), and pair every two graphs of
the same split.

Graphs are returned as :class:`networkx.Graph` with nodes ``0..n-1`` and the node label (atom type) in the ``"label"``
node attribute.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np

from aligncore.data import resolve_dataset

__all__ = ["GEDDataset", "GraphSplit", "load_ged_dataset", "load_tu_dataset", "load_dataset", "graphedx_split",
           "within_split_pairs", "dedupe_isomorphic", "graphs_to_arrays", "arrays_to_graphs", "vendor_ged_dataset",
           "GED_DATASETS", "TU_DATASETS"]

GED_DATASETS = {"aids700nef": "AIDS700nef", "linux": "LINUX"}
TU_DATASETS = {"aids": "AIDS", "mutagenicity": "Mutagenicity"}


@dataclass
class GEDDataset:
    """A GED benchmark: graphs, their published split and GED matrix.

    Attributes:
        name: ``"AIDS700nef"`` or ``"LINUX"``.
        graphs: networkx graphs (node attribute ``"label"``: atom symbol for AIDS700nef, absent for LINUX).
        graph_ids: the upstream graph ids (gexf file names).
        split: ``"train"`` / ``"test"`` per graph (the published split).
        ged: :math:`(N, N)` float64 unit-cost GED matrix in graph order; ``inf`` where upstream has no value
            (test-test pairs).
    """

    name: str
    graphs: list[nx.Graph]
    graph_ids: np.ndarray
    split: np.ndarray
    ged: np.ndarray
    labelled: bool = True


@dataclass
class GraphSplit:
    """Result of :func:`graphedx_split`: indices into the input graph list."""

    train: list[int]
    val: list[int]
    test: list[int]
    kept: list[int] = field(default_factory=list)  # after filter + dedupe, before shuffling

    def as_dict(self) -> dict[str, list[int]]:
        return {"train": self.train, "val": self.val, "test": self.test}


# ---- compact array form (what is stored in data/ and sent to worker processes) ---------------------------------------

def graphs_to_arrays(graphs: Sequence[nx.Graph], label_key: str | None = "label") -> dict[str, np.ndarray]:
    """Pack graphs with nodes ``0..n-1`` into flat arrays: ``num_nodes``, ``num_edges``, ``edges`` (E, 2), ``labels``
    (sum n,) of ints (with ``label_vocab``) when ``label_key`` is given."""
    nn = np.array([g.number_of_nodes() for g in graphs], dtype=np.int64)
    ne = np.array([g.number_of_edges() for g in graphs], dtype=np.int64)
    edges = []
    vocab: dict = {}
    labels = []
    for gi, g in enumerate(graphs):
        if sorted(g.nodes()) != list(range(g.number_of_nodes())):
            raise ValueError(f"graph {gi} must have nodes 0..n-1 to be packed")
        e = np.array(sorted((min(u, v), max(u, v)) for u, v in g.edges()), dtype=np.int64).reshape(-1, 2)
        edges.append(e)
        if label_key is not None:
            labels.extend(vocab.setdefault(g.nodes[u][label_key], len(vocab)) for u in range(g.number_of_nodes()))
    out = {"num_nodes": nn, "num_edges": ne,
           "edges": np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)}
    if label_key is not None:
        out["labels"] = np.array(labels, dtype=np.int64)
        out["label_vocab"] = np.array([str(k) for k in vocab], dtype=object).astype(str)
    return out


def arrays_to_graphs(arr: dict[str, np.ndarray], label_key: str = "label") -> list[nx.Graph]:
    """Inverse of :func:`graphs_to_arrays` (labels restored as the vocabulary strings)."""
    nn, ne, edges = arr["num_nodes"], arr["num_edges"], arr["edges"]
    labels = arr.get("labels")
    vocab = arr.get("label_vocab")
    out = []
    no = eo = 0
    for n, m in zip(nn.tolist(), ne.tolist(), strict=True):
        g = nx.Graph()
        if labels is not None:
            g.add_nodes_from((i, {label_key: str(vocab[labels[no + i]])}) for i in range(n))
        else:
            g.add_nodes_from(range(n))
        g.add_edges_from(map(tuple, edges[eo:eo + m].tolist()))
        out.append(g)
        no += n
        eo += m
    return out


# ---- AIDS700nef / LINUX -----------------------------------------------------------------------------------------

def _canonical_name(name: str, table: dict[str, str]) -> str:
    key = name.lower()
    if key not in table:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(table.values())}")
    return table[key]


def _read_raw_ged_dataset(folder: Path, name: str) -> tuple[list[nx.Graph], np.ndarray, np.ndarray, np.ndarray]:
    """Parse the torch_geometric GEDDataset layout (``index.tsv``, ``raw/<name>/{train,test}/*.gexf``,
    ``processed/<name>_ged.pt``)."""
    import torch

    rows = [ln.rstrip("\n").split("\t") for ln in (folder / "index.tsv").read_text().splitlines()[1:] if ln.strip()]
    graphs, ids, split = [], [], []
    for k, (mi, sp, gid, n, m) in enumerate(rows):
        if int(mi) != k:
            raise ValueError(f"{folder / 'index.tsv'} line {k + 2}: matrix_index {mi} out of order")
        raw = nx.read_gexf(folder / "raw" / name / sp / f"{gid}.gexf")
        order = sorted(raw.nodes(), key=int)
        idx = {u: i for i, u in enumerate(order)}
        g = nx.Graph()
        for u in order:
            attrs = {"label": raw.nodes[u]["type"]} if "type" in raw.nodes[u] else {}
            g.add_node(idx[u], **attrs)
        g.add_edges_from((idx[u], idx[v]) for u, v in raw.edges())
        if g.number_of_nodes() != int(n) or g.number_of_edges() != int(m):
            raise ValueError(f"{folder}: graph {gid} has {g.number_of_nodes()}/{g.number_of_edges()} nodes/edges, "
                             f"index.tsv says {n}/{m}")
        graphs.append(g)
        ids.append(int(gid))
        split.append(sp)
    ged = torch.load(folder / "processed" / f"{name}_ged.pt", weights_only=False)
    ged = np.asarray(ged, dtype=np.float64)
    return graphs, np.array(ids), np.array(split), ged


def vendor_ged_dataset(src: str | os.PathLike, name: str, out: str | os.PathLike) -> Path:
    """Write the compact ``<name>.npz`` that :func:`load_ged_dataset` reads: graphs as arrays + the GED matrix as
    uint8 (255 = no value). ``src`` is a GEDDataset folder such as ``../shared/data/graphs/AIDS700nef``."""
    name = _canonical_name(name, GED_DATASETS)
    graphs, ids, split, ged = _read_raw_ged_dataset(Path(src), name)
    labelled = all("label" in g.nodes[u] for g in graphs for u in g)
    arr = graphs_to_arrays(graphs, "label" if labelled else None)
    fin = np.isfinite(ged)
    if np.any(ged[fin] != np.round(ged[fin])) or ged[fin].max() >= 255:
        raise ValueError("GED values must be integers < 255 to be stored as uint8")
    g8 = np.where(fin, ged, 255).astype(np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, graph_ids=ids, split=split.astype(str), ged_uint8=g8, **arr)
    return out


def load_ged_dataset(name: str, root: str | os.PathLike | None = None) -> GEDDataset:
    """Load AIDS700nef or LINUX with the published unit-cost GED matrix.

    Reads ``graphs/<name>.npz`` (the compact copy in the project's ``data/``, see :func:`vendor_ged_dataset`), found
    through ``root``, then ``$ALIGNKIT_DATA``, then the project's ``data/``; ``root`` may also be an original
    torch_geometric GEDDataset folder (with ``index.tsv``), e.g. ``../shared/data/graphs/AIDS700nef``.

    Args:
        name (str): ``"AIDS700nef"`` or ``"LINUX"`` (case-insensitive).
        root (str, optional): where to look. (default: :obj:`None`)
    """
    name = _canonical_name(name, GED_DATASETS)
    if root is not None and (Path(root) / "index.tsv").exists():
        graphs, ids, split, ged = _read_raw_ged_dataset(Path(root), name)
        labelled = all("label" in g.nodes[u] for g in graphs for u in g)
        return GEDDataset(name, graphs, ids, split, ged, labelled)
    folder = resolve_dataset("graphs", root, must_contain=f"{name}.npz")
    with np.load(folder / f"{name}.npz", allow_pickle=False) as z:
        arr = {k: z[k] for k in z.files}
    labelled = "labels" in arr
    graphs = arrays_to_graphs(arr)
    ged = arr["ged_uint8"].astype(np.float64)
    ged[arr["ged_uint8"] == 255] = np.inf
    return GEDDataset(name, graphs, arr["graph_ids"], arr["split"], ged, labelled)


# ---- TU datasets -------------------------------------------------------------------------------------------------

def load_tu_dataset(name: str, root: str | os.PathLike | None = None, *, max_nodes: int | None = None) -> list[nx.Graph]:
    """Load a TU molecule dataset (``"AIDS"`` or ``"Mutagenicity"``) from the TU text format.

    Looks for ``graphs/TUDataset/<name>/raw/<name>_A.txt`` (or ``<root>/raw/<name>_A.txt``). Node labels (atom
    types) go to the ``"label"`` attribute as the atom symbol when the ``*_label_readme.txt`` map is present, else
    the integer. Graphs with more than ``max_nodes`` nodes are dropped (order kept).
    """
    name = _canonical_name(name, TU_DATASETS)
    folder = resolve_dataset(f"graphs/TUDataset/{name}", root, must_contain=f"raw/{name}_A.txt") / "raw"
    gi = np.loadtxt(folder / f"{name}_graph_indicator.txt", dtype=np.int64)
    a = np.loadtxt(folder / f"{name}_A.txt", delimiter=",", dtype=np.int64).reshape(-1, 2)
    nl = np.loadtxt(folder / f"{name}_node_labels.txt", dtype=np.int64)
    symbols = _tu_label_map(folder / f"{name}_label_readme.txt")
    ng = int(gi.max())
    counts = np.bincount(gi, minlength=ng + 1)[1:]
    first = np.concatenate([[0], np.cumsum(counts)])  # 0-based first node of each graph
    g_of_edge = gi[a[:, 0] - 1]
    if np.any(g_of_edge != gi[a[:, 1] - 1]):
        raise ValueError(f"{folder / f'{name}_A.txt'}: an edge joins two graphs")
    order = np.argsort(g_of_edge, kind="stable")
    a, g_of_edge = a[order], g_of_edge[order]
    estart = np.searchsorted(g_of_edge, np.arange(1, ng + 2))
    out = []
    for k in range(ng):
        n = int(counts[k])
        if max_nodes is not None and n > max_nodes:
            continue
        g = nx.Graph()
        base = first[k]
        for i in range(n):
            lab = int(nl[base + i])
            g.add_node(i, label=symbols.get(lab, lab) if symbols else lab)
        e = a[estart[k]:estart[k + 1]] - 1 - base
        g.add_edges_from((int(u), int(v)) for u, v in e if u != v)
        out.append(g)
    return out


def _tu_label_map(path: Path) -> dict[int, str]:
    if not path.exists():
        return {}
    out: dict[int, str] = {}
    section = None
    for ln in path.read_text().splitlines():
        s = ln.strip()
        if s.lower().startswith("node labels were converted"):
            section = "node"
            continue
        if s.lower().startswith("edge labels"):
            section = None if section == "node" else section
            continue
        if section == "node":
            parts = s.split()
            if len(parts) == 2 and parts[0].isdigit():
                out[int(parts[0])] = parts[1]
    return out


def load_dataset(name: str, root: str | os.PathLike | None = None) -> list[nx.Graph]:
    """Graphs of any supported dataset by name: ``aids700nef``, ``linux`` (all graphs, matrix order), ``aids``,
    ``mutagenicity`` (TU)."""
    key = name.lower()
    if key in GED_DATASETS:
        return load_ged_dataset(key, root).graphs
    if key in TU_DATASETS:
        return load_tu_dataset(key, root)
    raise ValueError(f"unknown dataset {name!r}; choose one of {sorted([*GED_DATASETS, *TU_DATASETS])}")


# ---- GraphEdX protocol -------------------------------------------------------------------------------------------

def dedupe_isomorphic(graphs: Sequence[nx.Graph], *, node_label: str | None = None) -> list[int]:
    """Indices of the graphs kept when each graph isomorphic to an earlier kept one is dropped (first one wins).

    Isomorphism ignores labels unless ``node_label`` is given (GraphEdX dedupes without node labels). Candidates are
    bucketed by Weisfeiler-Lehman hash, then confirmed with :func:`networkx.is_isomorphic`.
    """
    nm = None if node_label is None else (lambda a, b: a.get(node_label) == b.get(node_label))
    buckets: dict[tuple, list[int]] = {}
    kept = []
    for i, g in enumerate(graphs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # networkx >= 3.5 notice about changed hashes
            wl = nx.weisfeiler_lehman_graph_hash(g, node_attr=node_label, iterations=3)
        key = (g.number_of_nodes(), g.number_of_edges(), wl)
        same = buckets.setdefault(key, [])
        if any(nx.is_isomorphic(graphs[j], g, node_match=nm) for j in same):
            continue
        same.append(i)
        kept.append(i)
    return kept


def graphedx_split(graphs: Sequence[nx.Graph], *, max_nodes: int | None = 20, dedupe: bool = True, seed: int = 0,
                   frac: tuple[float, float] = (0.6, 0.2)) -> GraphSplit:
    """Filter, dedupe and split graphs as GraphEdX does (their ``get_unique_graphs_wo_attr`` notebook).

    Args:
        graphs: the dataset in its stored order.
        max_nodes: drop graphs with more nodes. (default: :obj:`20`)
        dedupe: drop graphs isomorphic (ignoring labels) to an earlier kept graph. (default: :obj:`True`)
        seed: ``random.Random(seed).shuffle`` of the kept graphs (equal to ``random.seed(0); random.shuffle``).
            (default: :obj:`0`)
        frac: train and val fractions; sizes are ``int(0.6 n)``, ``int(0.2 n)`` and the rest. (default: (0.6, 0.2))
    """
    idx = [i for i, g in enumerate(graphs) if max_nodes is None or g.number_of_nodes() <= max_nodes]
    if dedupe:
        sub = dedupe_isomorphic([graphs[i] for i in idx])
        idx = [idx[k] for k in sub]
    kept = list(idx)
    random.Random(seed).shuffle(idx)
    n_tr, n_va = int(frac[0] * len(idx)), int(frac[1] * len(idx))
    return GraphSplit(train=idx[:n_tr], val=idx[n_tr:n_tr + n_va], test=idx[n_tr + n_va:], kept=kept)


def within_split_pairs(n: int, *, ordered: bool = True, include_self: bool = False) -> np.ndarray:
    """All pairs ``(i, j)`` of positions ``0..n-1`` in one split: ordered (both directions, for asymmetric costs) or
    ``i < j``; :math:`(P, 2)` int64."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = (i != j) if ordered else (i < j)
    if include_self:
        keep |= i == j
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)
