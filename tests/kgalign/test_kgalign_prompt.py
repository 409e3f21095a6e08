from __future__ import annotations

from kgalign.prompt import NONE, EntityView, build_prompt, parse_answer
from kgalign.selection import Fact


def test_parse_answer_cases():
    assert parse_answer("3", 5) == 2
    assert parse_answer(" Candidate 2.", 5) == 1
    assert parse_answer("The answer is [4]", 5) == 3
    assert parse_answer("none", 5) == NONE
    assert parse_answer("None of them match.", 5) == NONE
    assert parse_answer("7", 5) is None  # out of range: abstain
    assert parse_answer("I am not sure", 5) is None
    assert parse_answer("", 5) is None and parse_answer(None, 5) is None
    assert parse_answer("2 or 3", 5) == 1  # first number in range
    assert parse_answer("none, though 2 is close", 5) == NONE  # "none" before the number
    assert parse_answer("10", 10) == 9
    assert parse_answer("1.5 million", 5) is None  # a decimal is not a choice


def test_parse_answer_neither_nor_rejects_the_named_candidates():
    assert parse_answer("neither 1 nor 2, it is 3", 5) == 2
    assert parse_answer("Neither candidate 1 nor candidate 2; the answer is 4.", 5) == 3
    assert parse_answer("Neither 1 nor 2.", 2) == NONE
    assert parse_answer("neither 1 nor 2", 5) == NONE  # nothing else chosen
    assert parse_answer("Neither of them matches.", 3) == NONE
    assert parse_answer("Neither. 2 is close", 3) == NONE  # a bare "neither" still comes first
    assert parse_answer("3, neither 1 nor 2", 5) == 2


def test_build_prompt_numbers_candidates_and_hides_scores():
    src = EntityView("kim dae jung", [Fact("kim dae jung", "party", "democratic party", 0.8123)])
    cands = [EntityView("kim jong il", []), EntityView("kim dae jung", [])]
    p = build_prompt(src, cands)
    assert "1. kim jong il" in p and "2. kim dae jung" in p
    assert "(kim dae jung, party, democratic party)" in p
    assert "0.8123" not in p and "0.81" not in p
    assert "1-2" in p and NONE in p
