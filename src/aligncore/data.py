"""Dataset-root resolution: ``root=`` argument, then ``$ALIGNKIT_DATA``, then the project's ``data/`` folder."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ALIGNKIT_DATA"


def project_data_dir() -> Path:
    """The ``data/`` folder of the source checkout (``<repo>/data``), where the bundled datasets live."""
    return Path(__file__).resolve().parents[2] / "data"


def candidate_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: ``root``, ``$ALIGNKIT_DATA``, the project's ``data/``."""
    out: list[Path] = []
    if root is not None:
        out.append(Path(root).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        out.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    out.append(project_data_dir())
    return out


def resolve_dataset(name: str, root: str | os.PathLike | None = None, *, must_contain: str | None = None) -> Path:
    """Find the folder of dataset ``name``.

    ``root`` may be the dataset folder itself or a folder containing ``name``. When ``root`` is given
    explicitly it is the only place searched, so a typo is not hidden by a bundled copy.

    Args:
        name: the dataset's folder name (may contain ``/``, e.g. ``"graphs/AIDS700nef"``).
        root: explicit location. (default: :obj:`None`)
        must_contain: a file (relative to the dataset folder) that must exist for a match. (default: :obj:`None`)

    Raises:
        FileNotFoundError: naming every place that was looked at.
    """
    roots = [Path(root).expanduser()] if root is not None else candidate_roots(None)
    looked: list[str] = []
    for r in roots:
        for cand in (r / name, r):
            probe = cand / must_contain if must_contain else cand
            looked.append(str(probe))
            if cand.is_dir() and probe.exists() and (cand == r / name or must_contain is not None):
                return cand
    where = "\n  ".join(dict.fromkeys(looked))
    raise FileNotFoundError(
        f"dataset {name!r} not found; looked in:\n  {where}\n"
        f"pass root=..., or set {ENV_VAR} to a folder that contains {name!r}"
    )
