r"""DAS: one-stage dual-aligned semantic IDs, from the
`"DAS: Dual-Aligned Semantic IDs Empowered Industrial Recommender System" <https://arxiv.org/abs/2508.10584>`_
paper (Ye et al., CIKM 2025; no public code, this file follows the paper's description).

Three parts are trained jointly, in one stage, so the codes themselves carry collaborative signal:

- **UISM** (user and item semantic model): an RQ-VAE per side quantises content embeddings into codes;
  :math:`z_u, z_i` are the quantised latents (straight-through), :math:`\mathcal{L}_{\text{RQ}}` its loss.
- **ICDM** (ID-based CF debias model): ID embeddings :math:`e_u = [e_u^{\text{int}}; e_u^{\text{conf}}]` (interest,
  conformity) and :math:`e_i = [e_i^{\text{con}}; e_i^{\text{pop}}]` (content, popularity), trained with an
  in-batch softmax on interactions; the bias halves regress (standardised log-) popularity for items and the mean
  popularity of a user's items (conformity) for users, and an orthogonality penalty
  :math:`\cos^2(e^{\text{int}}, e^{\text{conf}}) + \cos^2(e^{\text{con}}, e^{\text{pop}})` separates the halves.
  Only the debiased halves :math:`c_u = e_u^{\text{int}}, c_i = e_i^{\text{con}}` enter the alignment.
- **MDAM** (multi-view dual-aligned mechanism): InfoNCE with in-batch negatives and temperature :math:`\tau`,

.. math::
    \mathcal{L}_{\text{NCE}}(q, k) = -\frac{1}{B}\sum_{b=1}^{B} \log
        \frac{\exp(\hat q_b^\top \hat k_b / \tau)}{\sum_{b'} \exp(\hat q_b^\top \hat k_{b'} / \tau)},
    \quad \hat x = x / \lVert x \rVert

  over six views: dual u2i :math:`(z_u, c_i), (z_i, c_u)` on interactions :math:`(u, i)`; dual i2i / u2u
  :math:`(z_i, c_i), (z_u, c_u)`; dual co-occurrence i2i / u2u :math:`(z_i, c_j), (z_u, c_v)` with :math:`j` an item
  next to :math:`i` in a user's history and :math:`v` another user of :math:`i`; plus **dual learning**
  :math:`(z_u, z_i)`, which aligns the user and item quantisations with each other.

  Batches are drawn from interactions, so a user (on MovieLens 85% of the rows of a 1,024 batch) or an item
  reappears within a batch, and on Beauty 63% of the rows share their item's content (hence its :math:`z_i`) with
  another row. With ``dedup_negatives`` (off by default: the benchmark rows were built without it) a key is not a
  negative of a row whose positive pair shares its user, item or item content group
  (:func:`aligncore.contrastive.same_entity`); the CF softmax drops the same user / item duplicates.
  The paper's industrial batches rarely repeat an entity and it does not discuss this.

.. math::
    \mathcal{L} = \mathcal{L}_{\text{RQ}}^{u} + \mathcal{L}_{\text{RQ}}^{i} + \lambda_{\text{cf}}\mathcal{L}_{\text{cf}}
      + \lambda_{\text{deb}}(\mathcal{L}_{\text{pop}} + \mathcal{L}_{\perp})
      + \lambda_{\text{u2i}}\mathcal{L}_{\text{u2i}} + \lambda_{\text{i2i}}\mathcal{L}_{\text{i2i/u2u}}
      + \lambda_{\text{co}}\mathcal{L}_{\text{co}} + \lambda_{\text{dual}}\mathcal{L}_{\text{dual}}

The two-stage baseline uses the same components with ``quantize=False`` (align the continuous latents), then a
plain RQ-VAE on the aligned item latents (see :mod:`mmalign.das.train`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aligncore.config import field
from aligncore.contrastive import drop_negatives, info_nce, same_entity

from .data import item_counts
from .rqvae import RQVAE

LOSS_TERMS = ("recon", "quant", "cf", "pop", "orth", "u2i", "i2i", "co", "dual")


@dataclass
class DASConfig:
    """Model options of DAS and of the RQ-VAE baseline (https://arxiv.org/abs/2508.10584)."""

    n_levels: int = field(3, help="semantic-ID levels L (TIGER uses 3, plus a disambiguation level)")
    n_codes: int = field(256, help="codes per level K (TIGER: 256)")
    latent_dim: int = field(32, help="latent / CF embedding dimension d (TIGER's RQ-VAE: 32)")
    hidden_dim: int = field(128, help="hidden width of the RQ-VAE encoder and decoder MLPs")
    beta: float = field(0.25, help="commitment weight beta (TIGER: 0.25)")
    restart_after: int = field(50, help="restart a code unused for this many training steps (0: never)")
    tau: float = field(0.1, help="InfoNCE temperature of the MDAM alignments")
    tau_cf: float = field(0.1, help="temperature of the in-batch softmax of the CF model")
    w_cf: float = field(1.0, help="weight of the CF (interaction) loss")
    w_debias: float = field(0.1, help="weight of the debias losses (popularity regression + orthogonality)")
    w_u2i: float = field(0.5, help="weight of the dual u2i alignment")
    w_i2i: float = field(0.5, help="weight of the dual i2i / u2u alignment")
    w_co: float = field(0.5, help="weight of the dual co-occurrence i2i / u2u alignment")
    w_dual: float = field(0.5, help="weight of the dual learning (user quantisation vs item quantisation)")
    dedup_negatives: bool = field(False, help="drop in-batch negatives that share the positive pair's user, item "
                                  "or item content (interaction batches repeat them); off by default until measured "
                                  "by a retriever run: every benchmark row was built without it")


def orthogonality(a: Tensor, b: Tensor) -> Tensor:
    r"""Mean squared cosine :math:`\frac{1}{B}\sum_b \cos^2(a_b, b_b)`; zero iff every pair is orthogonal."""
    return (F.cosine_similarity(a, b, dim=-1, eps=1e-8) ** 2).mean()


@dataclass
class DebiasSplit:
    """The ICDM split of ID embeddings: debiased and bias halves, each :math:`(B, d)`."""

    debiased: Tensor
    bias: Tensor


@dataclass
class DASOutput:
    """Total (weighted) loss of one batch and each of its terms, unweighted."""

    loss: Tensor
    terms: dict[str, Tensor]


def popularity_targets(train: list[list[int]], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised :math:`\\log(1 + \\text{count})` per item and the mean over each user's items (conformity)."""
    lp = np.log1p(item_counts(train, n_items).astype(np.float64))
    lp = (lp - lp.mean()) / max(lp.std(), 1e-12)
    conf = np.array([lp[s].mean() for s in train])
    conf = (conf - conf.mean()) / max(conf.std(), 1e-12)
    return lp.astype(np.float32), conf.astype(np.float32)


class DAS(nn.Module):
    r"""DAS: user and item RQ-VAEs trained jointly with a debiased CF model and multi-view contrastive alignment.

    Args:
        item_content (Tensor): item content embeddings :math:`(I, D)`.
        user_content (Tensor): user content embeddings :math:`(U, D_u)` (mean of their training items).
        item_pop (Tensor): standardised log-popularity per item :math:`(I,)`.
        user_conf (Tensor): standardised conformity per user :math:`(U,)`.
        config (DASConfig): model options.
        quantize (bool, optional): :obj:`False` aligns the continuous latents (two-stage baseline, stage 1).
            (default: :obj:`True`)

    Shapes:
        - batch: dict of long tensors ``u, i, j, v`` of shape :math:`(B,)`: an interaction :math:`(u, i)`, an item
          :math:`j` co-occurring with :math:`i`, a user :math:`v` who also interacted with :math:`i`.
    """

    def __init__(self, item_content: Tensor, user_content: Tensor, item_pop: Tensor, user_conf: Tensor,
                 config: DASConfig, *, quantize: bool = True):
        super().__init__()
        cfg = self.config = config
        d = cfg.latent_dim
        self.register_buffer("item_x", item_content.float())
        self.register_buffer("user_x", user_content.float())
        self.register_buffer("item_pop", item_pop.float())
        self.register_buffer("user_conf", user_conf.float())
        kw = dict(hidden=[cfg.hidden_dim], beta=cfg.beta, restart_after=cfg.restart_after, quantize=quantize)
        self.item_rq = RQVAE(item_content.shape[1], d, cfg.n_levels, cfg.n_codes, **kw)
        self.user_rq = RQVAE(user_content.shape[1], d, cfg.n_levels, cfg.n_codes, **kw)
        self.item_cf = nn.Embedding(item_content.shape[0], 2 * d)
        self.user_cf = nn.Embedding(user_content.shape[0], 2 * d)
        nn.init.normal_(self.item_cf.weight, std=0.1)
        nn.init.normal_(self.user_cf.weight, std=0.1)
        self.pop_head = nn.Linear(d, 1)
        self.conf_head = nn.Linear(d, 1)
        # items with identical content get identical quantisations: one group id per distinct content row
        self.register_buffer("item_group", torch.unique(self.item_x, dim=0, return_inverse=True)[1], persistent=False)

    @torch.no_grad()
    def init_codebooks(self, *, seed: int = 0) -> None:
        """k-means initialisation of both quantisers on all item / user content."""
        self.item_rq.init_codebooks(self.item_x, seed=seed)
        self.user_rq.init_codebooks(self.user_x, seed=seed)

    def split(self, emb: Tensor) -> DebiasSplit:
        """ICDM split of :math:`(B, 2d)` ID embeddings into debiased and bias halves."""
        d = self.config.latent_dim
        if emb.shape[-1] != 2 * d:
            raise ValueError(f"split: embeddings must have last dimension {2 * d}, got {tuple(emb.shape)}")
        return DebiasSplit(emb[..., :d], emb[..., d:])

    def forward(self, batch: dict[str, Tensor]) -> DASOutput:
        cfg = self.config
        u, i, j, v = batch["u"], batch["i"], batch["j"], batch["v"]
        # UISM: quantise user and item content (one forward over the users / items of the batch)
        qi = self.item_rq(self.item_x[i])
        qu = self.user_rq(self.user_x[u])
        zi, zu = qi.quantized, qu.quantized
        # ICDM: CF embeddings split into debiased and bias halves
        eu, ei = self.user_cf(u), self.item_cf(i)
        su, si = self.split(eu), self.split(ei)
        cj, cv = self.split(self.item_cf(j)).debiased, self.split(self.user_cf(v)).debiased
        target = torch.arange(u.shape[0], device=u.device)
        m_ui = m_gu = m_g = m_u = m_gj = m_uv = m_ug = None
        if cfg.dedup_negatives:
            g = self.item_group[i]
            m_ui = same_entity(u, i)
            m_gu, m_g, m_u = same_entity(g, u), same_entity(g), same_entity(u)
            m_gj, m_uv, m_ug = same_entity(g, j), same_entity(u, v), same_entity(u, g)
        terms = {
            "recon": qi.recon_loss + qu.recon_loss,
            "quant": qi.quant_loss + qu.quant_loss,
            "cf": F.cross_entropy(drop_negatives(eu @ ei.T / cfg.tau_cf, m_ui), target),
            "pop": F.mse_loss(self.pop_head(si.bias).squeeze(-1), self.item_pop[i])
            + F.mse_loss(self.conf_head(su.bias).squeeze(-1), self.user_conf[u]),
            "orth": orthogonality(su.debiased, su.bias) + orthogonality(si.debiased, si.bias),
            # MDAM: dual u2i, dual i2i / u2u, dual co-occurrence i2i / u2u, dual learning
            "u2i": info_nce(zu, si.debiased, cfg.tau, exclude=m_ui)
            + info_nce(zi, su.debiased, cfg.tau, exclude=m_gu),
            "i2i": info_nce(zi, si.debiased, cfg.tau, exclude=m_g) + info_nce(zu, su.debiased, cfg.tau, exclude=m_u),
            "co": info_nce(zi, cj, cfg.tau, exclude=m_gj) + info_nce(zu, cv, cfg.tau, exclude=m_uv),
            "dual": info_nce(zu, zi, cfg.tau, exclude=m_ug),
        }
        loss = (terms["recon"] + terms["quant"] + cfg.w_cf * terms["cf"]
                + cfg.w_debias * (terms["pop"] + terms["orth"]) + cfg.w_u2i * terms["u2i"]
                + cfg.w_i2i * terms["i2i"] + cfg.w_co * terms["co"] + cfg.w_dual * terms["dual"])
        return DASOutput(loss, terms)

    @torch.no_grad()
    def item_codes(self) -> Tensor:
        """Semantic codes of every item, :math:`(I, L)` (without the disambiguation level)."""
        return self.item_rq.semantic_codes(self.item_x)

    @torch.no_grad()
    def user_codes(self) -> Tensor:
        """Semantic codes of every user, :math:`(U, L)`."""
        return self.user_rq.semantic_codes(self.user_x)

    @torch.no_grad()
    def item_latents(self) -> Tensor:
        """Encoder latents of every item, :math:`(I, d)` (the two-stage baseline quantises these)."""
        return self.item_rq.latent(self.item_x)


class InteractionDataset(torch.utils.data.Dataset):
    """Training tuples ``(u, i, j, v)`` for :class:`DAS`: every training interaction :math:`(u, i)`, the item
    :math:`j` next to :math:`i` in :math:`u`'s history, and a co-user :math:`v` of :math:`i` drawn once with
    :obj:`seed` (another user when one exists).

    Args:
        users, items, co_items (np.ndarray): from :func:`mmalign.das.data.interactions`.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, co_items: np.ndarray, *, seed: int = 0):
        if not len(users) == len(items) == len(co_items):
            raise ValueError("users, items and co_items must have the same length")
        rng = np.random.default_rng(seed)
        order = np.argsort(items, kind="stable")
        starts = np.searchsorted(items[order], items)
        ends = np.searchsorted(items[order], items, side="right")
        pick = starts + (rng.random(len(items)) * (ends - starts)).astype(np.int64)
        co_users = users[order][np.minimum(pick, ends - 1)]
        # where the draw hit u itself, take the neighbour in the item's user list (wraps around)
        same = (co_users == users) & (ends - starts > 1)
        nb = np.where(pick + 1 < ends, pick + 1, starts)
        co_users = np.where(same, users[order][nb], co_users)
        self.t = torch.from_numpy(np.stack([users, items, co_items, co_users], 1).astype(np.int64))

    def __len__(self) -> int:
        return self.t.shape[0]

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        row = self.t[k]
        return {"u": row[0], "i": row[1], "j": row[2], "v": row[3]}
