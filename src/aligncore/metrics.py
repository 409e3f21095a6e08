r"""Ranking and regression metrics, vectorised over a leading batch of queries.

Ranking conventions (documented once, used everywhere):

- Ranks are 1-based. The rank of a target among candidate scores (higher is better) is
  ``1 + #{better} + tie_share`` where ``tie_share`` depends on ``ties``: ``"optimistic"`` counts no tied
  candidate above the target, ``"pessimistic"`` counts all of them, ``"average"`` (the default) counts half
  of them, i.e. the expected rank under a random order of the ties. Hits@k is ``rank <= k``, MRR the mean
  of ``1 / rank``.
- Top-k lists (recall@k, NDCG@k) sort by score, breaking ties by the lower column index first, so results
  are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_TIES = ("average", "optimistic", "pessimistic")


def rank_of_target(scores: Tensor, target: Tensor, *, ties: str = "average") -> Tensor:
    r"""1-based rank of the target column of each row of :obj:`scores` (higher score is better).

    Args:
        scores (Tensor): candidate scores, shape :math:`(N, C)`.
        target (Tensor): index of the correct candidate per row, shape :math:`(N,)`.
        ties (str, optional): ``"average"``, ``"optimistic"`` or ``"pessimistic"``. (default: ``"average"``)

    Returns:
        Tensor: ranks, float, shape :math:`(N,)`.

    Raises:
        ValueError: on NaN scores (infinite ones are fine).
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {_TIES}, got {ties!r}")
    if scores.dim() != 2:
        raise ValueError(f"scores must have shape (N, C), got {tuple(scores.shape)}")
    target = torch.as_tensor(target, device=scores.device).long()
    if target.shape != (scores.shape[0],):
        raise ValueError(f"target must have shape ({scores.shape[0]},), got {tuple(target.shape)}")
    if bool(((target < 0) | (target >= scores.shape[1])).any()):
        raise ValueError(f"target indices must lie in [0, {scores.shape[1]})")
    if bool(torch.isnan(scores).any()):  # NaN compares false with everything: a NaN target would rank first
        raise ValueError("scores contain NaN; ranks are undefined (+-inf is allowed, e.g. for masked candidates)")
    t = scores.gather(1, target[:, None])
    better = (scores > t).sum(dim=1).to(torch.float64)
    tied = (scores == t).sum(dim=1).to(torch.float64) - 1.0
    share = {"average": 0.5, "optimistic": 0.0, "pessimistic": 1.0}[ties]
    return 1.0 + better + share * tied


def hits_at_k(ranks: Tensor, k: int) -> float:
    """Share of queries whose target rank is at most ``k``."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    return float((ranks <= k).double().mean())


def mrr(ranks: Tensor) -> float:
    """Mean reciprocal rank."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    if bool((ranks < 1).any()):
        raise ValueError("ranks are 1-based and must be >= 1")
    return float((1.0 / ranks).mean())


def _topk(scores: Tensor, k: int) -> Tensor:
    if scores.dim() != 2:
        raise ValueError(f"scores must have shape (N, C), got {tuple(scores.shape)}")
    if not 1 <= k:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, scores.shape[1])
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return order[:, :k]


def recall_at_k(scores: Tensor, relevant: Tensor, k: int) -> float:
    r"""Mean over queries of :math:`|\text{top-}k \cap R| / |R|`; queries with no relevant item are skipped.

    Shapes: scores, relevant (bool or 0/1): :math:`(N, C)`.
    """
    rel = relevant.to(torch.bool)
    if rel.shape != scores.shape:
        raise ValueError(f"relevant {tuple(rel.shape)} must match scores {tuple(scores.shape)}")
    top = _topk(scores, k)
    hit = rel.gather(1, top).sum(dim=1).double()
    n_rel = rel.sum(dim=1).double()
    keep = n_rel > 0
    if not bool(keep.any()):
        raise ValueError("no query has a relevant item")
    return float((hit[keep] / n_rel[keep]).mean())


def ndcg_at_k(scores: Tensor, relevance: Tensor, k: int) -> float:
    r"""Normalised discounted cumulative gain at ``k`` with linear gains,
    :math:`\mathrm{DCG@k} = \sum_{i=1}^{k} rel_i / \log_2(i + 1)`, divided by the DCG of the ideal order;
    queries with no relevant item are skipped.

    Shapes: scores, relevance (graded, non-negative): :math:`(N, C)`.
    """
    rel = relevance.to(torch.float64)
    if rel.shape != scores.shape:
        raise ValueError(f"relevance {tuple(rel.shape)} must match scores {tuple(scores.shape)}")
    top = _topk(scores, k)
    kk = top.shape[1]
    disc = 1.0 / torch.log2(torch.arange(2, kk + 2, dtype=torch.float64, device=scores.device))
    dcg = (rel.gather(1, top) * disc).sum(dim=1)
    ideal = torch.sort(rel, dim=1, descending=True).values[:, :kk]
    idcg = (ideal * disc).sum(dim=1)
    keep = idcg > 0
    if not bool(keep.any()):
        raise ValueError("no query has a relevant item")
    return float((dcg[keep] / idcg[keep]).mean())


