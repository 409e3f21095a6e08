"""Method configurations as dataclasses, turned into command-line flags.

Each field of a config dataclass carries its help text in ``metadata={"help": ...}`` (use :func:`field`).
:func:`parse_config` builds an :mod:`argparse` parser from it (``--max-epochs``, ``--no-amp`` for booleans),
reads ``--config file.yaml`` first, and lets flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, *, help: str, choices: typing.Sequence[Any] | None = None,
          default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a help string (and optional choices) for the CLI."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = list(choices)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, is_optional) for annotations like ``int``, ``float | None``, ``list[int]``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _base_type(inner[0])[0], True
    return tp, False


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        # argparse %-formats help strings: escape a literal percent sign
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                              "help": f"{help_} (default: {default!r})".replace("%", "%%")}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            (elem,) = typing.get_args(tp)[:1]
            kw["nargs"] = "*"
            kw["type"] = elem
        elif tp in (int, float, str):
            kw["type"] = tp
        else:
            kw["type"] = str
        if optional and tp in (int, float):
            base = tp
            kw["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument(flag, **kw)


def config_from_dict(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Build ``cls`` from a mapping, rejecting unknown keys (with the source named in the error)."""
    names = {f.name for f in dataclasses.fields(cls)}
    norm = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(norm) - names)
    if unknown:
        raise ValueError(f"{source}: unknown option(s) {unknown}; known: {sorted(names)}")
    return cls(**norm)


def parse_config(cls: type[T], argv: list[str] | None = None, *, description: str | None = None,
                 parser: argparse.ArgumentParser | None = None) -> T:
    """Parse command-line flags (and ``--config file.yaml``) into an instance of dataclass ``cls``."""
    return parse_configs([cls], argv, description=description, parser=parser)[0]


def parse_configs(classes: list[type], argv: list[str] | None = None, *, description: str | None = None,
                  parser: argparse.ArgumentParser | None = None) -> list[Any]:
    """Like :func:`parse_config` for several dataclasses at once (e.g. a method's config and
    :class:`aligncore.training.TrainConfig`); field names must not collide. ``--config`` may hold the
    options of all of them in one flat mapping."""
    seen: dict[str, str] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.name in seen:
                raise ValueError(f"option {f.name!r} defined by both {seen[f.name]} and {cls.__name__}")
            seen[f.name] = cls.__name__
    parser = parser or argparse.ArgumentParser(
        description=description or (classes[0].__doc__ or "").strip().split("\n")[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML (or JSON) file of options; flags on the command line override it")
    for cls in classes:
        group = parser.add_argument_group(cls.__name__)
        add_config_arguments(group, cls)  # type: ignore[arg-type]
    ns = vars(parser.parse_args(argv))
    cfg_path = ns.pop("config", None)
    values: dict[str, Any] = {}
    if cfg_path is not None:
        if not cfg_path.is_file():
            parser.error(f"--config: no such file {cfg_path}")
        text = cfg_path.read_text()
        loaded = json.loads(text) if cfg_path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(loaded, dict):
            parser.error(f"--config {cfg_path}: expected a mapping of options at top level")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update(ns)
    unknown = sorted(set(values) - set(seen))
    if unknown:
        parser.error(f"{cfg_path or 'command line'}: unknown option(s) {unknown}")
    out = []
    for cls in classes:
        mine = {k: v for k, v in values.items() if seen.get(k) == cls.__name__}
        try:
            out.append(config_from_dict(cls, mine, source=str(cfg_path) if cfg_path else "command line"))
        except (TypeError, ValueError) as e:
            parser.error(str(e))
    return out


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
