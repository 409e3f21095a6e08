r"""Labelled train / val / test pairs for the neural GED estimators, in the GraphEdX protocol of the
`"Graph Edit Distance with General Costs Using Neural Set Divergence" <https://arxiv.org/abs/2409.17687>`_ paper:
graphs filtered (``max_nodes``), deduplicated up to isomorphism, shuffled and split 60/20/20, and every pair of graphs
*within* a split labelled.

Two label sources:

- **published** unit-cost matrices of AIDS700nef / LINUX (:func:`graphalign.data.load_ged_dataset`): the protocol is
  applied to the graphs of the published *train* part (the published matrix has no test-test values), AIDS700nef
  compared with node labels (atom types, relabel cost 1) as the published values are; pairs ``i < j`` (symmetric costs);
- **label files** written by ``python -m graphalign.label --out FILE.npz`` (:func:`graphalign.label.load_labels`):
  any dataset and costs, ordered pairs (costs may be asymmetric), only pairs solved to optimality.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..costs import COST_PRESETS, UNIT, EditCosts, get_costs
from ..data import graphedx_split, load_ged_dataset
from .batch import GraphStore, PairDataset

__all__ = ["GEDPairs", "load_ged_pairs", "default_label_file", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass
class GEDPairs:
    """Graphs and labelled pairs of the three splits.

    Attributes:
        store: every graph of the three splits, featurised (``store`` index = position in ``graphs``).
        graphs: the networkx graphs.
        splits: ``{"train" | "val" | "test": PairDataset}`` (indices into ``store``).
        costs: the edit costs of the labels; node_label: ``"label"`` when the GED compares node labels, else None.
        source: where the labels came from (for run metadata).
    """

    store: GraphStore
    graphs: list
    splits: dict[str, PairDataset]
    costs: EditCosts
    node_label: str | None
    source: dict[str, Any] = field(default_factory=dict)


def _subsample(pairs: np.ndarray, target: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if limit is None or len(pairs) <= limit:
        return pairs, target
    keep = np.sort(np.random.default_rng(seed).choice(len(pairs), limit, replace=False))
    return pairs[keep], target[keep]


def default_label_file(dataset: str, costs: str | EditCosts, root: str | os.PathLike | None = None) -> Path | None:
    """The shipped label file of a dataset and cost preset, ``graphs/labels/<dataset>_<preset>_{unlabelled,labelled}.npz``
    under the data roots (:func:`aligncore.data.resolve_dataset`), or :obj:`None`."""
    from aligncore.data import resolve_dataset

    try:
        resolved = get_costs(costs)  # a preset name or a comma list: "3,1,2,1,1" finds GraphEdX's file too
    except ValueError:
        return None
    preset = next((k for k, v in COST_PRESETS.items() if v == resolved), None)
    if preset is None:
        return None
    for kind in ("unlabelled", "labelled"):
        name = f"{dataset.lower()}_{preset.lower()}_{kind}.npz"
        try:
            return resolve_dataset("graphs/labels", root, must_contain=name) / name
        except FileNotFoundError:
            continue
    return None


def load_ged_pairs(dataset: str = "aids700nef", costs: str | EditCosts = "unit", *, labels: str | os.PathLike | None = None,
                   root: str | os.PathLike | None = None, max_nodes: int | None = 20, dedupe: bool = True, seed: int = 0,
                   max_pairs: dict[str, int | None] | None = None, label_vocab: list[str] | None = None) -> GEDPairs:
    """Load the labelled pairs of one dataset and cost setting (see the module docstring).

    Args:
        dataset (str): ``"aids700nef"`` or ``"linux"`` (published unit-cost labels), or the dataset of ``labels``.
        costs (str or EditCosts): ``"unit"``, ``"graphedx"`` or a comma list; must match the labels' costs.
        labels (path, optional): a label file of :mod:`graphalign.label`; for a cost preset other than unit, the
            shipped file :func:`default_label_file` when :obj:`None`.
        root (path, optional): dataset root for the published matrices. (default: :obj:`None`)
        max_nodes, dedupe, seed: the GraphEdX protocol (published labels only; a label file fixes its own split).
        max_pairs (dict, optional): at most this many pairs per split (seeded subsample), e.g. ``{"val": 5000}``.
        label_vocab (list, optional): node-label vocabulary to featurise with (a trained model's); built from the
            graphs when :obj:`None`.
    """
    c = get_costs(costs)
    max_pairs = max_pairs or {}
    if labels is None and c != UNIT:
        labels = default_label_file(dataset, costs, root)
    if labels is None:
        if c != UNIT:
            raise ValueError(f"costs {costs!r}: published labels are unit-cost only; pass labels= (a file written by "
                             f"`python -m graphalign.label --costs ... --out FILE.npz`)")
        ds = load_ged_dataset(dataset, root)
        node_label = "label" if ds.labelled else None
        train_idx = np.flatnonzero(ds.split == "train")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # networkx's WL-hash change notice
            sp = graphedx_split([ds.graphs[k] for k in train_idx], max_nodes=max_nodes, dedupe=dedupe, seed=seed)
        order = [int(train_idx[k]) for s in SPLITS for k in getattr(sp, s)]
        graphs = [ds.graphs[k] for k in order]
        sizes = [len(getattr(sp, s)) for s in SPLITS]
        start = np.concatenate([[0], np.cumsum(sizes)])
        store = GraphStore(graphs, node_label, label_vocab=label_vocab)
        out = {}
        for k, s in enumerate(SPLITS):
            pos = np.arange(start[k], start[k + 1])
            i, j = np.triu_indices(len(pos), 1)
            pairs = np.stack([pos[i], pos[j]], 1)
            target = ds.ged[np.asarray(order)[pairs[:, 0]], np.asarray(order)[pairs[:, 1]]]
            if not np.isfinite(target).all():
                raise ValueError(f"{ds.name}: published GED missing for some {s} pairs")
            pairs, target = _subsample(pairs, target, max_pairs.get(s), seed + k)
            out[s] = PairDataset(store, pairs, target)
        src = {"labels": f"published {ds.name} unit-cost matrix", "graphs": len(graphs),
               "split_graphs": dict(zip(SPLITS, sizes, strict=True)), "max_nodes": max_nodes, "dedupe": dedupe,
               "seed": seed, "node_label": node_label}
        return GEDPairs(store, graphs, out, c, node_label, src)

    from ..label import load_labels

    path = Path(labels)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist (write one with `python -m graphalign.label ... "
                                f"--out {path}`)")
    lab = load_labels(path)
    if lab.costs != c:
        raise ValueError(f"{path} holds labels for costs {lab.costs}, not {c}")
    node_label = "label" if lab.meta.get("config", {}).get("labelled") else None
    store = GraphStore(lab.graphs, node_label, label_vocab=label_vocab)
    out = {}
    for k, s in enumerate(SPLITS):
        rows = lab.pairs(s, only_optimal=True)
        pos = np.asarray(lab.splits[s], dtype=np.int64)
        pairs = np.stack([pos[rows[:, 0].astype(int)], pos[rows[:, 1].astype(int)]], 1) if len(rows) else \
            np.zeros((0, 2), dtype=np.int64)
        pairs, target = _subsample(pairs, rows[:, 2] if len(rows) else np.zeros(0), max_pairs.get(s), seed + k)
        out[s] = PairDataset(store, pairs, target)
    src = {"labels": str(path), "graphs": len(lab.graphs), "counts": lab.meta.get("counts"),
           "node_label": node_label, "config": lab.meta.get("config")}
    return GEDPairs(store, lab.graphs, out, c, node_label, src)
