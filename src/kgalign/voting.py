r"""LLM reranking with multi-round voting, from the `"LLM-Align: Utilizing Large Language Models for Entity
Alignment in Knowledge Graphs" <https://arxiv.org/abs/2412.04690>`_ paper (Sec. 3.4).

For each source entity with base-ranked candidates :math:`c_1, \dots, c_k`, round :math:`t = 0, 1, \dots,
R-1` lists the candidates in order :math:`\pi_t` (:math:`\pi_0` the base order, :math:`\pi_1` reversed,
later rounds seeded shuffles that avoid earlier orders), asks the model, and maps its answer back to a
candidate, ``none``, or an abstention. With :math:`v(o)` the votes of option :math:`o` after a round,

.. math::
    \text{stop as soon as}\ \max_o v(o) > R / 2, \qquad
    \hat c = \arg\max_{o} v(o)\ \text{(ties: the candidate of best base rank)}

Abstentions cast no vote. If no vote was cast, or ``none`` wins, the base ranking is kept (the answer is
recorded as ``"none"`` / ``"abstain"``). Otherwise the chosen candidate moves to the top and the others keep
their base order. Rounds of all entities run in lock-step: each round's prompts go to the backend in chunks.

Selective reranking: only entities whose base score margin (first minus second candidate) is below
``margin_threshold`` are sent to the model; the others keep the base ranking.
:func:`calibrate_margin_threshold` picks that threshold from a full (non-selective) run on held-out
entities: sending the :math:`m` lowest-margin entities gains
:math:`G(m) = \sum_{i \le m} (\mathbb 1[\text{LLM right}_i] - \mathbb 1[\text{base right}_i])` correct
top-1 answers over the base model, and the threshold is set just above the margin of the
:math:`m^\star = \arg\max_m G(m)` -th entity (the smallest :math:`m` on ties, :math:`m^\star = 0` when the
model never helps; then nothing is sent and Hits@1 equals the base model's).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from aligncore.config import field

from .backends import Backend
from .inference import Candidates
from .prompt import NONE, EntityView, build_prompt, parse_answer


@dataclass
class VotingConfig:
    """Options of LLM reranking (LLM-Align multi-round voting)."""

    rounds: int = field(3, help="voting rounds R, each with a different candidate order")
    early_stop: bool = field(True, help="stop an entity's voting once one option holds a strict majority of R")
    margin_threshold: float | None = field(None, help="selective mode: only entities whose base score margin "
                                                      "is below this go to the LLM (None: all)")
    order_seed: int = field(0, help="seed of the shuffled candidate orders (rounds >= 3)")
    chunk: int = field(16, help="prompts per backend call (the cache fills and progress shows per chunk)")


def round_order(k: int, t: int, seed: int, key: int = 0) -> list[int]:
    """Candidate order of round ``t``: identity, reversed, then shuffles seeded by ``(seed, key, t)``.

    A shuffle that repeats an earlier round's order is drawn again while unused orders remain (``k! > t``),
    so with few candidates (``k = 3``: 6 orders) the rounds do not re-ask a question already asked. With
    ``k = 2`` only two orders exist and later rounds necessarily repeat one of them.
    """
    orders = [list(range(k)), list(range(k))[::-1]][: t + 1]
    for s in range(2, t + 1):  # each round's draw avoids the orders of the rounds before it, built in turn
        rng = random.Random(hash((seed, key, s)) & 0xFFFFFFFF)
        order = list(range(k))
        rng.shuffle(order)
        if math.factorial(k) > s:  # unused orders remain: redraw a repeat
            for _ in range(64):
                if order not in orders:
                    break
                rng.shuffle(order)
            else:
                order = next(list(p) for p in itertools.permutations(range(k)) if list(p) not in orders)
        orders.append(order)
    return orders[t]


@dataclass
class EntityVote:
    """Votes of one entity: ``answers`` per round (base index, ``"none"`` or ``None``) and the decision."""

    source: int
    orders: list[list[int]] = dc_field(default_factory=list)
    answers: list[int | str | None] = dc_field(default_factory=list)
    choice: int | str | None = None  # base index, "none", or None (abstained)

    def tally(self) -> dict[int | str, int]:
        t: dict[int | str, int] = {}
        for a in self.answers:
            if a is not None:
                t[a] = t.get(a, 0) + 1
        return t


def decide(answers: Sequence[int | str | None]) -> int | str | None:
    """Majority of the non-abstaining answers; ties go to the candidate of best (lowest) base index, and a
    candidate beats ``"none"`` at equal votes. :obj:`None` when every round abstained."""
    t: dict[int | str, int] = {}
    for a in answers:
        if a is not None:
            t[a] = t.get(a, 0) + 1
    if not t:
        return None
    best = max(t.values())
    tied = [o for o, v in t.items() if v == best]
    cands = sorted(o for o in tied if o != NONE)
    return cands[0] if cands else NONE


@dataclass
class RerankResult:
    """Output of :func:`rerank`.

    Attributes:
        candidates: the candidates after reranking (same shape as the input).
        votes: per entity, its :class:`EntityVote` (``None`` for entities skipped by selective mode).
        llm_entities: how many entities went to the model.
        llm_calls: prompts answered (cached ones included), and ``rounds_run`` summed over entities.
        first_option_rate: among the answered rounds that chose a candidate, how often it was the candidate
            listed first in that round's prompt (positional bias).
        seconds: wall time.
    """

    candidates: Candidates
    votes: list[EntityVote | None]
    llm_entities: int
    llm_calls: int
    first_option_rate: float
    none_rate: float
    abstain_rate: float
    seconds: float


def rerank(cands: Candidates, describe: Callable[[int, Sequence[int]], tuple[EntityView, list[EntityView]]],
           backend: Backend, config: VotingConfig | None = None, *, progress: bool = True) -> RerankResult:
    """Rerank ``cands`` with ``backend`` by multi-round voting (see the module docstring).

    Args:
        cands: base candidates (KG2 ids best first) per source entity.
        describe: ``describe(source_id, candidate_ids) -> (source view, candidate views)`` in the given
            candidate order (see :class:`kgalign.llm_align.Describer`).
        backend: the model (wrap it in :class:`~kgalign.backends.CachedBackend` to cache).
        config: voting options.
        progress: show a progress bar over rounds.
    """
    cfg = config or VotingConfig()
    if cfg.rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {cfg.rounds}")
    t0 = time.perf_counter()
    n, k = cands.target.shape
    send = torch.ones(n, dtype=torch.bool)
    if cfg.margin_threshold is not None:
        send = cands.margin() < cfg.margin_threshold
    votes: list[EntityVote | None] = [None] * n
    active = [i for i in range(n) if bool(send[i])]
    for i in active:
        votes[i] = EntityVote(int(cands.source[i]))
    views = {}
    calls = 0
    first = chosen = nones = answered = 0
    bar = tqdm(total=len(active) * cfg.rounds, desc="LLM votes", disable=not progress, leave=False)
    for t in range(cfg.rounds):
        if not active:
            break
        prompts, metas = [], []
        for i in active:
            order = round_order(k, t, cfg.order_seed, int(cands.source[i]))
            if i not in views:
                views[i] = describe(int(cands.source[i]), cands.target[i].tolist())
            src_view, cand_views = views[i]
            prompts.append(build_prompt(src_view, [cand_views[j] for j in order]))
            metas.append((i, order))
        comps = []
        for s in range(0, len(prompts), max(cfg.chunk, 1)):
            comps += backend.complete(prompts[s:s + cfg.chunk])
            bar.set_postfix(round=t + 1, done=len(comps))
        calls += len(prompts)
        still = []
        for (i, order), comp in zip(metas, comps, strict=True):
            ans = parse_answer(comp.text, k)
            v = votes[i]
            assert v is not None
            v.orders.append(order)
            answered += 1
            if isinstance(ans, int):
                chosen += 1
                first += int(ans == 0)
                v.answers.append(order[ans])
            else:
                nones += int(ans == NONE)
                v.answers.append(ans)
            tally = v.tally()
            if cfg.early_stop and tally and max(tally.values()) > cfg.rounds / 2:
                bar.update(cfg.rounds - t)
                continue
            bar.update(1)
            still.append(i)
        active = still
    bar.close()
    target = cands.target.clone()
    score = cands.score.clone()
    for i, v in enumerate(votes):
        if v is None:
            continue
        v.choice = decide(v.answers)
        if isinstance(v.choice, int) and v.choice > 0:
            order = [v.choice] + [j for j in range(k) if j != v.choice]
            target[i] = cands.target[i, order]
            score[i] = cands.score[i, order]
    n_llm = sum(v is not None for v in votes)
    return RerankResult(Candidates(cands.source.clone(), target, score), votes, n_llm, calls,
                        first / chosen if chosen else float("nan"), nones / answered if answered else 0.0,
                        (answered - chosen - nones) / answered if answered else 0.0,
                        time.perf_counter() - t0)


@dataclass
class ThresholdCalibration:
    """Result of :func:`calibrate_margin_threshold`."""

    threshold: float  #: send entities whose margin is below this (``0.0``: send none)
    sent: int  #: calibration entities below the threshold
    base_hits1: float  #: Hits@1 of the base model on the calibration entities
    hits1: float  #: Hits@1 of selective reranking at ``threshold`` on them
    curve: list[tuple[float, float]]  #: (threshold, Hits@1) for every distinct cut, ascending


def calibrate_margin_threshold(margin: Tensor, base_correct: Tensor, llm_correct: Tensor) -> ThresholdCalibration:
    """Choose the selective-mode margin threshold that maximises Hits@1 on calibration entities (see the
    module docstring), given a run that sent every one of them to the model.

    Args:
        margin: base score margin of each entity (:meth:`Candidates.margin`), shape ``(n,)``.
        base_correct: whether the base model's top candidate is right, ``(n,)`` bool.
        llm_correct: whether the top candidate after LLM reranking is right, ``(n,)`` bool.
    """
    margin, base_correct, llm_correct = margin.float().cpu(), base_correct.bool().cpu(), llm_correct.bool().cpu()
    if not (margin.dim() == 1 and margin.shape == base_correct.shape == llm_correct.shape):
        raise ValueError(f"margin, base_correct and llm_correct must be (n,) tensors of one length; got "
                         f"{tuple(margin.shape)}, {tuple(base_correct.shape)}, {tuple(llm_correct.shape)}")
    n = margin.numel()
    if n == 0:
        raise ValueError("no calibration entities")
    order = margin.argsort(stable=True)
    m_sorted = margin[order]
    gain = torch.cat([torch.zeros(1), (llm_correct.float() - base_correct.float())[order].cumsum(0)])
    base = float(base_correct.float().sum())
    # a cut after position m is only possible where the next margin is strictly larger (ties go together)
    rises = ((m_sorted[1:] > m_sorted[:-1]).nonzero().flatten() + 1).tolist()
    cuts = [0] + rises + [n]
    above_all = float(torch.nextafter(m_sorted[-1], torch.tensor(float("inf"))))  # sends every entity

    def threshold_at(m: int) -> float:
        if m == 0:
            return min(0.0, float(m_sorted[0]))  # margin < threshold holds for none
        if m == n:
            return above_all
        return 0.5 * (float(m_sorted[m - 1]) + float(m_sorted[m]))

    curve = [(threshold_at(m), (base + float(gain[m])) / n) for m in cuts]
    best = max(cuts, key=lambda m: (float(gain[m]), -m))
    return ThresholdCalibration(threshold_at(best), best, base / n, (base + float(gain[best])) / n, curve)


def gold_positions(cands: Candidates, gold: Tensor) -> Tensor:
    """Position of the gold target in each candidate list (``-1`` when absent)."""
    hit = cands.target == gold[:, None]
    return torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(gold, -1))
