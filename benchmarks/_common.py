"""Shared helpers of the benchmark scripts: machine description and the results-file format of DESIGN.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{os.cpu_count()} cpu ({cpu}), torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.get_device_name(0)}"
    return desc


def run_dir(prefix: str) -> str:
    """A fresh checkpoint folder for one training run (under the system temp dir). Runs launched side by side
    must not share ``out_dir``: ``fit`` reloads ``best.pt`` from it at the end. Remove it when done."""
    return tempfile.mkdtemp(prefix=prefix)


def write_results(name: str, rows: list[dict[str, Any]], *, budget: str, suffix: str = "") -> Path:
    """Write ``benchmarks/results/<name><suffix>.json`` in the DESIGN.md format."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{suffix}.json"
    doc = {"machine": machine(), "torch_threads": torch.get_num_threads(), "budget": budget,
           "date": time.strftime("%Y-%m-%d"), "rows": rows}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def print_table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)))


def fold_seeds(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Hashable], means: tuple[str, ...],
               run_fields: tuple[str, ...], *, std: str | None = None) -> list[dict[str, Any]]:
    """Fold rows of one cell (same ``key``) measured with several seeds into one row, in first-seen cell order.

    A row without ``seed`` is seed 0; a row that already folded seeds contributes its ``runs``; a later run of a
    seed replaces an earlier one. A cell with one seed keeps that run's row. Otherwise the row has the first
    row's other fields, the mean over the seeds of each field in ``means``, ``seeds``, ``runs`` (``seed`` and
    ``run_fields`` of each), the devices joined by ``+``, and ``<std>_std``, the sample standard deviation of
    ``std``, when given."""
    cells: dict[Hashable, list[dict[str, Any]]] = {}
    base: dict[Hashable, dict[str, Any]] = {}  # the first full row of each cell: its fields that are not per-seed
    for r in rows:
        k = key(r)
        base.setdefault(k, r)
        cells.setdefault(k, []).extend(r.get("runs") or [{**r, "seed": r.get("seed", 0)}])
    out = []
    for k, b in base.items():
        runs = sorted({r["seed"]: r for r in cells[k]}.values(), key=lambda r: r["seed"])  # one run per seed
        if len(runs) == 1:
            out.append({c: v for c, v in runs[0].items() if c != "runs"})
            continue
        row = {c: v for c, v in b.items() if c not in ("runs", "seed", "seeds", f"{std}_std")}
        for m in means:
            row[m] = statistics.mean(r[m] for r in runs)
        if std:
            row[f"{std}_std"] = statistics.stdev(r[std] for r in runs)
        if any("device" in r for r in runs):
            row["device"] = "+".join(dict.fromkeys(str(r.get("device")) for r in runs))
        row["seeds"] = [r["seed"] for r in runs]
        row["runs"] = [{c: r.get(c) for c in ("seed", *run_fields)} for r in runs]
        out.append(row)
    return out
