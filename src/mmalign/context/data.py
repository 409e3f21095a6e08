r"""ETT long-term forecasting data in the Time-Series-Library conventions.

The splits follow `Time-Series-Library <https://github.com/thuml/Time-Series-Library>`_ (and the GPT4TS/OFA
and Context-Alignment code built on it):

- ETTh (hourly): train, validation and test are 12, 4 and 4 months of 30 days: rows
  :math:`[0, 8640)`, :math:`[8640, 11520)`, :math:`[11520, 14400)`; ETTm (15-minute) is 4 times that.
  The validation and test windows start ``seq_len`` rows before their split so that the first target
  lies at the split border.
- A :class:`StandardScaler`-style scaler (per column mean and population std) is fit on the train rows only
  and applied to every split; metrics are computed on the scaled data.
- ``features="M"``: all 7 columns are inputs and targets (models are channel independent).
- Few-shot: the first ``few_shot`` fraction of the training windows (TSLib ``percent``:
  ``border2 = (border2 - seq_len) * percent // 100 + seq_len``).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from aligncore.data import resolve_dataset

__all__ = ["ETT_NAMES", "ETTSeries", "split_borders", "load_ett", "WindowDataset", "ETTSplits", "ett_splits",
           "eval_loader"]

ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")


@dataclass
class ETTSeries:
    """One ETT file: raw values, column names and timestamps."""

    name: str
    values: np.ndarray  #: (T, C) float32, raw (unscaled)
    columns: list[str]
    dates: list[str]


def split_borders(name: str, seq_len: int) -> tuple[list[int], list[int]]:
    """Row borders ``(starts, ends)`` of train/val/test for an ETT file (TSLib ``Dataset_ETT_hour/minute``).

    Returns:
        ``([0, n_tr - seq_len, n_tr + n_va - seq_len], [n_tr, n_tr + n_va, n_tr + 2 n_va])`` with
        ``n_tr = 12*30*24*k``, ``n_va = 4*30*24*k``, ``k = 1`` for ETTh and ``4`` for ETTm.
    """
    if name.startswith("ETTh"):
        k = 1
    elif name.startswith("ETTm"):
        k = 4
    else:
        raise ValueError(f"unknown ETT dataset {name!r}; expected one of {ETT_NAMES}")
    n_tr, n_va = 12 * 30 * 24 * k, 4 * 30 * 24 * k
    return [0, n_tr - seq_len, n_tr + n_va - seq_len], [n_tr, n_tr + n_va, n_tr + 2 * n_va]


def _find_file(name: str, root: str | os.PathLike | None) -> Path:
    folder = resolve_dataset("ett", root, must_contain=None)
    for cand in (folder / f"{name}.csv.gz", folder / f"{name}.csv"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"{name}.csv(.gz) not found in {folder}")


def load_ett(name: str, root: str | os.PathLike | None = None) -> ETTSeries:
    """Read ``<name>.csv.gz`` (or ``.csv``) from the ``ett`` data folder (``root``, ``$ALIGNKIT_DATA``, then
    the project's ``data/``).

    Args:
        name (str): ``"ETTh1"``, ``"ETTh2"``, ``"ETTm1"`` (or ``"ETTm2"`` where present).
        root (str, optional): a folder holding ``ett/`` or the ETT files. (default: :obj:`None`)
    """
    if name not in ETT_NAMES:
        raise ValueError(f"unknown ETT dataset {name!r}; expected one of {ETT_NAMES}")
    path = _find_file(name, root)
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    reader = csv.reader(io.StringIO(raw.decode("utf-8")))
    header = next(reader)
    if not header or header[0] != "date":
        raise ValueError(f"{path}: line 1 should start with 'date', got {header[:2]}")
    dates, rows = [], []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}")
        dates.append(row[0])
        rows.append([float(x) for x in row[1:]])
    return ETTSeries(name, np.asarray(rows, dtype=np.float32), header[1:], dates)


class WindowDataset(Dataset):
    r"""Sliding windows over a scaled ``(T, C)`` array: item ``i`` is ``(x, y)`` with
    ``x = data[i : i + seq_len]`` and ``y = data[i + seq_len : i + seq_len + pred_len]``.

    Shapes:
        - x: :math:`(L, C)` with :math:`L` = ``seq_len``; y: :math:`(H, C)` with :math:`H` = ``pred_len``
    """

    def __init__(self, data: np.ndarray | Tensor, seq_len: int, pred_len: int, *, start: int = 0,
                 stride: int = 1) -> None:
        self.data = torch.as_tensor(np.asarray(data, dtype=np.float32))
        if self.data.ndim != 2:
            raise ValueError(f"data must be (T, C), got shape {tuple(self.data.shape)}")
        if seq_len < 1 or pred_len < 1 or stride < 1:
            raise ValueError(f"seq_len, pred_len, stride must be >= 1, got {seq_len}, {pred_len}, {stride}")
        self.seq_len, self.pred_len, self.stride = seq_len, pred_len, stride
        self.start = start  #: row of ``data`` (in the whole file) where this split begins, for reference
        n = self.data.shape[0] - seq_len - pred_len + 1
        if n < 1:
            raise ValueError(f"{self.data.shape[0]} rows are too few for seq_len={seq_len} + pred_len={pred_len}")
        self.n_windows = n
        self.offsets = torch.arange(0, n, stride)

    def __len__(self) -> int:
        return int(self.offsets.numel())

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        s = int(self.offsets[i])
        return self.data[s: s + self.seq_len], self.data[s + self.seq_len: s + self.seq_len + self.pred_len]


@dataclass
class ETTSplits:
    """Train/validation/test windows of one ETT file, scaled with the train-row statistics."""

    name: str
    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    mean: np.ndarray  #: (C,) train-row mean
    std: np.ndarray  #: (C,) train-row population std
    borders: tuple[list[int], list[int]]
    n_channels: int


def ett_splits(name: str, seq_len: int, pred_len: int, *, few_shot: float = 0.0,
               root: str | os.PathLike | None = None, eval_stride: int = 1,
               series: ETTSeries | None = None) -> ETTSplits:
    r"""The TSLib splits of an ETT file as sliding-window datasets.

    Args:
        name (str): ETT file name.
        seq_len (int): input window length :math:`L`.
        pred_len (int): forecast horizon :math:`H`.
        few_shot (float, optional): keep the first ``few_shot`` fraction of the training windows (TSLib
            ``percent``); :obj:`0` or :obj:`1` keeps all. (default: :obj:`0`)
        eval_stride (int, optional): take every ``eval_stride``-th validation/test window (1 = all, the
            published protocol; larger values only to fit a small compute budget). (default: :obj:`1`)
        series (ETTSeries, optional): an already loaded file. (default: :obj:`None`)
    """
    if not 0.0 <= few_shot <= 1.0:
        raise ValueError(f"few_shot must be in [0, 1], got {few_shot}")
    s = series if series is not None else load_ett(name, root)
    starts, ends = split_borders(name, seq_len)
    if ends[2] > s.values.shape[0]:
        raise ValueError(f"{name}: {s.values.shape[0]} rows, the splits need {ends[2]}")
    train_rows = s.values[starts[0]:ends[0]].astype(np.float64)
    mean = train_rows.mean(0)
    std = train_rows.std(0)  # population std, as sklearn's StandardScaler
    std = np.where(std > 0, std, 1.0)
    scaled = ((s.values.astype(np.float64) - mean) / std).astype(np.float32)
    tr_end = ends[0]
    if 0 < few_shot < 1:
        tr_end = (ends[0] - seq_len) * round(few_shot * 1_000_000) // 1_000_000 + seq_len
        if tr_end - starts[0] < seq_len + pred_len:
            raise ValueError(f"few_shot={few_shot} leaves no training window for seq_len+pred_len="
                             f"{seq_len + pred_len}")
    train = WindowDataset(scaled[starts[0]:tr_end], seq_len, pred_len, start=starts[0])
    val = WindowDataset(scaled[starts[1]:ends[1]], seq_len, pred_len, start=starts[1], stride=eval_stride)
    test = WindowDataset(scaled[starts[2]:ends[2]], seq_len, pred_len, start=starts[2], stride=eval_stride)
    return ETTSplits(name, train, val, test, mean.astype(np.float32), std.astype(np.float32),
                     (starts, ends), s.values.shape[1])


def eval_loader(ds: Dataset, batch_size: int) -> DataLoader:
    """An in-order loader that keeps the last partial batch (the reference code drops it, which skips test
    windows and makes the score depend on the batch size)."""
    return DataLoader(ds, batch_size=batch_size, shuffle=False, drop_last=False)