def ndcg_single(ranks: Tensor, k: int) -> float:
    r"""NDCG@k for one relevant item per query given its 1-based rank: :math:`1/\log_2(r+1)` if :math:`r \le k`."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    gain = torch.where(ranks <= k, 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
    return float(gain.mean())


@dataclass(frozen=True)
class PairedHits:
    r"""Hits@k of two systems :math:`a, b` scored on the same queries.

    Attributes:
        diff (float): :math:`\text{Hits@k}(a) - \text{Hits@k}(b)`.
        se (float): paired standard error of :obj:`diff`, :math:`\operatorname{sd}(h^a - h^b) / \sqrt{n}`
            (sample sd); smaller than the unpaired one when the systems hit the same queries.
        n (int): queries.
        a_only (int): queries only :math:`a` hits.
        b_only (int): queries only :math:`b` hits.
        p_value (float): exact two-sided McNemar test of equal hit rates: a binomial test of
            :obj:`a_only` among the :obj:`a_only` + :obj:`b_only` discordant queries at 1/2 (1 when none).
    """

    diff: float
    se: float
    n: int
    a_only: int
    b_only: int
    p_value: float


def paired_hits(ranks_a: Tensor, ranks_b: Tensor, k: int) -> PairedHits:
    """Compare Hits@k of two systems on the same queries (1-based ranks, :obj:`inf` for a miss), query by
    query: the paired difference, its standard error and the exact McNemar p-value."""
    a = torch.as_tensor(ranks_a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(ranks_b, dtype=torch.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired_hits: both systems must rank the same queries, got {a.numel()} and {b.numel()}")
    n = a.numel()
    if n < 2:
        raise ValueError(f"paired_hits needs at least 2 queries, got {n}")
    ha, hb = (a <= k).double(), (b <= k).double()
    d = ha - hb
    a_only, b_only = int((d > 0).sum()), int((d < 0).sum())
    return PairedHits(float(d.mean()), float(d.std(unbiased=True)) / math.sqrt(n), n, a_only, b_only,
                      mcnemar_exact(a_only, b_only))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts: a binomial test of :obj:`a_only` among the
    :obj:`a_only` + :obj:`b_only` discordant queries at 1/2 (1 when there are none).

    Summing the discordant counts of several independent matched samples (strata) and testing the sums is the
    exact conditional test that no stratum favours either system (the Mantel-Haenszel test for matched pairs).
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"mcnemar_exact: counts must be non-negative, got {a_only} and {b_only}")
    m, disc = min(a_only, b_only), a_only + b_only
    if disc == 0:
        return 1.0
    # exact binomial tail in integers: P(X <= m) for X ~ Bin(disc, 1/2), doubled (the law is symmetric)
    return min(1.0, 2 * sum(math.comb(disc, i) for i in range(m + 1)) / 2 ** disc)


@dataclass(frozen=True)
class PairedRunsHits:
    r"""Hits@k of two systems :math:`a, b`, each trained once per seed and scored on the same queries.

    With :math:`d_{sq} = h^a_{sq} - h^b_{sq}` the hit difference of seed :math:`s` on query :math:`q`
    (:math:`S` seeds, :math:`Q` queries):

    Attributes:
        diff (float): :math:`\bar d`, the mean over seeds and queries.
        se_seed (float): the seed-to-seed noise at these queries: sd over seeds of the per-seed
            differences :math:`\bar d_{s\cdot}`, over :math:`\sqrt S` (0 with one seed).
        se_query (float): the test-sampling noise at these training runs: sd over queries of the
            seed-averaged differences :math:`\bar d_{\cdot q}`, over :math:`\sqrt Q`.
        se_both (float): both at once: the sd of :math:`\bar d` over a bootstrap that redraws seeds and queries
            (each with replacement, independently), the noise a new set of seeds on a new test sample would see.
            Conservative: the seed-by-query residual enters through the seeds, the queries and the cells, so
            with no seed or query effect it reads :math:`\sqrt 3` times the true SE (the pigeonhole bootstrap,
            Owen 2007, Ann. Appl. Stat. 1(2)).
        seeds (int): :math:`S`.
        n (int): :math:`Q`.
    """

    diff: float
    se_seed: float
    se_query: float
    se_both: float
    seeds: int
    n: int


def paired_runs_hits(ranks_a: Tensor, ranks_b: Tensor, k: int, *, n_boot: int = 2000,
                     seed: int = 0) -> PairedRunsHits:
    """Compare Hits@k of two systems run with the same seeds on the same queries (1-based ranks, one row per
    seed, row :math:`s` of both from seed :math:`s`): the mean difference and its standard error from the seeds,
    from the queries, and from both (a two-way bootstrap, ``n_boot`` draws, generator seeded by ``seed``).

    Shapes:
        - ranks_a, ranks_b: :math:`(S, Q)`
    """
    a = torch.as_tensor(ranks_a, dtype=torch.float64)
    b = torch.as_tensor(ranks_b, dtype=torch.float64)
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"paired_runs_hits: ranks must be (seeds, queries) of one shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    s, q = a.shape
    if q < 2:
        raise ValueError(f"paired_runs_hits needs at least 2 queries, got {q}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    d = (a <= k).double() - (b <= k).double()
    per_seed, per_query = d.mean(1), d.mean(0)
    se_seed = float(per_seed.std(unbiased=True)) / math.sqrt(s) if s > 1 else 0.0
    se_query = float(per_query.std(unbiased=True)) / math.sqrt(q)
    g = torch.Generator().manual_seed(seed)
    boot = torch.empty(n_boot, dtype=torch.float64)
    for i in range(n_boot):  # mean of d over redrawn seeds x redrawn queries = w_s^T d w_q / (S Q)
        ws = torch.bincount(torch.randint(s, (s,), generator=g), minlength=s).double()
        wq = torch.bincount(torch.randint(q, (q,), generator=g), minlength=q).double()
        boot[i] = ws @ (d @ wq) / (s * q)
    return PairedRunsHits(float(d.mean()), se_seed, se_query, float(boot.std(unbiased=True)), s, q)


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    pred = torch.as_tensor(pred).to(torch.float64)
    target = torch.as_tensor(target).to(device=pred.device, dtype=torch.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    if pred.numel() == 0:
        raise ValueError("pred and target are empty")
    return pred, target


def mse(pred: Tensor, target: Tensor) -> float:
    """Mean squared error."""
    p, t = _pair(pred, target)
    return float(((p - t) ** 2).mean())


def mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute error."""
    p, t = _pair(pred, target)
    return float((p - t).abs().mean())


