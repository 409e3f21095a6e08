"""The README is generated from docs/ and benchmark results, and its aligncore example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_up_to_date():
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "build_readme.py"), "--check"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr


def test_readme_quick_start_has_exactly_two_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    cmds = [ln.split("#")[0].strip() for ln in block.strip().splitlines()]
    assert cmds == ["make demo", "make test"]


def test_aligncore_example_runs():
    text = (ROOT / "docs" / "sections" / "aligncore.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    ns: dict = {}
    exec(compile(code, "aligncore.md", "exec"), ns)
    assert ns["res"].plan.shape == (8, 20, 30)
    assert ns["X"].shape == (2, 20, 20) and float(ns["X"][0].sum()) == 12.0
