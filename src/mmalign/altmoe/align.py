r"""Alternating one-way alignment of frozen modalities through a connector, from the
`"Alt-MoE: A Scalable Framework for Bidirectional Multimodal Alignment and Efficient Knowledge Integration"
<https://arxiv.org/abs/2409.05929>`_ paper.

Each training step takes a batch of :math:`B` paired objects, asks the
:class:`~mmalign.altmoe.schedule.AlternatingSchedule` for one direction :math:`s \to t`, and minimises

.. math::
    \mathcal L_{s \to t} = \underbrace{\tfrac12\big(\mathrm{CE}(S, I) + \mathrm{CE}(S^\top, I)\big)}_{
        \text{symmetric InfoNCE}}
    + \lambda_{reg}\, \mathrm{SmoothL1}_\beta(\hat y, y)
    + \lambda_{bal}\, \mathcal L_{bal},
    \qquad S_{ij} = \frac{\langle \bar q_i, \bar k_j \rangle}{\tau},

with :math:`q_i` the connector's query for :math:`x^{(s)}_i` in direction :math:`s \to t`, :math:`k_j` the
target key of :math:`y_j = x^{(t)}_j`, bars denoting :math:`\ell_2` normalisation, :math:`\hat y` the
connector's regression of the frozen target embedding (absent for the linear baseline) and
:math:`\mathcal L_{bal}` the router's load-balancing loss. Retrieval in direction :math:`s \to t` ranks all
candidate keys of modality :math:`t` by cosine with the query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from aligncore.contrastive import info_nce, symmetric_info_nce
from aligncore.metrics import hits_at_k, mrr, rank_of_target

from .data import PairSet
from .schedule import AlternatingSchedule

__all__ = ["info_nce", "symmetric_info_nce", "PairDataset", "AltAligner", "RetrievalResult", "retrieval",
           "evaluate_retrieval", "make_evaluator"]


TOKENS = ":tokens"  #: batch key suffix of a modality's :class:`~mmalign.altmoe.connector.TokenBatch`


class PairDataset(Dataset):
    """Rows of a :class:`PairSet` part (``"train"``, ``"val"``, ``"test"``) as ``{modality: Tensor (d_m,)}``.

    :meth:`collate` stacks them into a batch and adds, for each modality with token states, its tokens as a
    :class:`~mmalign.altmoe.connector.TokenBatch` under ``"<modality>:tokens"``."""

    def __init__(self, pairs: PairSet, part: str = "train") -> None:
        if part not in ("train", "val", "test"):
            raise ValueError(f"part must be train, val or test, got {part!r}")
        self.rows = getattr(pairs, part)
        self.mods = {k: v[self.rows] for k, v in pairs.modalities.items()}
        self.tokens = dict(pairs.tokens)

    def __len__(self) -> int:
        return int(self.rows.numel())

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.mods.items()} | ({"_row": self.rows[i]} if self.tokens else {})

    def collate(self, examples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        batch = {k: torch.stack([e[k] for e in examples]) for k in self.mods}
        if self.tokens:
            rows = torch.stack([e["_row"] for e in examples])
            batch.update({k + TOKENS: ts.batch(rows) for k, ts in self.tokens.items()})
        return batch


class AltAligner(nn.Module):
    r"""A connector trained by alternating one-way alignment (the loss in the module docstring).

    ``forward(batch)`` picks the step's direction from :attr:`schedule` and returns
    ``(loss, {"infonce", "reg", "balance", "direction"})``, the form :func:`aligncore.training.fit` expects
    of a loss function (use ``loss_fn=lambda model, batch: model(batch)``).

    Args:
        connector (nn.Module): :class:`~mmalign.altmoe.connector.AltMoEConnector` or a baseline.
        names (list[str]): modality names, in the connector's order (the batch keys).
        schedule (AlternatingSchedule): the direction policy (a submodule: checkpointed with the model).
        tau (float, optional): InfoNCE temperature :math:`\tau`. (default: :obj:`0.05`)
        reg_weight (float, optional): :math:`\lambda_{reg}`. (default: :obj:`1.0`)
        balance_weight (float, optional): :math:`\lambda_{bal}`. (default: :obj:`0.01`)
        smooth_l1_beta (float, optional): :math:`\beta` of the smooth L1 loss. (default: :obj:`1.0`)
    """

    def __init__(self, connector: nn.Module, names: list[str], schedule: AlternatingSchedule, *, tau: float = 0.05,
                 reg_weight: float = 1.0, balance_weight: float = 0.01, smooth_l1_beta: float = 1.0) -> None:
        super().__init__()
        if len(names) < 2:
            raise ValueError(f"needs at least two modality names, got {names}")
        self.connector, self.names, self.schedule = connector, list(names), schedule
        self.tau, self.reg_weight, self.balance_weight, self.beta = tau, reg_weight, balance_weight, smooth_l1_beta

    def direction_loss(self, batch: dict[str, Tensor], s: int, t: int) -> tuple[Tensor, dict[str, float]]:
        """The loss of direction ``s -> t`` on ``batch``."""
        x, y = batch.get(self.names[s] + TOKENS, batch[self.names[s]]), batch[self.names[t]]
        out = self.connector(x, s, t)
        nce = symmetric_info_nce(out.query, self.connector.key(y, t), self.tau)
        reg = F.smooth_l1_loss(out.pred, y, beta=self.beta) if out.pred is not None else torch.zeros_like(nce)
        loss = nce + self.reg_weight * reg + self.balance_weight * out.aux_loss
        return loss, {"infonce": float(nce.detach()), "reg": float(reg.detach()),
                      "balance": float(out.aux_loss.detach())}

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        j = self.schedule.peek()
        s, t = self.schedule.next()
        loss, extra = self.direction_loss(batch, s, t)
        return loss, {**extra, "direction": float(j)}


@dataclass
class RetrievalResult:
    """Retrieval of the paired row in one direction."""

    ranks: Tensor  #: 1-based rank of the true partner of each query, :math:`(N,)`
    recall: dict[int, float]  #: Recall@k (= Hits@k: one true partner per query)
    mrr: float


@torch.no_grad()
def retrieval(query: Tensor, keys: Tensor, *, ks: tuple[int, ...] = (1, 5, 10), chunk: int = 2048) -> RetrievalResult:
    r"""Rank, for every query :math:`i`, the key :math:`i` among all keys by cosine similarity (ties averaged,
    :func:`aligncore.metrics.rank_of_target`), in query chunks so :math:`N \times N` scores never exist at once.

    Shapes:
        - query, keys: :math:`(N, d)`
    """
    if query.shape[0] != keys.shape[0] or query.dim() != 2 or keys.dim() != 2:
        raise ValueError(f"query {tuple(query.shape)} and keys {tuple(keys.shape)} must be (N, d) with equal N")
    q, k = F.normalize(query.float(), dim=-1), F.normalize(keys.float(), dim=-1)
    ranks = []
    for a in range(0, q.shape[0], chunk):
        scores = q[a:a + chunk] @ k.T
        ranks.append(rank_of_target(scores, torch.arange(a, a + scores.shape[0], device=scores.device)).cpu())
    r = torch.cat(ranks)
    return RetrievalResult(r, {kk: hits_at_k(r, kk) for kk in ks}, mrr(r))


@torch.no_grad()
def evaluate_retrieval(connector: nn.Module, pairs: PairSet, part: str = "test",
                       directions: list[tuple[int, int]] | None = None, *, batch_size: int = 4096,
                       device: torch.device | str | None = None) -> dict[tuple[int, int], RetrievalResult]:
    """Retrieval of held-out pairs in each direction (default: every ordered pair of modalities); a source
    modality with token states is read per token (:class:`~mmalign.altmoe.connector.TokenBatch`)."""
    from .schedule import all_directions

    was = connector.training
    connector.eval()
    dev = torch.device(device) if device is not None else next(connector.parameters()).device
    rows = getattr(pairs, part)
    mods = [pairs.modalities[n][rows] for n in pairs.names]

    def source(s: int, a: int):  # a chunk of queries: pooled rows, or their tokens where the set has them
        name = pairs.names[s]
        if name in pairs.tokens:
            return pairs.tokens[name].batch(rows[a:a + batch_size]).to(dev)
        return mods[s][a:a + batch_size].to(dev)

    out = {}
    for s, t in directions or all_directions(len(mods)):
        q = torch.cat([connector(source(s, a), s, t, pred=False).query for a in range(0, len(rows), batch_size)])
        k = torch.cat([connector.key(mods[t][a:a + batch_size].to(dev), t) for a in range(0, len(rows), batch_size)])
        out[(s, t)] = retrieval(q, k)
    connector.train(was)
    return out


def make_evaluator(pairs: PairSet, part: str = "val", *, prefix: str = "val") -> Callable[[nn.Module], dict[str, float]]:
    """An ``evaluate(model)`` for :func:`aligncore.training.fit`: per direction ``{prefix}_{s}->{t}_recall@k``
    and ``_mrr``, plus ``{prefix}_mean_recall@1`` and ``{prefix}_mean_mrr``; it also feeds each direction's
    Recall@1 to the model's schedule (used by the ``"recall"`` policy)."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        res = evaluate_retrieval(model.connector, pairs, part, model.schedule.directions)
        metrics: dict[str, float] = {}
        for (s, t), r in res.items():
            name = f"{prefix}_{pairs.names[s]}->{pairs.names[t]}"
            metrics.update({f"{name}_recall@{k}": v for k, v in r.recall.items()})
            metrics[f"{name}_mrr"] = r.mrr
        metrics[f"{prefix}_mean_recall@1"] = sum(r.recall[1] for r in res.values()) / len(res)
        metrics[f"{prefix}_mean_mrr"] = sum(r.mrr for r in res.values()) / len(res)
        model.schedule.observe([res[d].recall[1] for d in model.schedule.directions])
        return metrics

    return evaluate
