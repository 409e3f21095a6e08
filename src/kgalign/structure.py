"""Structure encoder trained on the seed links (GCN-Align style), plus the training-free propagation of
entity features over both graphs that the candidate generator fuses with it.

Both knowledge graphs live in one graph: KG2's entity ids are shifted by ``n1``; relations are treated as
undirected edges. Training goes through :func:`aligncore.training.fit` (the one loop): the dataset is the
seed links, a batch is a set of links, and the loss runs the full-graph encoder once per batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from aligncore.config import field
from aligncore.training import FitResult, TrainConfig, fit, seed_everything, unwrap

from .data import EADataset


@dataclass
class StructureConfig:
    """Options of the GCN-Align-style structure encoder and its loss."""

    ent_dim: int = field(128, help="dimension of the free (learned) entity embeddings")
    num_layers: int = field(2, help="graph convolution layers; the output concatenates all layers")
    dropout: float = field(0.2, help="dropout on the input embeddings")
    tau: float = field(0.05, help="temperature of the contrastive seed-link loss")
    negatives: int = field(4096, help="random negative entities per batch, besides the in-batch ones")


class LinkDataset(Dataset):
    """The seed links as a dataset of ``(kg1_id, kg2_id)`` rows (KG2 ids not shifted)."""

    def __init__(self, links: Tensor) -> None:
        if links.dim() != 2 or links.shape[1] != 2:
            raise ValueError(f"links must have shape (k, 2), got {tuple(links.shape)}")
        self.links = links.long()

    def __len__(self) -> int:
        return len(self.links)

    def __getitem__(self, i: int) -> Tensor:
        return self.links[i]


def joint_graph(data: EADataset) -> Tensor:
    """Undirected edges of both KGs in one id space (KG2 entities offset by ``n1``), shape ``(2, 2T)``."""
    n1 = data.kg1.num_entities
    t2 = data.kg2.triples.clone()
    t2[:, [0, 2]] += n1
    t = torch.cat([data.kg1.triples, t2])
    return torch.stack([torch.cat([t[:, 0], t[:, 2]]), torch.cat([t[:, 2], t[:, 0]])])


def propagate(x: Tensor, adjacency: Tensor, hops: int) -> list[Tensor]:
    r"""Training-free propagation :math:`[X, \hat A X, \dots, \hat A^K X]`, each hop L2-normalised row-wise
    (SGC-style; with name vectors as :math:`X` this is the neighbourhood-name view of SEU / LightEA)."""
    out = [F.normalize(x, dim=-1)]
    for _ in range(hops):
        out.append(F.normalize(torch.sparse.mm(adjacency, out[-1]), dim=-1))
    return out


def normalized_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Row-normalised binary adjacency :math:`\hat A = D^{-1} A` (duplicates merged, no self-loops) as a
    sparse COO tensor; :math:`(\hat A X)_i` is the mean of :math:`X` over the neighbours of :math:`i`."""
    a = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.shape[1]), (num_nodes, num_nodes),
                                check_invariants=False).coalesce()
    idx = a.indices()
    deg = torch.zeros(num_nodes).index_add_(0, idx[0], torch.ones(idx.shape[1])).clamp(min=1)
    return torch.sparse_coo_tensor(idx, 1.0 / deg[idx[0]], (num_nodes, num_nodes),
                                   check_invariants=False).coalesce()


