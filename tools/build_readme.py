"""Build README.md from docs/readme_head.md, docs/sections/*.md and the benchmark results.

A line ``<!-- table: NAME -->`` in a section becomes a markdown table of ``benchmarks/results/NAME.json``
(every row, every column), followed by the machine it was measured on. ``--check`` exits 1 when README.md is
not what this script would write.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["aligncore", "graphalign", "graphedx", "kgalign", "llmalign", "context", "das", "altmoe"]
MARK = re.compile(r"^<!-- table: ([\w.-]+) -->$")


def fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def table(name: str) -> str:
    out = []
    for path in sorted((ROOT / "benchmarks" / "results").glob(f"{name}*.json")):
        doc = json.loads(path.read_text())
        rows = doc["rows"]
        cols: list[str] = []
        for r in rows:
            cols.extend(k for k in r if k not in cols)
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        for r in rows:
            out.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
        out.append("")
        out.append(f"<sub>`{path.relative_to(ROOT)}`: {doc.get('machine', '?')}; torch threads "
                   f"{doc.get('torch_threads', '?')}; budget: {doc.get('budget', '?')}</sub>")
        out.append("")
    if not out:
        return f"_(no results yet: run `python benchmarks/{name}.py`)_\n"
    return "\n".join(out)


def build() -> str:
    parts = [(ROOT / "docs" / "readme_head.md").read_text().rstrip() + "\n"]
    for name in ORDER:
        p = ROOT / "docs" / "sections" / f"{name}.md"
        if not p.exists():
            continue
        lines = []
        for line in p.read_text().splitlines():
            m = MARK.match(line.strip())
            lines.append(table(m.group(1)).rstrip() if m else line)
        parts.append("\n".join(lines).rstrip() + "\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = build()
    readme = ROOT / "README.md"
    if "--check" in argv:
        if not readme.exists() or readme.read_text() != text:
            print("README.md is out of date: run python tools/build_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
