from __future__ import annotations

import re

import torch

from kgalign.backends import CallStats, Completion
from kgalign.inference import Candidates
from kgalign.prompt import NONE, EntityView
from kgalign.voting import VotingConfig, decide, rerank, round_order

K = 5
N = 8


class Scripted:
    """A backend whose reply is ``policy(prompt)``."""

    name, model = "scripted", "policy"

    def __init__(self, policy):
        self.policy = policy
        self.stats = CallStats()
        self.prompts: list[str] = []

    def complete(self, prompts):
        self.prompts += prompts
        self.stats.add(calls=len(prompts))
        return [Completion(self.policy(p)) for p in prompts]


def describe(source, candidates):
    return EntityView(f"src{source}", []), [EntityView(f"ent{c}", []) for c in candidates]


def _cands(gold_pos):
    """N entities; candidate lists of KG2 ids 100*i + j; the gold one sits at base position gold_pos[i]."""
    target = torch.tensor([[100 * i + j for j in range(K)] for i in range(N)])
    score = torch.linspace(1, 0, K).repeat(N, 1)
    gold = torch.tensor([100 * i + p for i, p in enumerate(gold_pos)])
    return Candidates(torch.arange(N), target, score), gold


def listed(prompt):
    return re.findall(r"^(\d+)\. ent(\d+)", prompt, flags=re.M)


def oracle_for(gold):
    golds = {str(int(g)) for g in gold}

    def policy(prompt):
        for num, ent in listed(prompt):
            if ent in golds:
                return num
        return "none"
    return policy


def test_round_orders():
    assert round_order(4, 0, 0) == [0, 1, 2, 3]
    assert round_order(4, 1, 0) == [3, 2, 1, 0]
    o = round_order(6, 2, 0, key=3)
    assert sorted(o) == list(range(6)) and o == round_order(6, 2, 0, key=3)



def test_round_orders_do_not_repeat_while_unused_orders_remain():
    import random
    for seed in range(20):
        orders = [round_order(3, t, seed, key=seed * 7) for t in range(6)]
        assert len({tuple(o) for o in orders}) == 6  # all 3! orders, each once
        assert round_order(3, 6, seed, key=seed * 7) in orders  # then repeats are unavoidable
    assert [round_order(2, t, 0) for t in range(3)][2] in ([0, 1], [1, 0])
    # many candidates: the first shuffle is kept, as before this rule (committed LLM runs are unchanged)
    for t in (2, 3, 4):
        expect = list(range(10))
        random.Random(hash((0, 5, t)) & 0xFFFFFFFF).shuffle(expect)
        assert round_order(10, t, 0, key=5) == expect


def test_decide_ties_and_none():
    assert decide([2, 1, 2]) == 2
    assert decide([3, 1, None]) == 1  # tie broken by base rank
    assert decide([NONE, NONE, 0]) == NONE
    assert decide([NONE, 4]) == 4  # a candidate beats "none" at equal votes
    assert decide([None, None]) is None


def test_always_first_policy_exposes_positional_bias():
    cands, gold = _cands([1] * N)
    one = rerank(cands, describe, Scripted(lambda p: "1"), VotingConfig(rounds=1), progress=False)
    assert one.first_option_rate == 1.0
    assert torch.equal(one.candidates.target, cands.target)  # picks the base first every time
    three = rerank(cands, describe, Scripted(lambda p: "1"), VotingConfig(rounds=3), progress=False)
    assert three.first_option_rate == 1.0
    for v in three.votes:
        # the answers follow the listing order, not the entity: base first, then base last
        assert v.answers[0] == 0 and v.answers[1] == K - 1 and len(v.answers) == 3
        assert v.answers[2] == round_order(K, 2, 0, v.source)[0]
    # votes disagree across permutations, so no entity has a majority of 2 unless the shuffle repeats one
    split = [v for v in three.votes if len(set(v.answers)) == 3]
    assert len(split) > 0
    for v in split:
        assert v.choice == 0  # three-way tie goes to the best base rank


def test_oracle_reaches_hits1_of_one_and_stops_early():
    gold_pos = [0, 1, 2, 3, 4, 1, 2, 3]
    cands, gold = _cands(gold_pos)
    backend = Scripted(oracle_for(gold))
    res = rerank(cands, describe, backend, VotingConfig(rounds=3), progress=False)
    assert torch.equal(res.candidates.target[:, 0], gold)
    assert all(len(v.answers) == 2 for v in res.votes)  # 2 of 3 votes is a strict majority
    assert res.llm_calls == 2 * N == len(backend.prompts)
    # the other candidates keep their base order
    i = 2
    assert res.candidates.target[i].tolist() == [202, 200, 201, 203, 204]


def test_abstaining_model_falls_back_to_base_rank():
    cands, gold = _cands([2] * N)
    res = rerank(cands, describe, Scripted(lambda p: "I cannot tell."), VotingConfig(rounds=3), progress=False)
    assert torch.equal(res.candidates.target, cands.target)
    assert all(v.choice is None and v.answers == [None] * 3 for v in res.votes)
    assert res.abstain_rate == 1.0 and res.llm_calls == 3 * N
    nones = rerank(cands, describe, Scripted(lambda p: "none"), VotingConfig(rounds=3), progress=False)
    assert torch.equal(nones.candidates.target, cands.target)
    assert all(v.choice == NONE for v in nones.votes) and nones.none_rate == 1.0


def test_selective_mode_sends_only_low_margin_entities():
    cands, gold = _cands([1] * N)
    cands.score[:4, 0] = 5.0  # confident: margin > threshold
    backend = Scripted(oracle_for(gold))
    res = rerank(cands, describe, backend, VotingConfig(rounds=1, margin_threshold=0.5), progress=False)
    assert res.llm_entities == 4 and all(res.votes[i] is None for i in range(4))
    assert torch.equal(res.candidates.target[:4], cands.target[:4])  # untouched
    assert torch.equal(res.candidates.target[4:, 0], gold[4:])
    assert {p.split("src")[1].split("\n")[0] for p in backend.prompts} == {"4", "5", "6", "7"}


def test_calibration_picks_the_cut_that_maximises_hits1():
    from kgalign.voting import calibrate_margin_threshold

    margin = torch.tensor([0.05, 0.01, 0.3, 0.2, 0.02, 0.5])
    base = torch.tensor([0, 0, 1, 1, 1, 1], dtype=torch.bool)
    llm = torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool)
    cal = calibrate_margin_threshold(margin, base, llm)
    # sorted by margin: 0.01 (+1), 0.02 (0), 0.05 (+1), 0.2 (0), 0.3 (-1), 0.5 (-1): best after 3 entities
    assert cal.sent == 3 and 0.05 < cal.threshold < 0.2
    assert cal.base_hits1 == 4 / 6 and cal.hits1 == 1.0
    assert (margin < cal.threshold).sum() == 3
    assert [h for _, h in cal.curve] == [4 / 6, 5 / 6, 5 / 6, 1.0, 1.0, 5 / 6, 4 / 6]


def test_calibration_sends_nothing_when_the_model_never_helps():
    from kgalign.voting import calibrate_margin_threshold

    margin = torch.tensor([0.0, 0.1, 0.1, 0.4])
    base = torch.ones(4, dtype=torch.bool)
    llm = torch.tensor([1, 0, 1, 1], dtype=torch.bool)
    cal = calibrate_margin_threshold(margin, base, llm)
    assert cal.sent == 0 and cal.hits1 == cal.base_hits1 == 1.0
    assert (margin < cal.threshold).sum() == 0
    # tied margins are cut together: no cut between the two 0.1 entries
    assert len(cal.curve) == 4
