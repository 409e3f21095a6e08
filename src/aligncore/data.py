"""Dataset-root resolution: ``root=`` argument, then ``$ALIGNKIT_DATA``, then the project's ``data/`` folder;
and reading the bundled files, which are stored compressed (``name.gz`` / ``name.xz`` beside or instead of
``name``)."""

from __future__ import annotations

import gzip
import io
import lzma
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


def find_file(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path.xz`` / ``path.gz`` when only a compressed copy exists."""
    p = Path(path)
    for cand in (p, p.with_name(p.name + ".xz"), p.with_name(p.name + ".gz")):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no such file: {p} (nor {p.name}.xz / {p.name}.gz)")


def open_text(path: str | os.PathLike, *, newline: str | None = None) -> io.TextIOBase:
    """Open a UTF-8 text file, or its ``.xz`` / ``.gz`` copy (see :func:`find_file`), decompressing on the fly.
    Pass ``newline=""`` for :mod:`csv`."""
    p = find_file(path)
    if p.suffix == ".xz":
        return io.TextIOWrapper(lzma.open(p, "rb"), encoding="utf-8", newline=newline)
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", newline=newline)
    return open(p, encoding="utf-8", newline=newline)


def _exists(probe: Path) -> bool:
    return probe.exists() or any(probe.with_name(probe.name + ext).exists() for ext in (".xz", ".gz"))


def resolve_dataset(name: str, root: str | os.PathLike | None = None, *, must_contain: str | None = None) -> Path:
    """Find the folder of dataset ``name``.

    ``root`` may be the dataset folder itself or a folder containing ``name``. When ``root`` is given
    explicitly it is the only place searched, so a typo is not hidden by a bundled copy.

    Args:
        name: the dataset's folder name (may contain ``/``, e.g. ``"graphs/AIDS700nef"``).
        root: explicit location. (default: :obj:`None`)
        must_contain: a file (relative to the dataset folder) that must exist for a match, plain or as a
            ``.xz`` / ``.gz`` copy. (default: :obj:`None`)

    Raises:
        FileNotFoundError: naming every place that was looked at.
    """
    roots = [Path(root).expanduser()] if root is not None else candidate_roots(None)
    looked: list[str] = []
    for r in roots:
        for cand in (r / name, r):
            probe = cand / must_contain if must_contain else cand
            looked.append(str(probe))
            if cand.is_dir() and _exists(probe) and (cand == r / name or must_contain is not None):
                return cand
    where = "\n  ".join(dict.fromkeys(looked))
    raise FileNotFoundError(
        f"dataset {name!r} not found; looked in:\n  {where}\n"
        f"pass root=..., or set {ENV_VAR} to a folder that contains {name!r}"
    )
