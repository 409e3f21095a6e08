"""Entity-alignment datasets: DBP15K (JAPE / BERT-INT layout) and the OpenEA layout.

Both loaders return an :class:`EADataset`: two knowledge graphs in one entity id space per graph
(``0 .. n1-1`` for KG1 and ``0 .. n2-1`` for KG2, whatever the ids in the files), their relation triples,
optional attribute triples, entity names, and the train / valid / test links as ``(k, 2)`` long tensors.

Files may be plain text or compressed (``name.xz`` / ``name.gz`` are found when ``name`` is missing), so the
project's ``data/dbp15k`` copy (xz) and an uncompressed download load the same way. A malformed line raises
:class:`ValueError` naming the file and the line number.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from aligncore.data import find_file, open_text, resolve_dataset

DBP15K_PAIRS = ("zh_en", "ja_en", "fr_en")


# ----------------------------------------------------------------------------------------------- file reading


def read_rows(path: str | os.PathLike, ncols: int, *, int_cols: tuple[int, ...] = (),
              sep: str = "\t") -> Iterator[list]:
    """Yield the fields of each non-empty line of a tab-separated file.

    Args:
        path: the file (compressed copies are found, see :func:`find_file`).
        ncols: number of fields every line must have; the last field keeps any further separators.
        int_cols: fields that must parse as integers (returned as ``int``).

    Raises:
        ValueError: ``"<file>:<line>: ..."`` for a line with too few fields or a non-integer id.
    """
    p = find_file(path)
    with open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split(sep, ncols - 1)
            if len(parts) != ncols:
                raise ValueError(f"{p}:{lineno}: expected {ncols} tab-separated fields, got {len(parts)}: "
                                 f"{line[:80]!r}")
            for c in int_cols:
                try:
                    parts[c] = int(parts[c])
                except ValueError:
                    raise ValueError(f"{p}:{lineno}: field {c + 1} must be an integer id, got "
                                     f"{parts[c][:40]!r}") from None
            yield parts


# ----------------------------------------------------------------------------------------------- the dataset


@dataclass
class KnowledgeGraph:
    """One knowledge graph with contiguous entity ids ``0 .. num_entities-1``.

    Attributes:
        uris: entity URIs (or names) by id.
        names: a human-readable name per entity (translated name where available, else from the URI).
        relations: relation URIs by relation id.
        triples: relation triples ``(head, relation, tail)``, long tensor of shape ``(T, 3)``.
        attributes: attribute triples ``(entity, attribute, value)`` as Python tuples (may be empty).
    """

    uris: list[str]
    names: list[str]
    relations: list[str]
    triples: Tensor
    attributes: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def num_entities(self) -> int:
        return len(self.uris)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    def edge_index(self) -> Tensor:
        """``(2, T)`` head-to-tail edges of the relation triples."""
        return self.triples[:, [0, 2]].t().contiguous()


@dataclass
class EADataset:
    """A pair of knowledge graphs and their gold links (rows are ``(kg1_id, kg2_id)``)."""

    name: str
    kg1: KnowledgeGraph
    kg2: KnowledgeGraph
    train_links: Tensor
    test_links: Tensor
    valid_links: Tensor = field(default_factory=lambda: torch.zeros(0, 2, dtype=torch.long))

    def __repr__(self) -> str:
        return (f"EADataset({self.name}: KG1 {self.kg1.num_entities} ents / {self.kg1.num_relations} rels / "
                f"{len(self.kg1.triples)} triples, KG2 {self.kg2.num_entities} / {self.kg2.num_relations} / "
                f"{len(self.kg2.triples)}, links train {len(self.train_links)} valid {len(self.valid_links)} "
                f"test {len(self.test_links)})")


def name_from_uri(uri: str) -> str:
    """The last path segment of a URI, percent-decoded, underscores turned into spaces."""
    tail = re.split(r"[/#]", uri.rstrip("/"))[-1]
    return urllib.parse.unquote(tail).replace("_", " ")


# ----------------------------------------------------------------------------------------------- DBP15K


def _read_ids(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for i, uri in read_rows(path, 2, int_cols=(0,)):
        if i in out:
            raise ValueError(f"{find_file(path)}: duplicate id {i}")
        out[i] = uri
    return out


def _reindex(ids: dict[int, str]) -> tuple[dict[int, int], list[str]]:
    order = sorted(ids)
    return {old: new for new, old in enumerate(order)}, [ids[o] for o in order]


def _read_triples(path: Path, ent_map: dict[int, int], rel_map: dict[int, int]) -> Tensor:
    rows = []
    p = find_file(path)
    for lineno, (h, r, t) in enumerate(read_rows(p, 3, int_cols=(0, 1, 2)), 1):
        try:
            rows.append((ent_map[h], rel_map[r], ent_map[t]))
        except KeyError as e:
            raise ValueError(f"{p}: triple #{lineno} uses unknown id {e.args[0]}") from None
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


def _read_links(path: Path, map1: dict[int, int], map2: dict[int, int]) -> Tensor:
    rows = []
    p = find_file(path)
    for lineno, (a, b) in enumerate(read_rows(p, 2, int_cols=(0, 1)), 1):
        if a not in map1 or b not in map2:
            raise ValueError(f"{p}: link #{lineno} ({a}, {b}) uses an id absent from ent_ids_1/ent_ids_2")
        rows.append((map1[a], map2[b]))
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 2)


def _translated_names(names_dir: Path, pair: str) -> dict[str, str]:
    """URI -> translated English name from LightEA's ``dbp_<pair>.json`` and its own id files."""
    json_path = find_file(names_dir / f"dbp_{pair}.json")
    with open_text(json_path) as fh:
        try:
            entries = json.load(fh)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_path}:{e.lineno}: invalid JSON ({e.msg})") from None
    by_id: dict[int, str] = {}
    for k, item in enumerate(entries):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            raise ValueError(f"{json_path}: entry #{k} is not [id, [tokens]]: {str(item)[:60]}")
        by_id[int(item[0])] = " ".join(str(t) for t in item[1])
    out: dict[str, str] = {}
    for side in ("ent_ids_1", "ent_ids_2"):
        for i, uri in read_rows(names_dir / pair / side, 2, int_cols=(0,)):
            if i in by_id:
                out[uri] = by_id[i]
    return out