class GCNAlignEncoder(nn.Module):
    r"""Structure encoder in the manner of GCN-Align, from the `"Cross-lingual Knowledge Graph Alignment via
    Graph Convolutional Networks" <https://aclanthology.org/D18-1032/>`_ paper: free entity embeddings
    :math:`H^0` (one table for both KGs) passed through :math:`L` graph convolutions over the joint graph,
    every layer's output kept (as in RREA and Dual-AMN, which concatenate layers):

    .. math::
        H^{l+1} = \tanh\big(\hat A H^l W_l\big) + H^l, \qquad
        h_i = \big[\, h_i^0 \,\|\, h_i^1 \,\|\, \dots \,\|\, h_i^L \big] / \|\cdot\|_2

    with :math:`\hat A` the row-normalised adjacency of both KGs (relations undirected, inverse edges added)
    and :math:`W_l` initialised to the identity. Each layer is one sparse-dense product over the joint graph
    (on DBP15K: 39k entities, 330k directed edges). Every training step runs the full graph forward and
    backward, which took seconds per step on the shared 2-core CPU used here; :class:`LinearAligner` (the
    default of :class:`~kgalign.candidates.EmbeddingAligner`) is the cheaper choice there.

    Args:
        num_entities (int): entities of both KGs together.
        adjacency (Tensor): sparse :math:`\hat A`, shape :math:`(N, N)` (see :func:`normalized_adjacency`).
        config (StructureConfig): sizes and dropout.

    Shapes:
        - output: :math:`(N, (L + 1) \cdot d)`, L2-normalised rows.
    """

    def __init__(self, num_entities: int, adjacency: Tensor, config: StructureConfig) -> None:
        super().__init__()
        self.config = config
        self.ent = nn.Embedding(num_entities, config.ent_dim)
        nn.init.normal_(self.ent.weight, std=config.ent_dim ** -0.5)
        self.layers = nn.ModuleList(nn.Linear(config.ent_dim, config.ent_dim, bias=False)
                                    for _ in range(config.num_layers))
        for lin in self.layers:
            nn.init.eye_(lin.weight)
        self.register_buffer("adjacency", adjacency.coalesce())

    def forward(self) -> Tensor:
        h = F.dropout(self.ent.weight, self.config.dropout, self.training)
        outs = [F.normalize(h, dim=-1)]
        for lin in self.layers:
            h = torch.tanh(_spmm(self.adjacency, lin(h))) + h
            outs.append(F.normalize(h, dim=-1))
        return F.normalize(torch.cat(outs, dim=-1), dim=-1)


