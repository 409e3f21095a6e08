from __future__ import annotations

import torch

from kgalign.data import KnowledgeGraph
from kgalign.selection import TripleSelector


def _kg():
    # relation 0 "capital": functional (each head one tail); relation 1 "member": 3 triples, 1 head
    triples = torch.tensor([[0, 0, 1], [2, 0, 3], [0, 1, 4], [0, 1, 5], [0, 1, 3], [6, 1, 0]])
    names = ["e0", "e1", "e2", "e3", "e4", "e5", "e6"]
    return KnowledgeGraph(names, names, ["http://x/capital", "http://x/member"], triples,
                          [(0, "born", "1950"), (0, "type", "person"), (2, "type", "person")])


def test_functionalities_by_hand():
    s = TripleSelector(_kg())
    # capital: heads {0, 2}, 2 triples -> 1.0; member: heads {0, 6}, 4 triples -> 0.5
    assert s.fun == {0: 1.0, 1: 0.5}
    # inverse: capital tails {1, 3} / 2 = 1.0; member tails {4, 5, 3, 0} / 4 = 1.0
    assert s.inv_fun == {0: 1.0, 1: 1.0}
    # born: 1 entity / 1 triple * 1 value / 1 = 1; type: 2 entities / 2 * 1 value / 2 = 0.5
    assert s.attr_ident == {"born": 1.0, "type": 0.5}


def test_select_orders_by_identifiability_and_coverage():
    s = TripleSelector(_kg(), max_relations=2, max_attributes=1)
    facts = s.select(0)
    # alone: capital out (1.0 * 2), member out (0.5 * 2) x3, member in (6, member, 0): inv_fun 1.0 * 2
    assert [f.text() for f in facts] == ["(e0, capital, e1)", "(e6, member, e0)", "(e0, born, 1950)"]
    assert facts[0].score == 2.0
    # in a context where only entity 0 has 'capital' (coverage 1/3) but all have 'member' (coverage 1),
    # the member fact moves ahead
    facts = s.select(0, [0, 4, 5])
    assert facts[0].text() == "(e6, member, e0)" and facts[0].score == 2.0
    assert facts[1].text() == "(e0, capital, e1)" and abs(facts[1].score - (1 + 1 / 3)) < 1e-12
