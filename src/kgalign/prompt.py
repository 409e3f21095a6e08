"""Prompt construction and answer parsing for LLM reranking (LLM-Align, Sec. 3.3, the multiple-choice
formulation of `"LLM-Align" <https://arxiv.org/abs/2412.04690>`_).

The prompt shows the source entity and numbered candidates, each with its selected facts; embedding scores
are never shown. The model must answer with a candidate number or ``none``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .selection import Fact

NONE = "none"


@dataclass
class EntityView:
    """What the prompt shows of one entity: its name and selected facts."""

    name: str
    facts: list[Fact]

    def block(self) -> str:
        if not self.facts:
            return self.name
        return self.name + "; facts: " + "; ".join(f.text() for f in self.facts)


def build_prompt(source: EntityView, candidates: Sequence[EntityView]) -> str:
    """The multiple-choice prompt: the source entity, then candidates numbered from 1 in the given order.

    Args:
        source: the entity of the first KG.
        candidates: candidate entities of the second KG, in the order they should be listed.
    """
    if not candidates:
        raise ValueError("build_prompt needs at least one candidate")
    lines = [
        "You are matching entities between two knowledge graphs.",
        "Which candidate is the same real-world entity as the source entity?",
        "",
        f"Source entity: {source.block()}",
        "",
        "Candidates:",
    ]
    lines += [f"{i}. {c.block()}" for i, c in enumerate(candidates, 1)]
    lines += ["", f"Answer with the number of the matching candidate (1-{len(candidates)}) only, "
                  f"or \"{NONE}\" if none of them matches.", "Answer:"]
    return "\n".join(lines)


_NUM = re.compile(r"(?<![\d.])(\d{1,3})(?![\d.]\d)")
_NONE = re.compile(r"\b(none|no match|no candidate|neither)\b", re.IGNORECASE)
# "neither 1 nor 2": the numbers it names are rejected, not chosen; the clause ends at the number after "nor".
_NEITHER_NOR = re.compile(r"\bneither\b[^.;:\n]*?\bnor\b\s*(?:candidate\s*|option\s*|#\s*)?\d{1,3}",
                          re.IGNORECASE)


def parse_answer(text: str | None, num_candidates: int) -> int | str | None:
    """Read the model's choice.

    Rules, in order: a "neither A nor B" clause rejects the candidates it names, so it is blanked out first
    and counts as a "none" phrase only if nothing else is chosen ("neither 1 nor 2, it is 3" chooses 3);
    then the first integer in ``1..num_candidates`` that appears before any remaining "none" phrase is the
    answer (0-based index returned); otherwise a "none" / "no match" / "neither" phrase (or a blanked
    "neither ... nor" clause) gives :data:`NONE`; anything else (empty text, numbers out of range, prose) is
    an abstention (:obj:`None`).

    Args:
        text: the raw completion.
        num_candidates: how many candidates the prompt listed.

    Returns:
        ``int`` (0-based candidate position in the prompt), ``"none"`` or :obj:`None` (abstain).
    """
    if not text:
        return None
    rejected = _NEITHER_NOR.search(text) is not None
    text = _NEITHER_NOR.sub(lambda m: " " * len(m.group(0)), text)
    none_at = _NONE.search(text)
    cut = none_at.start() if none_at else len(text)
    for m in _NUM.finditer(text[:cut]):
        k = int(m.group(1))
        if 1 <= k <= num_candidates:
            return k - 1
    return NONE if none_at or rejected else None