def _spmm(adjacency: Tensor, x: Tensor) -> Tensor:
    """``adjacency @ x`` in float32 with autocast off: CUDA has no bf16 sparse matmul (``addmm_sparse_cuda``), and
    under ``fit``'s autocast the dense operand arrives in bf16."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.sparse.mm(adjacency, x.float())


def alignment_loss(emb: Tensor, left: Tensor, right: Tensor, negatives: Tensor, *, tau: float) -> Tensor:
    r"""Symmetric contrastive loss over seed links (InfoNCE with in-batch and sampled negatives):

    .. math::
        \mathcal{L} = -\frac{1}{2B}\sum_{(a, b)} \Big[\log \frac{e^{s(a, b)/\tau}}{\sum_{b' \in \mathcal{C}_R}
        e^{s(a, b')/\tau}} + \log \frac{e^{s(a, b)/\tau}}{\sum_{a' \in \mathcal{C}_L} e^{s(a', b)/\tau}}\Big]

    where :math:`s` is the cosine similarity, :math:`\mathcal{C}_R` the batch's right entities plus
    ``negatives`` and :math:`\mathcal{C}_L` the batch's left entities plus ``negatives``.

    Shapes:
        - emb: :math:`(N, d)` normalised; left, right: :math:`(B,)` global ids; negatives: :math:`(M,)`
    """
    a, b = emb[left], emb[right]
    neg = emb[negatives]
    target = torch.arange(len(left), device=emb.device)
    logits_ab = torch.cat([a @ b.t(), a @ neg.t()], dim=1) / tau
    logits_ba = torch.cat([b @ a.t(), b @ neg.t()], dim=1) / tau
    return 0.5 * (F.cross_entropy(logits_ab, target) + F.cross_entropy(logits_ba, target))


class LinearAligner(nn.Module):
    r"""A linear map trained on the seed links over fixed, propagated features (the SGC simplification of a
    graph convolution, `"Simplifying Graph Convolutional Networks" <https://arxiv.org/abs/1902.07153>`_):

    .. math::
        z_i = \frac{W x_i}{\|W x_i\|_2}, \qquad x_i = \big[\hat A X \,\|\, \hat A^2 X \,\|\, \dots\big]_i

    All the graph work happens once (:func:`propagate`); a training step touches only the rows of the
    batch and its negatives, so it trains in seconds on a CPU.

    Args:
        in_dim (int): feature width.
        out_dim (int): embedding width.
        features (Tensor): fixed features of KG1 then KG2 entities, :math:`(N, \text{in\_dim})`.
    """

    def __init__(self, in_dim: int, out_dim: int, features: Tensor) -> None:
        super().__init__()
        if features.dim() != 2 or features.shape[1] != in_dim:
            raise ValueError(f"features must have shape (N, {in_dim}), got {tuple(features.shape)}")
        self.proj = nn.Linear(in_dim, out_dim, bias=False)
        self.register_buffer("features", features.float())

    def forward(self, index: Tensor | None = None) -> Tensor:
        x = self.features if index is None else self.features[index]
        return F.normalize(self.proj(x), dim=-1)


def train_linear(data: EADataset, features: Tensor, *, out_dim: int = 256, tau: float = 0.05,
                 negatives: int = 4096, train_config: TrainConfig | None = None) -> tuple[Tensor, Tensor, FitResult]:
    """Train :class:`LinearAligner` on ``data.train_links`` with :func:`aligncore.training.fit`.

    Returns:
        ``(emb1 (n1, out_dim), emb2 (n2, out_dim), FitResult)``, rows L2-normalised.
    """
    n1 = data.kg1.num_entities
    n = features.shape[0]
    tcfg = train_config or TrainConfig(max_epochs=30, batch_size=1500, lr=2e-3, progress=False,
                                       out_dir="runs/kgalign-linear", resume=False, restore_best=False)
    seed_everything(tcfg.seed)  # the initial weights depend on the seed too, not only the training
    model = LinearAligner(features.shape[1], out_dim, features)

    def loss_fn(m: nn.Module, batch: Tensor) -> Tensor:
        neg = torch.randint(0, n, (negatives,), device=batch.device)
        ids = torch.cat([batch[:, 0], batch[:, 1] + n1, neg])
        z = m(ids)
        b = len(batch)
        local = torch.arange(len(ids), device=batch.device)
        return alignment_loss(z, local[:b], local[b:2 * b], local[2 * b:], tau=tau)

    res = fit(model, LinkDataset(data.train_links), loss_fn=loss_fn, config=tcfg,
              run_info={"method": "linear aligner over propagated features", "dataset": data.name})
    model.eval()
    with torch.no_grad():
        z = model().cpu()
    return z[:n1], z[n1:], res


@dataclass
class StructureResult:
    """A trained structure encoder and the embeddings of both KGs."""

    model: GCNAlignEncoder
    emb1: Tensor
    emb2: Tensor
    fit: FitResult


def train_structure(data: EADataset, config: StructureConfig | None = None,
                    train_config: TrainConfig | None = None, *, adjacency: Tensor | None = None,
                    evaluate_links: Tensor | None = None, train_links: Tensor | None = None) -> StructureResult:
    """Train :class:`GCNAlignEncoder` on the seed links with :func:`aligncore.training.fit`.

    Args:
        data: the dataset.
        config: encoder and loss options. (default: :obj:`StructureConfig()`)
        train_config: loop options; ``batch_size`` counts links. (default: 100 epochs, batch 1500, lr 1e-2)
        adjacency: the joint :math:`\\hat A`; built from ``data`` when :obj:`None`.
        evaluate_links: links for the ``val_hits@1`` monitor (ranked against all KG2 entities); when
            :obj:`None`, nothing is evaluated and the last weights are kept.
        train_links: the links to train on. (default: ``data.train_links``)

    Returns:
        :class:`StructureResult` with L2-normalised ``emb1 (n1, D)`` and ``emb2 (n2, D)``.
    """
    cfg = config or StructureConfig()
    tcfg = train_config or TrainConfig(max_epochs=100, batch_size=1500, lr=1e-2, progress=False,
                                       out_dir="runs/kgalign-structure", resume=False)
    if evaluate_links is None:
        tcfg = dataclasses.replace(tcfg, restore_best=False)
    n1, n2 = data.kg1.num_entities, data.kg2.num_entities
    if adjacency is None:
        adjacency = normalized_adjacency(joint_graph(data), n1 + n2)
    seed_everything(tcfg.seed)  # the initial weights depend on the seed too, not only the training
    model = GCNAlignEncoder(n1 + n2, adjacency, cfg)
    links = data.train_links if train_links is None else train_links

    def loss_fn(m: nn.Module, batch: Tensor) -> Tensor:
        emb = m()
        left, right = batch[:, 0], batch[:, 1] + n1
        neg = torch.randint(0, n1 + n2, (cfg.negatives,), device=batch.device)
        return alignment_loss(emb, left, right, neg, tau=cfg.tau)

    evaluate = None
    if evaluate_links is not None and len(evaluate_links):
        def evaluate(m: nn.Module) -> dict[str, float]:
            emb = unwrap(m)()
            s = emb[evaluate_links[:, 0].to(emb.device)] @ emb[n1:].t()
            t = s.gather(1, evaluate_links[:, 1:2].to(emb.device))
            return {"val_hits@1": float(((s > t).sum(1) == 0).float().mean())}
    res = fit(model, LinkDataset(links), loss_fn=loss_fn, config=tcfg, evaluate=evaluate,
              run_info={"method": "GCN-Align-style structure encoder", "dataset": data.name,
                        "structure": dataclasses.asdict(cfg)})
    model.eval()
    with torch.no_grad():
        emb = model().cpu()
    return StructureResult(model, emb[:n1], emb[n1:], res)
