r"""The embedding base model of LLM-Align: scores every (source, target) pair and proposes candidates.

Views, each a cosine-similarity matrix between the query entities of KG1 and the candidate targets of KG2:

* ``name``: character n-gram TF-IDF of the names (:class:`~kgalign.names.CharNgramTfidf`), exact sparse
  cosine;
* ``hop1``, ``hop2``: the same name vectors (randomly projected to ``proj_dim``) averaged over 1- and 2-hop
  neighbourhoods (:func:`~kgalign.structure.propagate`): "do the neighbours have matching names?";
* ``anchor1``, ``anchor2``: one random vector per seed link, shared by both of its entities, propagated the
  same way: "are the neighbours linked by the seed alignment?";
* ``structure``: the seed-trained encoder (:class:`~kgalign.structure.LinearAligner` over the propagated
  features, or :class:`~kgalign.structure.GCNAlignEncoder`), trained with :func:`aligncore.training.fit`.

The fused score is the weighted sum :math:`S = \sum_v w_v S_v`, followed by CSLS or by Sinkhorn
(:func:`aligncore.ot.sinkhorn`) for one-to-one matching. Targets already used by a training link are
excluded from the candidate set by default (they are known to belong to a training entity); every other
KG2 entity is ranked, not only the test targets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from aligncore.config import field
from aligncore.training import TrainConfig

from .data import EADataset
from .inference import Candidates, csls, ranking_metrics, sinkhorn_scores, top_candidates
from .names import CharNgramTfidf, NameEncoderConfig, sparse_similarity
from .structure import (
    StructureConfig,
    joint_graph,
    normalized_adjacency,
    propagate,
    train_linear,
    train_structure,
)


@dataclass
class CandidateConfig:
    """Options of the embedding base model (view weights, structure encoder, inference)."""

    proj_dim: int = field(512, help="random-projection width of the name vectors before propagation")
    w_name: float = field(1.0, help="weight of the exact name similarity")
    w_hop1: float = field(1.0, help="weight of the 1-hop neighbour-name similarity")
    w_hop2: float = field(0.5, help="weight of the 2-hop neighbour-name similarity")
    w_anchor1: float = field(0.5, help="weight of the 1-hop seed-anchor similarity")
    w_anchor2: float = field(0.25, help="weight of the 2-hop seed-anchor similarity")
    structure: str = field("linear", help="seed-trained structure encoder", choices=["linear", "gcn", "none"])
    w_structure: float = field(0.5, help="weight of the trained structure encoder's similarity")
    inference: str = field("sinkhorn", help="how fused scores are turned into rankings",
                           choices=["cosine", "csls", "sinkhorn"])
    csls_k: int = field(10, help="neighbourhood size of CSLS (https://arxiv.org/abs/1710.04087)")
    sinkhorn_eps: float = field(0.05, help="entropic regulariser of the Sinkhorn matching")
    sinkhorn_iter: int = field(10, help="Sinkhorn iterations")
    exclude_train_targets: bool = field(True, help="drop KG2 entities of training links from the candidates")
    proj_seed: int = field(0, help="seed of the random projections and anchors")


@dataclass
class StructureTrainConfig(TrainConfig):
    """:class:`aligncore.training.TrainConfig` with the defaults of the structure encoder (a batch is a set
    of seed links)."""

    out_dir: str = field("runs/kgalign", help="folder for the structure encoder's checkpoints and metrics")
    max_epochs: int = field(15, help="passes over the seed links")
    batch_size: int = field(1500, help="seed links per batch")
    lr: float = field(2e-3, help="learning rate of AdamW")
    resume: bool = field(False, help="continue from out_dir/last.pt when it exists")
    restore_best: bool = field(False, help="load the best weights when training ends (needs validation)")
    progress: bool = field(False, help="show a progress bar per epoch")


@dataclass
class BaseModelResult:
    """Scores of the base model for a set of query entities.

    Attributes:
        source: query KG1 ids, ``(n,)``.
        target_ids: KG2 ids of the score columns, ``(m,)``.
        scores: final scores (after CSLS / Sinkhorn), ``(n, m)``.
        fused: fused similarity before inference, ``(n, m)``.
        seconds: wall time per stage.
    """

    source: Tensor
    target_ids: Tensor
    scores: Tensor
    fused: Tensor
    seconds: dict[str, float] = dc_field(default_factory=dict)

    def candidates(self, k: int) -> Candidates:
        return top_candidates(self.scores, self.source, k, self.target_ids)

    def metrics(self, gold: Tensor) -> dict[str, float]:
        """Hits@1, Hits@10, MRR of ``gold`` KG2 ids (``(n,)``) among all candidate targets; a gold
        entity outside ``target_ids`` raises."""
        pos = torch.full((int(self.target_ids.max()) + 1,), -1, dtype=torch.long)
        pos[self.target_ids] = torch.arange(len(self.target_ids))
        col = pos[gold]
        if bool((col < 0).any()):
            raise ValueError("some gold targets are not among the candidate targets")
        return ranking_metrics(self.scores, col)


class EmbeddingAligner:
    """Fit the views on a dataset, then score query entities. See the module docstring for the views.

    Args:
        config (CandidateConfig, optional): options. (default: :obj:`CandidateConfig()`)
        name_config (NameEncoderConfig, optional): n-gram options. (default: :obj:`NameEncoderConfig()`)
        train_config (TrainConfig, optional): loop options of the structure encoder.
            (default: :obj:`StructureTrainConfig()`)
    """

    def __init__(self, config: CandidateConfig | None = None, name_config: NameEncoderConfig | None = None,
                 train_config: TrainConfig | None = None) -> None:
        self.config = config or CandidateConfig()
        self.name_config = name_config or NameEncoderConfig()
        self.train_config = train_config
        self.seconds: dict[str, float] = {}

    def fit(self, data: EADataset) -> EmbeddingAligner:
        """Encode names, propagate over both graphs and train the structure encoder on the seed links."""
        c = self.config
        self.data = data
        n1, n2 = data.kg1.num_entities, data.kg2.num_entities
        t0 = time.perf_counter()
        enc = CharNgramTfidf(self.name_config).fit(data.kg1.names + data.kg2.names)
        self.x1, self.x2 = enc.transform(data.kg1.names), enc.transform(data.kg2.names)
        self.seconds["names"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rng = np.random.default_rng(c.proj_seed)
        x = sp.vstack([self.x1, self.x2]).tocsr()
        proj = rng.standard_normal((x.shape[1], c.proj_dim)).astype(np.float32) / np.sqrt(c.proj_dim)
        names = torch.from_numpy(np.asarray(x @ proj, dtype=np.float32))
        anchors = torch.zeros(n1 + n2, c.proj_dim)
        seeds = torch.from_numpy(rng.standard_normal((len(data.train_links), c.proj_dim)).astype(np.float32))
        anchors[data.train_links[:, 0]] = seeds
        anchors[data.train_links[:, 1] + n1] = seeds
        self.adjacency = normalized_adjacency(joint_graph(data), n1 + n2)
        hn = propagate(names, self.adjacency, 2)
        ha = propagate(anchors, self.adjacency, 2)
        self.views = {"hop1": hn[1], "hop2": hn[2], "anchor1": ha[1], "anchor2": ha[2]}
        self.seconds["propagation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.structure_fit = None
        if c.structure == "linear":
            feats = torch.cat([hn[1], hn[2], ha[1], ha[2]], dim=1)
            tcfg = self.train_config or StructureTrainConfig()
            e1, e2, self.structure_fit = train_linear(data, feats, train_config=tcfg)
            self.views["structure"] = torch.cat([e1, e2])
        elif c.structure == "gcn":
            tcfg = self.train_config or StructureTrainConfig(lr=1e-2)
            res = train_structure(data, StructureConfig(), tcfg, adjacency=self.adjacency)
            self.structure_fit = res.fit
            self.views["structure"] = torch.cat([res.emb1, res.emb2])
        self.seconds["structure"] = time.perf_counter() - t0
        return self

    def target_ids(self) -> Tensor:
        n2 = self.data.kg2.num_entities
        keep = torch.ones(n2, dtype=torch.bool)
        if self.config.exclude_train_targets:
            keep[self.data.train_links[:, 1]] = False
        return keep.nonzero().squeeze(1)

    def fused_similarity(self, source: Tensor, targets: Tensor) -> Tensor:
        """:math:`\\sum_v w_v S_v` for ``source`` KG1 ids against ``targets`` KG2 ids."""
        c = self.config
        n1 = self.data.kg1.num_entities
        s = c.w_name * sparse_similarity(self.x1, self.x2[targets.numpy()], source.numpy())
        weights = {"hop1": c.w_hop1, "hop2": c.w_hop2, "anchor1": c.w_anchor1, "anchor2": c.w_anchor2,
                   "structure": c.w_structure}
        for name, h in self.views.items():
            w = weights[name]
            if w:
                s.addmm_(h[source], h[targets + n1].t(), alpha=w)
        return s

    def score(self, source: Tensor, inference: str | None = None) -> BaseModelResult:
        """Fused scores of ``source`` KG1 ids against every candidate target, then CSLS or Sinkhorn."""
        c = self.config
        mode = inference or c.inference
        t0 = time.perf_counter()
        targets = self.target_ids()
        fused = self.fused_similarity(source, targets)
        t1 = time.perf_counter()
        if mode == "cosine":
            scores = fused
        elif mode == "csls":
            scores = csls(fused, c.csls_k)
        elif mode == "sinkhorn":
            scores = sinkhorn_scores(fused / fused.max(), eps=c.sinkhorn_eps, n_iter=c.sinkhorn_iter)
        else:
            raise ValueError(f"inference must be cosine, csls or sinkhorn, got {mode!r}")
        t2 = time.perf_counter()
        return BaseModelResult(source, targets, scores, fused,
                               {**self.seconds, "similarity": t1 - t0, "inference": t2 - t1})
