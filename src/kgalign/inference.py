"""Inference on similarity matrices: CSLS, one-to-one matching by Sinkhorn or Hungarian, top-k candidates,
and the ranking metrics of entity alignment."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aligncore.metrics import hits_at_k, mrr, rank_of_target
from aligncore.ot import hungarian, sinkhorn


def csls(sim: Tensor, k: int = 10, *, chunk: int = 4096) -> Tensor:
    r"""Cross-domain similarity local scaling, from the `"Word Translation Without Parallel Data"
    <https://arxiv.org/abs/1710.04087>`_ paper (Eq. 6), which penalises hubs:

    .. math::
        \mathrm{CSLS}(x_i, y_j) = 2 s_{ij} - r_T(x_i) - r_S(y_j), \qquad
        r_T(x_i) = \frac{1}{k}\sum_{y \in \mathcal{N}_T(x_i)} s(x_i, y), \quad
        r_S(y_j) = \frac{1}{k}\sum_{x \in \mathcal{N}_S(y_j)} s(x, y_j)

    with the :math:`k` nearest neighbours taken within ``sim`` (rows: the query entities, columns: all
    candidate targets).

    Args:
        sim (Tensor): similarities, shape :math:`(n, m)`.
        k (int, optional): neighbourhood size. (default: :obj:`10`)

    Returns:
        Tensor: CSLS scores, shape :math:`(n, m)`.
    """
    if sim.dim() != 2:
        raise ValueError(f"sim must have shape (n, m), got {tuple(sim.shape)}")
    kr, kc = min(k, sim.shape[1]), min(k, sim.shape[0])
    r_rows = sim.topk(kr, dim=1).values.mean(1)
    r_cols = sim.topk(kc, dim=0).values.mean(0)
    out = torch.empty_like(sim)
    for s in range(0, sim.shape[0], chunk):
        out[s:s + chunk] = 2 * sim[s:s + chunk] - r_rows[s:s + chunk, None] - r_cols[None]
    return out


def sinkhorn_scores(sim: Tensor, *, eps: float = 0.02, n_iter: int = 30) -> Tensor:
    r"""Soft one-to-one matching scores: the entropic optimal transport plan between the rows and the
    columns of ``sim`` with uniform marginals (:func:`aligncore.ot.sinkhorn` with cost :math:`-S`), as in
    `"From Alignment to Assignment" <https://arxiv.org/abs/2109.02363>`_ (SEU) and LightEA:

    .. math::
        P^\star = \arg\max_{P \in U(\frac{1}{n} 1_n, \frac{1}{m} 1_m)} \langle P, S \rangle + \varepsilon H(P)

    Small :math:`\varepsilon` approaches the Hungarian assignment on square problems; the plan is then
    used as a score matrix (each row ranked by its plan entries).

    Args:
        sim (Tensor): similarities, shape :math:`(n, m)`.
        eps (float, optional): entropic regulariser. (default: :obj:`0.02`)
        n_iter (int, optional): Sinkhorn iterations (fixed count, no convergence checks). (default: :obj:`30`)

    Returns:
        Tensor: ``n * plan``, shape :math:`(n, m)` (rows sum to one).
    """
    n, m = sim.shape
    res = sinkhorn(-sim, eps=eps, max_iter=n_iter, tol=0.0)
    return res.plan * n


def hungarian_match(sim: Tensor) -> Tensor:
    """Exact one-to-one assignment maximising the total similarity (:func:`aligncore.ot.hungarian`).

    Returns:
        Tensor: for each row, the matched column (``-1`` for unmatched rows when ``n > m``), shape ``(n,)``.
    """
    x = hungarian(sim, maximize=True)
    has = x.sum(1) > 0
    return torch.where(has, x.argmax(1), torch.full_like(has, -1, dtype=torch.long))


@dataclass
class Candidates:
    """Top-k candidate targets per query entity.

    Attributes:
        source: query entity ids (KG1), shape ``(n,)``.
        target: candidate KG2 ids, best first, shape ``(n, k)``.
        score: their scores, shape ``(n, k)``.
    """

    source: Tensor
    target: Tensor
    score: Tensor

    def __len__(self) -> int:
        return len(self.source)

    def margin(self) -> Tensor:
        """Score gap between the first and second candidate, shape ``(n,)`` (``inf`` with one candidate)."""
        if self.score.shape[1] < 2:
            return torch.full((len(self),), float("inf"))
        return self.score[:, 0] - self.score[:, 1]


def top_candidates(scores: Tensor, source: Tensor, k: int, target_ids: Tensor | None = None) -> Candidates:
    """The ``k`` best columns of each row of ``scores``; ``target_ids`` maps columns to KG2 ids."""
    k = min(k, scores.shape[1])
    val, idx = scores.topk(k, dim=1)
    if target_ids is not None:
        idx = target_ids[idx]
    return Candidates(source.clone(), idx, val)


def ranking_metrics(scores: Tensor, target_col: Tensor) -> dict[str, float]:
    """Hits@1, Hits@10 and MRR of the correct column in each row (ties counted at their average rank)."""
    ranks = rank_of_target(scores, target_col)
    return {"hits@1": hits_at_k(ranks, 1), "hits@10": hits_at_k(ranks, 10), "mrr": mrr(ranks)}


def candidate_metrics(pred: Tensor, gold: Tensor) -> dict[str, float]:
    """Metrics of ranked candidate lists: ``pred (n, k)`` KG2 ids best first, ``gold (n,)``.
    A gold entity outside the list counts as rank infinity (reciprocal rank 0)."""
    hit = pred == gold[:, None]
    found = hit.any(1)
    rank = torch.where(found, hit.float().argmax(1) + 1.0, torch.full_like(gold, 0, dtype=torch.float))
    rr = torch.where(found, 1.0 / rank.clamp(min=1), torch.zeros_like(rank))
    k = pred.shape[1]
    return {"hits@1": float((found & (rank == 1)).float().mean()),
            f"hits@{min(10, k)}": float((found & (rank <= 10)).float().mean()),
            "mrr": float(rr.mean())}
