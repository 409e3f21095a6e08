"""Shared helpers of the benchmark scripts: machine description and the results-file format of DESIGN.md."""

from __future__ import annotations

import json
import os
import platform
import time
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