def rmse(pred: Tensor, target: Tensor) -> float:
    """Root mean squared error."""
    return math.sqrt(mse(pred, target))


def _rankdata(x: Tensor) -> Tensor:
    """Average ranks (1-based) along the last dimension, ties sharing the mean of their positions."""
    order = torch.argsort(x, dim=-1, stable=True)
    xs = torch.gather(x, -1, order)
    n = x.shape[-1]
    pos = torch.arange(1, n + 1, dtype=torch.float64, device=x.device).expand_as(xs)
    # group consecutive equal values: a new group starts where the sorted value changes
    new = torch.ones_like(xs, dtype=torch.bool)
    new[..., 1:] = xs[..., 1:] != xs[..., :-1]
    gid = torch.cumsum(new.long(), dim=-1) - 1
    sums = torch.zeros_like(pos).scatter_add_(-1, gid, pos)
    cnts = torch.zeros_like(pos).scatter_add_(-1, gid, torch.ones_like(pos))
    avg = torch.gather(sums / cnts.clamp(min=1), -1, gid)
    return torch.empty_like(avg).scatter_(-1, order, avg)


def spearman_rho(x: Tensor, y: Tensor) -> Tensor:
    r"""Spearman's rank correlation along the last dimension: Pearson correlation of average ranks (ties get
    the mean rank, as :func:`scipy.stats.spearmanr`). NaN where either input is constant.

    Shapes: x, y: :math:`(..., n)`; output :math:`(...)`.
    """
    x, y = _pair(x, y)
    rx, ry = _rankdata(x), _rankdata(y)
    rx = rx - rx.mean(dim=-1, keepdim=True)
    ry = ry - ry.mean(dim=-1, keepdim=True)
    return (rx * ry).sum(-1) / torch.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))


def kendall_tau(x: Tensor, y: Tensor, *, chunk: int = 2048) -> Tensor:
    r"""Kendall's :math:`\tau_b` along the last dimension (ties corrected, as :func:`scipy.stats.kendalltau`):

    .. math::
        \tau_b = \frac{n_c - n_d}{\sqrt{(n_0 - n_1)(n_0 - n_2)}}

    with :math:`n_0 = n(n-1)/2`, :math:`n_1`, :math:`n_2` the pairs tied in :math:`x` and in :math:`y`.
    Computed from all pairs in row chunks (:math:`O(n^2)` time, :math:`O(\text{chunk} \cdot n)` memory).
    NaN where either input is constant.

    Shapes: x, y: :math:`(..., n)`; output :math:`(...)`.
    """
    x, y = _pair(x, y)
    n = x.shape[-1]
    s = torch.zeros(x.shape[:-1], dtype=torch.float64, device=x.device)
    tx = torch.zeros_like(s)
    ty = torch.zeros_like(s)
    for i0 in range(0, n, chunk):
        xi, yi = x[..., i0:i0 + chunk, None], y[..., i0:i0 + chunk, None]
        dx = torch.sign(xi - x[..., None, :])
        dy = torch.sign(yi - y[..., None, :])
        s = s + (dx * dy).sum(dim=(-1, -2))
        tx = tx + (dx == 0).sum(dim=(-1, -2))
        ty = ty + (dy == 0).sum(dim=(-1, -2))
    # every ordered pair counted twice, and the diagonal counted as a tie in both
    n0 = n * (n - 1) / 2.0
    n1 = (tx - n) / 2.0
    n2 = (ty - n) / 2.0
    return (s / 2.0) / torch.sqrt((n0 - n1) * (n0 - n2))
