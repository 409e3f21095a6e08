"""Padded dense tensors for batches of graph pairs: what every neural GED model of :mod:`graphalign.models` reads.

A :class:`GraphStore` holds a list of graphs once, padded to a common size (node features, adjacency, sizes,
label ids); a :class:`PairDataset` holds index pairs into it with their GED targets; its :meth:`PairDataset.collate`
cuts a batch out of the store by tensor indexing (no Python loop over graphs), trimmed to the largest graph
of the batch. A :class:`PairBatch` is what the models' ``forward`` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..exact import as_graph_arrays

__all__ = ["PairBatch", "GraphStore", "PairDataset", "encode_pairs"]


@dataclass
class PairBatch:
    """A batch of graph pairs :math:`(G_1, G_2)`, each side padded to :math:`N` nodes.

    Attributes:
        x1, x2: node features :math:`(B, N, F)` (one-hot labels, or a constant 1 for unlabelled graphs); zero on
            padding.
        adj1, adj2: adjacency matrices :math:`(B, N, N)`, float 0/1, symmetric, zero diagonal and padding.
        n1, n2: node counts :math:`(B,)` (long).
        target: GED labels :math:`(B,)` (float) or :obj:`None`.
    """

    x1: Tensor
    adj1: Tensor
    n1: Tensor
    x2: Tensor
    adj2: Tensor
    n2: Tensor
    target: Tensor | None = None

    def to(self, device: Any, non_blocking: bool = False) -> PairBatch:
        return PairBatch(**{f.name: (None if getattr(self, f.name) is None else
                                     getattr(self, f.name).to(device, non_blocking=non_blocking))
                            for f in fields(self)})

    def __len__(self) -> int:
        return self.n1.shape[0]

    @property
    def mask1(self) -> Tensor:
        """Valid nodes of :math:`G_1`, :math:`(B, N)` bool."""
        return torch.arange(self.x1.shape[1], device=self.n1.device) < self.n1[:, None]

    @property
    def mask2(self) -> Tensor:
        """Valid nodes of :math:`G_2`, :math:`(B, N)` bool."""
        return torch.arange(self.x2.shape[1], device=self.n2.device) < self.n2[:, None]

    def swapped(self) -> PairBatch:
        """The batch of pairs :math:`(G_2, G_1)`."""
        return PairBatch(self.x2, self.adj2, self.n2, self.x1, self.adj1, self.n1, self.target)

    def padded(self, size: int) -> PairBatch:
        """The same pairs padded to ``size`` nodes (for padding-invariance checks)."""
        n = self.x1.shape[1]
        if size < n:
            raise ValueError(f"padded(size={size}) is smaller than the current padding {n}")
        p = size - n
        pad_x = lambda x: torch.nn.functional.pad(x, (0, 0, 0, p))  # noqa: E731
        pad_a = lambda a: torch.nn.functional.pad(a, (0, p, 0, p))  # noqa: E731
        return PairBatch(pad_x(self.x1), pad_a(self.adj1), self.n1, pad_x(self.x2), pad_a(self.adj2), self.n2,
                         self.target)


class GraphStore:
    """Graphs as padded tensors, featurised once.

    Args:
        graphs: networkx graphs (or torch_geometric ``Data``); node order as in :func:`graphalign.as_graph_arrays`.
        node_label (str, optional): node attribute holding the label; :obj:`None` for unlabelled graphs (every
            node gets the constant feature 1). (default: :obj:`None`)
        label_vocab (list, optional): the label vocabulary (its order fixes the one-hot columns; an extra last
            column stands for labels outside it). Built from ``graphs`` (sorted) when :obj:`None`.
        max_nodes (int, optional): padding size; the largest graph when :obj:`None`.

    Attributes:
        x: :math:`(G, N, F)` float features; adj: :math:`(G, N, N)` uint8; n: :math:`(G,)` long.
    """

    def __init__(self, graphs: Sequence[Any], node_label: str | None = None, *,
                 label_vocab: Sequence[str] | None = None, max_nodes: int | None = None) -> None:
        arrs = [as_graph_arrays(g, node_label, name=f"graphs[{i}]") for i, g in enumerate(graphs)]
        self.node_label = node_label
        if node_label is not None and label_vocab is None:
            label_vocab = sorted({str(v) for a in arrs for v in a.labels})
        self.label_vocab = None if node_label is None else [str(v) for v in label_vocab]  # type: ignore[union-attr]
        size = max([1, *(a.n for a in arrs)]) if max_nodes is None else max_nodes
        big = [i for i, a in enumerate(arrs) if a.n > size]
        if big:
            raise ValueError(f"graphs {big[:5]} have more than max_nodes={size} nodes")
        G = len(arrs)
        self.n = torch.tensor([a.n for a in arrs], dtype=torch.long)
        self.adj = torch.zeros(G, size, size, dtype=torch.uint8)
        F = 1 if self.label_vocab is None else len(self.label_vocab) + 1
        self.x = torch.zeros(G, size, F)
        index = {v: k for k, v in enumerate(self.label_vocab or [])}
        for i, a in enumerate(arrs):
            self.adj[i, :a.n, :a.n] = torch.from_numpy(np.asarray(a.adj > 0, dtype=np.uint8))
            if self.label_vocab is None:
                self.x[i, :a.n, 0] = 1.0
            else:
                cols = torch.tensor([index.get(str(v), F - 1) for v in a.labels], dtype=torch.long)
                self.x[i, torch.arange(a.n), cols] = 1.0

    @property
    def num_features(self) -> int:
        return self.x.shape[-1]

    def __len__(self) -> int:
        return self.n.shape[0]

    def batch(self, i: Tensor, j: Tensor, target: Tensor | None = None) -> PairBatch:
        """The pairs ``(graph i[k], graph j[k])``, padded to the largest graph among them."""
        i = torch.as_tensor(i, dtype=torch.long)
        j = torch.as_tensor(j, dtype=torch.long)
        size = max(1, int(torch.maximum(self.n[i].max(), self.n[j].max()))) if len(i) else 1
        return PairBatch(self.x[i, :size], self.adj[i, :size, :size].float(), self.n[i],
                         self.x[j, :size], self.adj[j, :size, :size].float(), self.n[j],
                         None if target is None else torch.as_tensor(target, dtype=torch.float32))


class PairDataset(Dataset):
    """Labelled pairs over a :class:`GraphStore`; items are pair indices, :meth:`collate` builds the batch.

    Args:
        store (GraphStore): the graphs.
        pairs: :math:`(P, 2)` indices into ``store``.
        target: :math:`(P,)` GED values (or :obj:`None`).
    """

    def __init__(self, store: GraphStore, pairs: Any, target: Any | None = None) -> None:
        self.store = store
        self.pairs = torch.as_tensor(np.asarray(pairs), dtype=torch.long).reshape(-1, 2)
        self.target = None if target is None else torch.as_tensor(np.asarray(target), dtype=torch.float32)
        if self.target is not None and self.target.shape[0] != self.pairs.shape[0]:
            raise ValueError(f"target has {self.target.shape[0]} values for {self.pairs.shape[0]} pairs")
        if len(self.pairs) and (self.pairs.min() < 0 or self.pairs.max() >= len(store)):
            raise ValueError(f"pair indices must lie in [0, {len(store)})")

    def __len__(self) -> int:
        return self.pairs.shape[0]

    def __getitem__(self, k: int) -> int:
        return k

    def collate(self, ks: Sequence[int]) -> PairBatch:
        idx = torch.as_tensor(list(ks), dtype=torch.long)
        p = self.pairs[idx]
        return self.store.batch(p[:, 0], p[:, 1], None if self.target is None else self.target[idx])

    def batches(self, batch_size: int = 256):
        """Every pair in order, in batches (for evaluation)."""
        for a in range(0, len(self), batch_size):
            yield self.collate(range(a, min(a + batch_size, len(self))))


def encode_pairs(pairs: Sequence[tuple[Any, Any]], node_label: str | None = None,
                 label_vocab: Sequence[str] | None = None) -> PairBatch:
    """A :class:`PairBatch` of explicit ``(g1, g2)`` pairs (networkx graphs or ``Data``)."""
    if node_label is not None and label_vocab is None:
        raise ValueError("encode_pairs: a labelled model needs its label_vocab")
    flat: list[nx.Graph] = [g for p in pairs for g in p]
    store = GraphStore(flat, node_label, label_vocab=label_vocab)
    k = torch.arange(len(pairs))
    return store.batch(2 * k, 2 * k + 1)