def load_dbp15k(pair: str = "zh_en", root: str | os.PathLike | None = None, *,
                translated_names: bool = True, attributes: bool = True) -> EADataset:
    r"""DBP15K, from the `"Cross-lingual Entity Alignment via Joint Attribute-Preserving Embedding"
    <https://arxiv.org/abs/1708.05045>`_ paper, in the JAPE ``0_3`` split (4,500 train / 10,500 test links).

    Layout (``root`` is the ``dbp15k`` folder or its parent, resolved by
    :func:`aligncore.data.resolve_dataset`): ``<pair>/{ent_ids_1,ent_ids_2,rel_ids_1,rel_ids_2,triples_1,
    triples_2,sup_pairs,ref_pairs}`` and optionally ``names/dbp_<pair>.json`` with ``names/<pair>/ent_ids_*``
    (LightEA's translated names, joined to the primary ids through the URIs) and JAPE attribute files
    ``<pair>/{training_attrs_1,training_attrs_2}`` or ``<pair>/{zh,ja,fr,en}_att_triples``.

    Args:
        pair (str): ``"zh_en"``, ``"ja_en"`` or ``"fr_en"``. (default: ``"zh_en"``)
        root (path, optional): where the data lives. (default: :obj:`None`: ``$ALIGNKIT_DATA``, then ``data/``)
        translated_names (bool, optional): use the translated English names when present; otherwise names
            come from the URIs. (default: :obj:`True`)
        attributes (bool, optional): read attribute triples when present. (default: :obj:`True`)
    """
    base = resolve_dataset("dbp15k", root, must_contain=f"{pair}")
    d = base / pair
    e1, e2 = _read_ids(d / "ent_ids_1"), _read_ids(d / "ent_ids_2")
    r1, r2 = _read_ids(d / "rel_ids_1"), _read_ids(d / "rel_ids_2")
    m1, uris1 = _reindex(e1)
    m2, uris2 = _reindex(e2)
    rm1, rels1 = _reindex(r1)
    rm2, rels2 = _reindex(r2)
    t1 = _read_triples(d / "triples_1", m1, rm1)
    t2 = _read_triples(d / "triples_2", m2, rm2)
    train = _read_links(d / "sup_pairs", m1, m2)
    test = _read_links(d / "ref_pairs", m1, m2)
    trans: dict[str, str] = {}
    if translated_names:
        json_path = base / "names" / f"dbp_{pair}.json"
        if any(json_path.with_name(json_path.name + s).is_file() for s in ("", ".xz", ".gz")):
            trans = _translated_names(base / "names", pair)
    names1 = [trans.get(u) or name_from_uri(u) for u in uris1]
    names2 = [trans.get(u) or name_from_uri(u) for u in uris2]
    kg1 = KnowledgeGraph(uris1, names1, rels1, t1)
    kg2 = KnowledgeGraph(uris2, names2, rels2, t2)
    if attributes:
        lang1 = pair.split("_")[0]
        for kg, cands in ((kg1, [f"{lang1}_att_triples", "training_attrs_1", "attr_triples_1"]),
                          (kg2, ["en_att_triples", "training_attrs_2", "attr_triples_2"])):
            for c in cands:
                try:
                    find_file(d / c)
                except FileNotFoundError:
                    continue
                kg.attributes = read_attribute_triples(d / c, {u: i for i, u in enumerate(kg.uris)})
                break
    return EADataset(f"dbp15k/{pair}", kg1, kg2, train, test)


