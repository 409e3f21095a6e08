r"""An on-disk embedding store: frozen-encoder outputs computed once, memory-mapped, streamed in batches.

Alt-MoE (`"Alt-MoE: A Scalable Framework for Bidirectional Multimodal Alignment and Efficient Knowledge
Integration" <https://arxiv.org/abs/2409.05929>`_) keeps the unimodal encoders frozen, so their outputs can
be computed once and reused by every training run. A store is a folder with

- ``embeddings.npy``: a standard NumPy ``.npy`` array of shape :math:`(N, d)`, written row block by row
  block through :func:`numpy.lib.format.open_memmap` and read back memory-mapped (never loaded whole);
- ``meta.json``: ``{"n", "dim", "dtype", "ids", "complete", "info"}``; ``ids`` names the rows (item ids,
  entity URIs, ...), ``complete`` is set only after the last row was written, so an interrupted build is
  detected (and resumed from the first unwritten row).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["EmbeddingStore", "StoreWriter", "build_store"]

_EMB, _META = "embeddings.npy", "meta.json"


class StoreWriter:
    r"""Writes an :math:`(N, d)` store block by block (rows in order), without holding it in memory.

    Args:
        path (str or Path): the store folder (created).
        n (int): number of rows.
        dim (int): embedding width.
        ids (sequence of str, optional): row names, length :obj:`n`. (default: ``"0" ... "n-1"``)
        dtype (str, optional): ``"float32"`` or ``"float16"``. (default: :obj:`"float32"`)
        info (dict, optional): free provenance (encoder name, pooling, ...), stored in ``meta.json``.
        resume (bool, optional): continue an incomplete store with the same shape instead of starting over.
            (default: :obj:`True`)
    """

    def __init__(self, path: str | os.PathLike, n: int, dim: int, *, ids: Sequence[str] | None = None,
                 dtype: str = "float32", info: dict[str, Any] | None = None, resume: bool = True) -> None:
        if n < 1 or dim < 1:
            raise ValueError(f"store {path}: n and dim must be >= 1, got n={n}, dim={dim}")
        if dtype not in ("float32", "float16"):
            raise ValueError(f"store {path}: dtype must be 'float32' or 'float16', got {dtype!r}")
        ids = [str(i) for i in (ids if ids is not None else range(n))]
        if len(ids) != n:
            raise ValueError(f"store {path}: {len(ids)} ids for {n} rows")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.n, self.dim, self.dtype = n, dim, dtype
        self.meta = {"n": n, "dim": dim, "dtype": dtype, "ids": ids, "complete": False, "written": 0,
                     "info": info or {}}
        old = _read_meta(self.path) if (self.path / _META).exists() else None
        if (resume and old is not None and not old["complete"] and old["n"] == n and old["dim"] == dim
                and old["dtype"] == dtype and old["ids"] == ids and (self.path / _EMB).exists()):
            self.written = int(old["written"])
            self._arr = np.load(self.path / _EMB, mmap_mode="r+")
        else:
            self.written = 0
            self._arr = np.lib.format.open_memmap(self.path / _EMB, mode="w+", dtype=dtype, shape=(n, dim))
        self._flush_meta()

    def _flush_meta(self) -> None:
        self.meta["written"] = self.written
        tmp = self.path / f".{_META}.tmp"
        tmp.write_text(json.dumps(self.meta))
        os.replace(tmp, self.path / _META)

    def write(self, block: Tensor | np.ndarray) -> None:
        """Append the next rows (shape :math:`(b, d)`)."""
        arr = block.detach().to("cpu", torch.float32).numpy() if isinstance(block, Tensor) else np.asarray(block)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"store {self.path}: block must have shape (b, {self.dim}), got {arr.shape}")
        if self.written + arr.shape[0] > self.n:
            raise ValueError(f"store {self.path}: writing {arr.shape[0]} rows after {self.written} "
                             f"overflows n={self.n}")
        self._arr[self.written:self.written + arr.shape[0]] = arr
        self.written += arr.shape[0]
        self._arr.flush()
        self._flush_meta()

    def close(self) -> EmbeddingStore:
        """Mark the store complete (all rows written) and open it for reading."""
        if self.written != self.n:
            raise ValueError(f"store {self.path}: only {self.written} of {self.n} rows written")
        self._arr.flush()
        del self._arr
        self.meta["complete"] = True
        self._flush_meta()
        return EmbeddingStore(self.path)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / _META).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path / _META}: not valid JSON ({e})") from e


class EmbeddingStore:
    r"""Read side of a store: memory-mapped rows, served as float32 tensors.

    Args:
        path (str or Path): a folder written by :class:`StoreWriter` (or :func:`build_store`).

    Attributes:
        ids (list[str]): row names; ``index[id]`` gives the row.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not (self.path / _META).exists() or not (self.path / _EMB).exists():
            raise FileNotFoundError(f"{self.path}: not an embedding store (needs {_EMB} and {_META})")
        self.meta = _read_meta(self.path)
        if not self.meta.get("complete"):
            raise ValueError(f"store {self.path} is incomplete ({self.meta.get('written')} of "
                             f"{self.meta.get('n')} rows written); rebuild or resume it")
        self._arr = np.load(self.path / _EMB, mmap_mode="r")
        if self._arr.shape != (self.meta["n"], self.meta["dim"]):
            raise ValueError(f"{self.path / _EMB}: shape {self._arr.shape} disagrees with meta.json "
                             f"({self.meta['n']}, {self.meta['dim']})")
        self.ids: list[str] = list(self.meta["ids"])
        self.index = {k: i for i, k in enumerate(self.ids)}

    def __len__(self) -> int:
        return int(self._arr.shape[0])

    @property
    def dim(self) -> int:
        return int(self._arr.shape[1])

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.meta.get("info", {}))

    @property
    def array(self) -> np.memmap:
        """The memory-mapped array itself (read-only)."""
        return self._arr

    def __getitem__(self, rows: int | slice | Sequence[int] | Tensor | np.ndarray) -> Tensor:
        """Rows as a float32 tensor (only those rows are read from disk)."""
        if isinstance(rows, Tensor):
            rows = rows.cpu().numpy()
        return torch.from_numpy(np.array(self._arr[rows], dtype=np.float32))  # a copy: only these rows

    def iter_batches(self, batch_size: int = 1024, rows: Sequence[int] | None = None) -> Iterator[Tensor]:
        """Stream the store (or the given rows, in that order) in blocks of at most ``batch_size`` rows."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if rows is None:
            for a in range(0, len(self), batch_size):
                yield self[slice(a, a + batch_size)]
        else:
            rows = np.asarray(rows, dtype=np.int64)
            for a in range(0, len(rows), batch_size):
                yield self[rows[a:a + batch_size]]

    def load(self) -> Tensor:
        """The whole store as one float32 tensor (for sets that fit in memory)."""
        return self[slice(None)]


def build_store(path: str | os.PathLike, encoder: Callable[[list[Any]], Tensor], inputs: Sequence[Any], *,
                ids: Sequence[str] | None = None, batch_size: int = 64, dtype: str = "float32",
                info: dict[str, Any] | None = None, progress: bool = True) -> EmbeddingStore:
    r"""Encode ``inputs`` with a frozen ``encoder`` in batches (under :func:`torch.no_grad`) into a store.

    A complete store at ``path`` with the same ids is reused as is (the encoder is not called); an incomplete
    one is resumed.

    Args:
        path (str or Path): the store folder.
        encoder (callable): ``encoder(list_of_inputs) -> Tensor`` of shape :math:`(b, d)`.
        inputs (sequence): everything to encode, in row order.
        ids (sequence of str, optional): row names. (default: positions)
        batch_size (int, optional): inputs per encoder call. (default: :obj:`64`)
        dtype (str, optional): storage dtype. (default: :obj:`"float32"`)
        info (dict, optional): provenance stored in ``meta.json``.
        progress (bool, optional): show a progress bar. (default: :obj:`True`)
    """
    from tqdm.auto import tqdm

    path = Path(path)
    ids = [str(i) for i in (ids if ids is not None else range(len(inputs)))]
    if (path / _META).exists():
        meta = _read_meta(path)
        if meta.get("complete") and meta.get("ids") == ids:
            return EmbeddingStore(path)
    if len(inputs) == 0:
        raise ValueError("build_store: no inputs")
    with torch.no_grad():
        first = encoder(list(inputs[:1]))
    writer = StoreWriter(path, len(inputs), int(first.shape[-1]), ids=ids, dtype=dtype, info=info)
    with torch.no_grad(), tqdm(total=len(inputs), initial=writer.written, desc=f"encoding -> {path.name}",
                               disable=not progress) as bar:
        for a in range(writer.written, len(inputs), batch_size):
            block = encoder(list(inputs[a:a + batch_size]))
            writer.write(block)
            bar.update(block.shape[0])
    return writer.close()
