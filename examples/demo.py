"""`make demo`: one short run of each package on bundled real data.

Each package contributes ``examples/demo_<name>.py`` with a ``main()``; they run in the order below
(missing ones are reported, not skipped silently).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

SECTIONS = ["demo_aligncore", "demo_graphalign", "demo_graphedx", "demo_kgalign", "demo_llmalign",
            "demo_context", "demo_das", "demo_altmoe"]


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    wanted = argv or SECTIONS
    for name in wanted:
        if not (here / f"{name}.py").exists():
            print(f"\n== {name}: not available yet (no examples/{name}.py)")
            continue
        print(f"\n{'=' * 100}\n== {name}\n{'=' * 100}", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(name).main()
        print(f"== {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