_NT = re.compile(r'^<([^>]*)>\s+<([^>]*)>\s+(.*?)\s*\.?\s*$')


def read_attribute_triples(path: str | os.PathLike, uri_to_id: dict[str, int]) -> list[tuple[int, str, str]]:
    """Attribute triples of one KG, in either format:

    * JAPE ``*_att_triples``: N-Triples-like ``<entity> <attribute> "value"^^<type> .`` lines;
    * OpenEA ``attr_triples_*``: ``entity\\tattribute\\tvalue`` lines.

    Entities absent from ``uri_to_id`` are skipped (the attribute files cover more entities than the KG).
    Literal values keep their lexical form (quotes and datatype removed).

    Raises:
        ValueError: ``"<file>:<line>: ..."`` for a line in neither format.
    """
    p = find_file(path)
    out: list[tuple[int, str, str]] = []
    with open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("<"):
                m = _NT.match(line)
                if m is None:
                    raise ValueError(f"{p}:{lineno}: not an N-Triples attribute line: {line[:80]!r}")
                ent, attr, value = m.group(1), m.group(2), m.group(3)
            else:
                parts = line.split("\t")
                if len(parts) < 3:
                    raise ValueError(f"{p}:{lineno}: expected 'entity<TAB>attribute<TAB>value', got "
                                     f"{line[:80]!r}")
                ent, attr, value = parts[0], parts[1], "\t".join(parts[2:])
            value = re.sub(r'^"(.*)"(\^\^<[^>]*>|@[A-Za-z-]+)?$', r"\1", value.strip())
            if ent in uri_to_id:
                out.append((uri_to_id[ent], attr, value))
    return out


# ----------------------------------------------------------------------------------------------- OpenEA


def load_openea(path: str | os.PathLike, *, fold: int = 1, split_dir: str = "721_5fold") -> EADataset:
    """A dataset in the `OpenEA <https://github.com/nju-websoft/OpenEA>`_ layout.

    Files: ``rel_triples_1``, ``rel_triples_2`` (``head\\trelation\\ttail`` URIs), optional ``attr_triples_1``,
    ``attr_triples_2`` (``entity\\tattribute\\tvalue``), ``ent_links`` (``uri1\\turi2``) and
    ``<split_dir>/<fold>/{train,valid,test}_links``. Entity ids are assigned in order of first appearance
    (links first, then triples), separately per KG.

    Args:
        path (path): the dataset folder.
        fold (int, optional): which fold of the split. (default: :obj:`1`)
        split_dir (str, optional): the split folder. (default: ``"721_5fold"``)
    """
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"OpenEA dataset folder not found: {d}")
    ents: list[dict[str, int]] = [{}, {}]
    rels: list[dict[str, int]] = [{}, {}]

    def eid(side: int, uri: str) -> int:
        return ents[side].setdefault(uri, len(ents[side]))

    def read_links(p: Path) -> Tensor:
        rows = [(eid(0, a), eid(1, b)) for a, b in read_rows(p, 2)]
        return torch.tensor(rows, dtype=torch.long).reshape(-1, 2)

    fold_dir = d / split_dir / str(fold)
    train = read_links(fold_dir / "train_links")
    valid = read_links(fold_dir / "valid_links")
    test = read_links(fold_dir / "test_links")
    read_links(d / "ent_links")
    triples = []
    for side in (0, 1):
        rows = []
        for h, r, t in read_rows(d / f"rel_triples_{side + 1}", 3):
            rows.append((eid(side, h), rels[side].setdefault(r, len(rels[side])), eid(side, t)))
        triples.append(torch.tensor(rows, dtype=torch.long).reshape(-1, 3))
    kgs = []
    for side in (0, 1):
        uris = list(ents[side])
        kg = KnowledgeGraph(uris, [name_from_uri(u) for u in uris], list(rels[side]), triples[side])
        try:
            find_file(d / f"attr_triples_{side + 1}")
            kg.attributes = read_attribute_triples(d / f"attr_triples_{side + 1}", ents[side])
        except FileNotFoundError:
            pass
        kgs.append(kg)
    return EADataset(f"openea/{d.name}", kgs[0], kgs[1], train, test, valid)
