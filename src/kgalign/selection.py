r"""Selection of the few triples worth showing an LLM (LLM-Align, Sec. 3.2: attribute and relation
selection by identifiability), from the `"LLM-Align: Utilizing Large Language Models for Entity Alignment in
Knowledge Graphs" <https://arxiv.org/abs/2412.04690>`_ paper.

A triple helps tell candidates apart when its relation (or attribute) is close to a key -- each subject has
one value and values are rarely shared -- and when the candidates being compared also have it. For an entity
:math:`e` shown together with the candidate set :math:`C` (the entity itself for the source side; the list of
candidates on the target side), a relation triple :math:`(e, r, o)` scores

.. math::
    \mathrm{score}(e, r) = \mathrm{ident}(r) \cdot \big(1 + \mathrm{cov}_C(r)\big), \qquad
    \mathrm{cov}_C(r) = \frac{|\{c \in C : r \in \mathcal{R}(c)\}|}{|C|}

where :math:`\mathcal{R}(c)` are the relations of :math:`c` (in either direction) and the identifiability is
the PARIS functionality (Suchanek et al., 2011) of the direction in which :math:`e` takes part:

.. math::
    \mathrm{fun}(r) = \frac{|\{h : (h, r, t)\}|}{|\{(h, r, t)\}|}, \qquad
    \mathrm{fun}^{-1}(r) = \frac{|\{t : (h, r, t)\}|}{|\{(h, r, t)\}|}

(:math:`\mathrm{fun}` for :math:`e` as head, :math:`\mathrm{fun}^{-1}` for :math:`e` as tail). An attribute
:math:`a` uses :math:`\mathrm{ident}(a) = \mathrm{fun}(a) \cdot \frac{|\{v : (x, a, v)\}|}{|\{(x, a, v)\}|}`
(one value per entity, and values that tell entities apart). Ties keep the triple order of the file. The
top ``max_relations`` relation triples and ``max_attributes`` attribute triples are kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .data import KnowledgeGraph, name_from_uri


@dataclass
class Fact:
    """One triple as shown in a prompt: ``(subject name, predicate name, object name)`` and its score."""

    subject: str
    predicate: str
    object: str
    score: float

    def text(self) -> str:
        return f"({self.subject}, {self.predicate}, {self.object})"


class TripleSelector:
    """Precomputes functionalities of one KG and picks the most identifying triples of an entity.

    Args:
        kg (KnowledgeGraph): the graph.
        max_relations (int, optional): relation triples kept per entity. (default: :obj:`3`)
        max_attributes (int, optional): attribute triples kept per entity. (default: :obj:`2`)
    """

    def __init__(self, kg: KnowledgeGraph, max_relations: int = 3, max_attributes: int = 2) -> None:
        self.kg = kg
        self.max_relations = max_relations
        self.max_attributes = max_attributes
        heads: dict[int, set[int]] = defaultdict(set)
        tails: dict[int, set[int]] = defaultdict(set)
        count: dict[int, int] = defaultdict(int)
        self.out_edges: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.in_edges: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for h, r, t in kg.triples.tolist():
            heads[r].add(h)
            tails[r].add(t)
            count[r] += 1
            self.out_edges[h].append((r, t))
            self.in_edges[t].append((r, h))
        self.fun = {r: len(heads[r]) / count[r] for r in count}
        self.inv_fun = {r: len(tails[r]) / count[r] for r in count}
        a_ent: dict[str, set[int]] = defaultdict(set)
        a_val: dict[str, set[str]] = defaultdict(set)
        a_cnt: dict[str, int] = defaultdict(int)
        self.attrs: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for e, a, v in kg.attributes:
            a_ent[a].add(e)
            a_val[a].add(v)
            a_cnt[a] += 1
            self.attrs[e].append((a, v))
        self.attr_ident = {a: len(a_ent[a]) / a_cnt[a] * len(a_val[a]) / a_cnt[a] for a in a_cnt}

    def relations_of(self, e: int) -> set[int]:
        return {r for r, _ in self.out_edges.get(e, ())} | {r for r, _ in self.in_edges.get(e, ())}

    def select(self, e: int, context: Sequence[int] = ()) -> list[Fact]:
        """The selected facts of entity ``e`` given the entities it is compared with (``context``; the
        entity alone when empty). Relation facts first, then attribute facts, each best first."""
        ctx = list(context) or [e]
        ctx_rels = [self.relations_of(c) for c in ctx]
        ctx_attrs = [{a for a, _ in self.attrs.get(c, ())} for c in ctx]
        name = self.kg.names[e]
        rel_facts: list[tuple[float, int, Fact]] = []
        for k, (r, t) in enumerate(self.out_edges.get(e, ())):
            cov = sum(r in s for s in ctx_rels) / len(ctx)
            sc = self.fun[r] * (1 + cov)
            rel_facts.append((-sc, k, Fact(name, _pred(self.kg.relations[r]), self.kg.names[t], sc)))
        base = len(rel_facts)
        for k, (r, h) in enumerate(self.in_edges.get(e, ())):
            cov = sum(r in s for s in ctx_rels) / len(ctx)
            sc = self.inv_fun[r] * (1 + cov)
            rel_facts.append((-sc, base + k, Fact(self.kg.names[h], _pred(self.kg.relations[r]), name, sc)))
        rel_facts.sort(key=lambda x: (x[0], x[1]))
        att_facts: list[tuple[float, int, Fact]] = []
        for k, (a, v) in enumerate(self.attrs.get(e, ())):
            cov = sum(a in s for s in ctx_attrs) / len(ctx)
            sc = self.attr_ident[a] * (1 + cov)
            att_facts.append((-sc, k, Fact(name, _pred(a), v, sc)))
        att_facts.sort(key=lambda x: (x[0], x[1]))
        return ([f for *_, f in rel_facts[: self.max_relations]]
                + [f for *_, f in att_facts[: self.max_attributes]])


def _pred(uri: str) -> str:
    return name_from_uri(uri) if ("/" in uri or "#" in uri) else uri
