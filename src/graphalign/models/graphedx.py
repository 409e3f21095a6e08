r"""GraphEdX, from the `"Graph Edit Distance with General Costs Using Neural Set Divergence"
<https://arxiv.org/abs/2409.17687>`_ paper (Jain et al., NeurIPS 2024; reference code github.com/structlearning/GraphEdX).

GED with costs :math:`c^V_{\mathrm{del}}, c^V_{\mathrm{ins}}, c^E_{\mathrm{del}}, c^E_{\mathrm{ins}}` is a quadratic
assignment over node permutations :math:`P` of the two graphs padded to a common size; GraphEdX replaces each of its
four terms by a *neural set divergence* between embeddings aligned by a learned soft permutation:

.. math::
    \widehat{\mathrm{GED}}(G \to G') = \Delta^E_{c^E}(R, R' \mid S) + \lambda\, \Delta^V_{c^V}(X, X' \mid P)
    \;[\, + c_{\mathrm{sub}} \tfrac12 \textstyle\sum_{u, u'} P_{uu'} \|\ell_u - \ell'_{u'}\|_1 \,]

Pipeline, top to bottom in :meth:`GraphEdX.compute`:

1. **Node embeddings** :math:`X, X' \in \mathbb{R}^{N \times d}`: a GMN message-passing encoder
   (:class:`~graphalign.models.encoder.GMNEncoder`), node features from labels when present; padded with zero rows.
2. **Node-pair embeddings for all pairs, edges and non-edges alike**:
   :math:`r(u, v) = \mathrm{MLP}([x_u, x_v, a_{uv}]) + \mathrm{MLP}([x_v, x_u, a_{uv}])`, symmetric in :math:`u, v`;
   :math:`R \in \mathbb{R}^{N(N-1)/2 \times D}`.
3. **Node alignment** (PermNet): :math:`P = \mathrm{GumbelSinkhorn}(-\|\phi(x_u) - \phi(x'_{u'})\|_1 / \tau)` by
   :func:`aligncore.ot.gumbel_sinkhorn` over the padded pair; the **edge alignment is derived from it** so the two are
   consistent: :math:`S[(u,v),(u',v')] = P_{uu'} P_{vv'} + P_{uv'} P_{vu'}`.
4. **Set divergences**, each selectable for nodes and for edges (``node_variant`` / ``edge_variant``), with
   :math:`\rho_{c}(z) = c_{\mathrm{del}} [z]_+ + c_{\mathrm{ins}} [-z]_+` summed over coordinates:

   - ``"AD"`` AlignDiff: :math:`\rho_c(X - P X')` (align, then take differences),
   - ``"DA"`` DiffAlign: :math:`\sum_{u,u'} P_{uu'} \rho_c(x_u - x'_{u'})` (differences of all pairs, weighted by the
     alignment),
   - ``"XOR"`` XOR-DiffAlign: DiffAlign restricted to pairs whose presence differs: for edges
     :math:`a_{uv} \oplus a'_{u'v'}`, for nodes :math:`[u \text{ real}] \oplus [u' \text{ real}]`.

   The paper's best combination, and the default here, is XOR-DiffAlign on edges and AlignDiff on nodes.

Design choices of this implementation (beyond the reference code):

- Each pair is padded to :math:`m = \max(n, n')` nodes: the mask of :func:`aligncore.ot.gumbel_sinkhorn` cuts the
  rest of the batch padding (the Gumbel noise is drawn here, once for both directions), so the prediction does not
  depend on how much a batch is padded. (Padding to
  :math:`\max(n, n')` suffices whenever relabelling costs no more than deleting and inserting.)
- ``symmetric=True`` (default) makes the predictor exactly consistent with :meth:`EditCosts.swapped`: the alignment of
  :math:`(G', G)` is the transpose of that of :math:`(G, G')` (average of the Sinkhorn plans of
  :math:`L` and :math:`L^\top`), and AlignDiff averages its two directions
  :math:`\rho_c(X - P X')` and :math:`\rho_{c'}(X' - P^\top X)`, which are equal when :math:`P` is a permutation.
  So :math:`\widehat{\mathrm{GED}}_c(G \to G') = \widehat{\mathrm{GED}}_{c'}(G' \to G)` holds exactly.
- :math:`\rho_c` is evaluated as :math:`\tfrac{c_{\mathrm{del}} + c_{\mathrm{ins}}}2 \|z\|_1 + \tfrac{c_{\mathrm{del}}
  - c_{\mathrm{ins}}}2 \mathbf{1}^\top z` (the same value), so DiffAlign needs an :math:`L_1` distance matrix and
  a rank-one term instead of a :math:`(B, E, E, D)` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aligncore.config import field
from aligncore.ot import gumbel_sinkhorn, sample_gumbel

from ..costs import EditCosts
from .base import GEDModel
from .batch import PairBatch
from .encoder import GMNEncoder

__all__ = ["GraphEdXConfig", "GraphEdXOutput", "GraphEdX", "align_diff", "diff_align", "pair_alignment"]

VARIANTS = ("AD", "DA", "XOR")


@dataclass
class GraphEdXConfig:
    """Hyper-parameters of :class:`GraphEdX` (defaults from the reference scripts, arXiv 2409.17687)."""

    node_dim: int = field(10, help="node embedding size d (GraphEdX: filters_3 = 10)")
    prop_steps: int = field(5, help="message-passing steps of the shared GMN layer (GraphEdX: 5)")
    edge_dim: int = field(20, help="node-pair embedding size D of r(u, v) (GraphEdX: 2 d)")
    perm_dim: int = field(20, help="width of PermNet's MLP phi (GraphEdX: the max node count)")
    tau: float = field(0.01, help="Gumbel-Sinkhorn temperature (GraphEdX: sinkhorn_temp = 0.01)")
    sinkhorn_iters: int = field(20, help="Sinkhorn iterations (GraphEdX: 20)")
    noise_factor: float = field(0.0, help="Gumbel noise scale in training; none in eval (GraphEdX: 0)")
    node_variant: str = field("AD", help="node set divergence: AD AlignDiff, DA DiffAlign, XOR XOR-DiffAlign",
                              choices=list(VARIANTS))
    edge_variant: str = field("XOR", help="edge set divergence: AD AlignDiff, DA DiffAlign, XOR XOR-DiffAlign",
                              choices=list(VARIANTS))
    node_weight: float = field(1.0, help="weight lambda of the node terms (GraphEdX: LAMBDA in {0.1, 1})")
    symmetric: bool = field(True, help="exact swap symmetry: transpose-averaged Sinkhorn plan and two-way AlignDiff")


@dataclass
class GraphEdXOutput:
    """What :meth:`GraphEdX.compute` returns (all :math:`(B,)` except ``plan``).

    Attributes:
        ged: the prediction ``edge_cost + node_weight * node_cost + label_cost``.
        plan: soft node alignment :math:`P`, :math:`(B, N, N)`; row :math:`u \\ge n_1` (column :math:`u' \\ge n_2`) below
            :math:`m = \\max(n_1, n_2)` is a dummy node (deletion / insertion); zero beyond :math:`m`.
        node_cost, edge_cost, label_cost: the terms.
    """

    ged: Tensor
    plan: Tensor
    node_cost: Tensor
    edge_cost: Tensor
    label_cost: Tensor


def _rho_weights(c_del: Tensor, c_ins: Tensor) -> tuple[Tensor, Tensor]:
    return (c_del + c_ins) / 2, (c_del - c_ins) / 2


def align_diff(X: Tensor, Xp: Tensor, P: Tensor, c_del: Tensor, c_ins: Tensor, *, symmetric: bool = True) -> Tensor:
    r"""AlignDiff :math:`\sum \rho_c(X - P X')` (with ``symmetric``, the mean with :math:`\sum \rho_{c'}(X' - P^\top X)`).

    Shapes: X, Xp: :math:`(B, N, D)`; P: :math:`(B, N, N)`; output :math:`(B,)`.
    """
    a, b = _rho_weights(c_del, c_ins)
    z = X - P @ Xp
    out = a * z.abs().sum((-1, -2)) + b * z.sum((-1, -2))
    if symmetric:
        zt = Xp - P.transpose(-1, -2) @ X  # reverse direction: deletions of G' cost c_ins, insertions c_del
        out = 0.5 * (out + a * zt.abs().sum((-1, -2)) - b * zt.sum((-1, -2)))
    return out


def diff_align(X: Tensor, Xp: Tensor, W: Tensor, c_del: Tensor, c_ins: Tensor) -> Tensor:
    r"""DiffAlign :math:`\sum_{u,u'} W_{uu'} \rho_c(x_u - x'_{u'})` (XOR-DiffAlign: :math:`W = P \odot` XOR mask).

    Shapes: X, Xp: :math:`(B, N, D)`; W: :math:`(B, N, N)`; output :math:`(B,)`.
    """
    a, b = _rho_weights(c_del, c_ins)
    dist = torch.cdist(X, Xp, p=1)  # (B, N, N) sum_k |x_uk - x'_u'k|
    lin = X.sum(-1).unsqueeze(-1) - Xp.sum(-1).unsqueeze(-2)  # (B, N, N) sum_k (x_uk - x'_u'k)
    return (W * (a * dist + b * lin)).sum((-1, -2))


def pair_alignment(P: Tensor) -> tuple[Tensor, Tensor]:
    r"""The node-pair alignment consistent with a node alignment :math:`P`:
    :math:`S[(u,v),(u',v')] = P_{uu'} P_{vv'} + P_{uv'} P_{vu'}` over the pairs :math:`u < v` (a permutation
    :math:`P` gives the permutation of unordered pairs it induces).

    Shapes: P: :math:`(B, N, N)`; returns S: :math:`(B, E, E)` and the pairs :math:`(E, 2)`, :math:`E = N(N-1)/2`.
    """
    N = P.shape[-1]
    iu = torch.triu_indices(N, N, 1, device=P.device).T
    u, v = iu[:, 0], iu[:, 1]
    Pu, Pv = P[:, u], P[:, v]  # (B, E, N): rows of the first / second end point
    S = Pu[:, :, u] * Pv[:, :, v] + Pu[:, :, v] * Pv[:, :, u]
    return S, iu


class GraphEdX(GEDModel):
    r"""The GraphEdX GED estimator (see the module docstring for the model, top to bottom).

    Args:
        config (GraphEdXConfig, optional): hyper-parameters. (default: :obj:`GraphEdXConfig()`)
        costs (EditCosts, optional): the edit costs it predicts for (buffer ``cost_vector``). (default: UNIT)
        node_label (str, optional): node attribute with labels; adds the relabel term. (default: :obj:`None`)
        label_vocab (list, optional): vocabulary of the one-hot node features. (default: :obj:`None`)

    Shapes:
        - input: :class:`~graphalign.models.PairBatch` of :math:`B` pairs padded to :math:`N` nodes
        - output: :math:`(B,)` predicted :math:`\mathrm{GED}(G_1 \to G_2)`
    """

    def __init__(self, config: GraphEdXConfig | None = None, costs: EditCosts | None = None,
                 node_label: str | None = None, label_vocab: Sequence[str] | None = None) -> None:
        super().__init__(costs, node_label, label_vocab)
        cfg = config or GraphEdXConfig()
        for name in ("node_variant", "edge_variant"):
            if getattr(cfg, name) not in VARIANTS:
                raise ValueError(f"GraphEdXConfig.{name} must be one of {VARIANTS}, got {getattr(cfg, name)!r}")
        if not cfg.tau > 0:
            raise ValueError(f"GraphEdXConfig.tau must be > 0, got {cfg.tau}")
        self.config = cfg
        d, D = cfg.node_dim, cfg.edge_dim
        self.encoder = GMNEncoder(self.in_dim, d, 2 * d, cfg.prop_steps)
        self.pair_mlp = nn.Sequential(nn.Linear(2 * d + 1, D), nn.ReLU(), nn.Linear(D, D))  # r(u, v), step 2
        self.perm_mlp = nn.Sequential(nn.Linear(d, cfg.perm_dim), nn.ReLU(), nn.Linear(cfg.perm_dim, cfg.perm_dim))

    # ---- steps 2 and 3 -----------------------------------------------------------------------------------------

    def pair_embeddings(self, X: Tensor, adj: Tensor, iu: Tensor) -> Tensor:
        """:math:`r(u, v)` for the pairs ``iu`` (E, 2) with u < v: :math:`(B, E, D)`, symmetric in u, v."""
        xu, xv = X[:, iu[:, 0]], X[:, iu[:, 1]]
        a = adj[:, iu[:, 0], iu[:, 1]].unsqueeze(-1)
        return self.pair_mlp(torch.cat([xu, xv, a], -1)) + self.pair_mlp(torch.cat([xv, xu, a], -1))

    def node_plan(self, X1: Tensor, X2: Tensor, valid: Tensor) -> Tensor:
        """Soft node alignment :math:`P` (B, N, N) of the padded pairs; ``valid`` (B, N) marks the first max(n1, n2)."""
        cfg = self.config
        log_alpha = -torch.cdist(self.perm_mlp(X1), self.perm_mlp(X2), p=1)
        if self.training and cfg.noise_factor > 0:
            log_alpha = log_alpha + cfg.noise_factor * sample_gumbel(log_alpha.shape, device=log_alpha.device,
                                                                     dtype=log_alpha.dtype)
        if not cfg.symmetric:
            return gumbel_sinkhorn(log_alpha, tau=cfg.tau, noise_factor=0.0, n_iter=cfg.sinkhorn_iters, mask=valid)
        B = X1.shape[0]
        both = gumbel_sinkhorn(torch.cat([log_alpha, log_alpha.transpose(1, 2)]), tau=cfg.tau, noise_factor=0.0,
                               n_iter=cfg.sinkhorn_iters, mask=torch.cat([valid, valid]))
        return 0.5 * (both[:B] + both[B:].transpose(1, 2))

    # ---- the whole model ---------------------------------------------------------------------------------------

    def compute(self, batch: PairBatch) -> GraphEdXOutput:
        cfg = self.config
        B, N, _ = batch.x1.shape
        c = self.cost_vector.to(batch.x1.dtype)
        node_del, node_ins, edge_del, edge_ins, node_sub = c.unbind()
        mask1, mask2 = batch.mask1, batch.mask2
        ar = torch.arange(N, device=batch.n1.device)
        # the pair's padded size m = max(n1, n2) (a 1 x 1 dummy block for two empty graphs)
        valid = ar < torch.maximum(batch.n1, batch.n2).clamp(min=1)[:, None]

        # 1. node embeddings, both graphs in one pass (zero rows on padding)
        H = self.encoder(torch.cat([batch.x1, batch.x2]), torch.cat([batch.adj1, batch.adj2]),
                         torch.cat([mask1, mask2]))
        X1, X2 = H[:B], H[B:]

        # 3. node alignment P and the consistent node-pair alignment S
        P = self.node_plan(X1, X2, valid)
        S, iu = pair_alignment(P)
        u, v = iu[:, 0], iu[:, 1]

        # 4a. node terms
        if cfg.node_variant == "AD":
            node_cost = align_diff(X1, X2, P, node_del, node_ins, symmetric=cfg.symmetric)
        else:
            W = P
            if cfg.node_variant == "XOR":
                W = P * (mask1[:, :, None] ^ mask2[:, None, :]).to(P.dtype)
            node_cost = diff_align(X1, X2, W, node_del, node_ins)

        # 2 + 4b. node-pair embeddings and edge terms
        R1 = self.pair_embeddings(X1, batch.adj1, iu)
        R2 = self.pair_embeddings(X2, batch.adj2, iu)
        if cfg.edge_variant == "AD":
            pair_ok = valid[:, v].unsqueeze(-1).to(R1.dtype)  # pairs inside the pair's m x m block
            edge_cost = align_diff(R1 * pair_ok, R2 * pair_ok, S, edge_del, edge_ins, symmetric=cfg.symmetric)
        else:
            W = S
            if cfg.edge_variant == "XOR":
                a1 = batch.adj1[:, u, v] > 0
                a2 = batch.adj2[:, u, v] > 0
                W = S * (a1[:, :, None] ^ a2[:, None, :]).to(S.dtype)
            edge_cost = diff_align(R1, R2, W, edge_del, edge_ins)

        # relabelling (labelled graphs): c_sub * 1/2 ||l_u - l'_u'||_1 = c_sub [labels differ], real-real pairs only
        if self.labelled:
            both_real = (mask1[:, :, None] & mask2[:, None, :]).to(P.dtype)
            label_cost = node_sub * 0.5 * (P * both_real * torch.cdist(batch.x1, batch.x2, p=1)).sum((-1, -2))
        else:
            label_cost = torch.zeros_like(node_cost)
        ged = edge_cost + cfg.node_weight * node_cost + label_cost
        return GraphEdXOutput(ged, P, node_cost, edge_cost, label_cost)

    def forward(self, batch: PairBatch) -> Tensor:
        return self.compute(batch).ged

    @torch.no_grad()
    def alignment(self, batch: PairBatch) -> Tensor:
        """The soft node alignment :math:`P` (eval mode), :math:`(B, N, N)`."""
        was = self.training
        self.eval()
        try:
            return self.compute(batch).plan
        finally:
            self.train(was)
