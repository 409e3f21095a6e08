r"""The Alt-MoE connector: one shared mixture-of-experts that maps any modality's frozen latents toward any
other's, conditioned on the direction, from the `"Alt-MoE: A Scalable Framework for Bidirectional Multimodal
Alignment and Efficient Knowledge Integration" <https://arxiv.org/abs/2409.05929>`_ paper (later M3-JEPA).

For a direction :math:`s \to t` and a frozen source embedding :math:`x \in \mathbb R^{d_s}`:

.. math::
    u &= W^{in}_s x + c_{s \to t}
        \qquad \text{(modality adapter into the latent width } d \text{, plus a direction embedding)} \\
    p &= \operatorname{softmax}(W_g u), \qquad
        \mathcal T = \operatorname{top\text{-}k}(p), \qquad
        g_e = \frac{p_e}{\sum_{e' \in \mathcal T} p_{e'}} \;(e \in \mathcal T) \\
    h &= u + \operatorname{GELU}\!\Big(\operatorname{LN}\Big(\sum_{e \in \mathcal T} g_e\, E_e(u)\Big)\Big),
        \qquad E_e(u) = W_{2,e}\,\operatorname{GELU}(W_{1,e} u + b_{1,e}) + b_{2,e} \\
    q &= W^{q}_t h \in \mathbb R^{d}, \qquad \hat y = W^{reg}_t h \in \mathbb R^{d_t}

:math:`q` is compared (cosine) with the target key :math:`k = W^{key}_t y` of a frozen target embedding
:math:`y`; :math:`\hat y` regresses :math:`y` itself (smooth L1). The experts and the router are shared by all
directions, so adding a modality adds an adapter, a key and two heads, not a new connector. The latent width
:math:`d` is independent of the encoders' widths.

With ``multi_gate=True`` the connector follows the multi-gate MoE predictor of M3-JEPA's reference code
(``src/models/MMoE.py``): the contrastive and the regression objectives each pass the shared experts on
their own, from :math:`u + e_{cl}` and :math:`u + e_{reg}` (two learned task embeddings, so the router
can route the two objectives differently) with their own layer norms; :math:`q` is read from the first pass
and :math:`\hat y` from the second, and the load-balancing loss is the mean of the two passes'. Retrieval
needs only :math:`q`, so inference costs one pass (``forward(..., pred=False)``), training two.

Routing keeps the load balanced with the auxiliary loss of the `"Switch Transformers"
<https://arxiv.org/abs/2101.03961>`_ paper, generalised to top-:math:`k`:

.. math::
    \mathcal L_{bal} = E \sum_{e=1}^{E} f_e\, P_e, \qquad
    f_e = \frac{1}{Nk}\sum_{n=1}^{N} \mathbb 1[e \in \mathcal T_n], \qquad
    P_e = \frac1N \sum_{n=1}^{N} p_{n,e},

which equals 1 under uniform routing (:math:`f_e = P_e = 1/E`). Under confident routing (each input's
probability mass on its chosen experts, :math:`P_e = f_e`) it is :math:`E \sum_e f_e^2 \ge 1`, with equality
exactly for balanced loads; in general it is a balancing pressure (its gradient, through :math:`P_e`, lowers
the probabilities of overloaded experts) rather than a bounded objective.

Experts run sparsely: the :math:`Nk` (token, expert) assignments are sorted by expert and each expert sees
only its tokens (one host synchronisation per forward for the group sizes).

**Token-level sources.** M3-JEPA's reference routes every token of the source sequence on its own (text
tokens, image patches) and mean-pools the predictions afterwards. A source given as a :class:`TokenBatch`
(the per-token states whose mean is the pooled embedding :math:`x`) is treated the same way: :math:`u` and
:math:`h` are computed per token :math:`x_j`, each token chooses its own experts, and the heads read the mean
:math:`\bar h = \frac1{T}\sum_j h_j` (the heads are linear, so this is the mean of the per-token heads, as
in the reference). Keys and regression targets stay the pooled target embeddings (a linear key of the mean
is the mean of the per-token keys).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RouterOutput", "TopKRouter", "load_balancing_loss", "MoE", "TokenBatch", "ConnectorOutput",
           "AltMoEConnector", "source_features"]


@dataclass
class RouterOutput:
    """What :class:`TopKRouter` returns."""

    probs: Tensor  #: full softmax over experts, :math:`(N, E)`
    gates: Tensor  #: renormalised weights of the chosen experts, :math:`(N, k)`, rows sum to 1
    experts: Tensor  #: chosen expert indices, :math:`(N, k)`, long, distinct per row
    aux_loss: Tensor  #: load-balancing loss (scalar)


def load_balancing_loss(probs: Tensor, experts: Tensor) -> Tensor:
    r"""Switch-Transformer load-balancing loss :math:`E \sum_e f_e P_e` for top-:math:`k` routing.

    Args:
        probs (Tensor): router softmax, :math:`(N, E)`.
        experts (Tensor): chosen expert indices, :math:`(N, k)`.

    Returns:
        Tensor: scalar; 1 for uniform routing. Gradients flow through :math:`P_e` only.
    """
    n, e = probs.shape
    k = experts.shape[1]
    counts = torch.zeros(e, device=probs.device, dtype=probs.dtype).scatter_add_(
        0, experts.reshape(-1), torch.ones(n * k, device=probs.device, dtype=probs.dtype))
    frac = counts / (n * k)
    return e * (frac * probs.mean(0)).sum()


class TopKRouter(nn.Module):
    r"""Softmax router choosing :math:`k` of :math:`E` experts per input; gates are the chosen softmax
    probabilities renormalised to sum to 1.

    Args:
        dim (int): input width.
        n_experts (int): :math:`E`.
        top_k (int): :math:`k \le E`.
        noise (float, optional): std of Gaussian noise added to the router logits in training (exploration);
            :obj:`0` disables it. (default: :obj:`0.0`)

    Shapes:
        - input: :math:`(N, dim)`; output: :class:`RouterOutput`
    """

    def __init__(self, dim: int, n_experts: int, top_k: int, *, noise: float = 0.0) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must lie in [1, n_experts={n_experts}], got {top_k}")
        self.n_experts, self.top_k, self.noise = n_experts, top_k, noise
        self.gate = nn.Linear(dim, n_experts, bias=False)
        nn.init.normal_(self.gate.weight, std=0.02)

    def forward(self, x: Tensor) -> RouterOutput:
        logits = self.gate(x)
        if self.training and self.noise > 0:
            logits = logits + self.noise * torch.randn_like(logits)
        probs = logits.float().softmax(-1)
        top, idx = probs.topk(self.top_k, dim=-1)
        gates = top / top.sum(-1, keepdim=True)
        return RouterOutput(probs, gates.to(x.dtype), idx, load_balancing_loss(probs, idx))


class MoE(nn.Module):
    r"""A top-:math:`k` mixture of two-layer GELU MLP experts, :math:`\sum_{e \in \mathcal T} g_e E_e(u)`.

    Args:
        dim (int): input and output width :math:`d`.
        hidden (int): hidden width of each expert.
        n_experts (int): :math:`E`.
        top_k (int): experts per input.
        dropout (float, optional): dropout inside the experts. (default: :obj:`0.0`)
        router_noise (float, optional): see :class:`TopKRouter`. (default: :obj:`0.0`)

    Shapes:
        - input: :math:`(N, d)`; output: :math:`(N, d)` and the router's :class:`RouterOutput`
    """

    def __init__(self, dim: int, hidden: int, n_experts: int, top_k: int, *, dropout: float = 0.0,
                 router_noise: float = 0.0) -> None:
        super().__init__()
        self.router = TopKRouter(dim, n_experts, top_k, noise=router_noise)
        self.w1 = nn.Parameter(torch.empty(n_experts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(n_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(n_experts, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(n_experts, dim))
        for w, fan_in in ((self.w1, dim), (self.w2, hidden)):
            nn.init.uniform_(w, -fan_in ** -0.5, fan_in ** -0.5)  # nn.Linear's default range
        self.dropout = nn.Dropout(dropout)

    def expert(self, e: int, u: Tensor) -> Tensor:
        """Expert :math:`E_e` applied to the rows of :obj:`u`."""
        return self.dropout(F.gelu(u @ self.w1[e] + self.b1[e])) @ self.w2[e] + self.b2[e]

    def forward(self, u: Tensor) -> tuple[Tensor, RouterOutput]:
        r = self.router(u)
        n, k = r.experts.shape
        flat = r.experts.reshape(-1)
        order = flat.argsort(stable=True)  # group the N*k assignments by expert
        token = order // k
        sizes = torch.bincount(flat, minlength=self.router.n_experts).tolist()
        out = torch.zeros_like(u)
        start = 0
        for e, size in enumerate(sizes):
            if size == 0:
                continue
            rows = token[start:start + size]
            w = r.gates.reshape(-1)[order[start:start + size]].unsqueeze(1)
            out = out.index_add(0, rows, w * self.expert(e, u[rows]))
            start += size
        return out, r


@dataclass
class TokenBatch:
    r"""The tokens of :math:`N` objects, packed: ``values[j]`` is a token of object ``segment[j]``; every
    object has at least one token (see :class:`~mmalign.altmoe.data.TokenStates`)."""

    values: Tensor  #: :math:`(M, d)` token states
    segment: Tensor  #: :math:`(M,)` long, the object of each token, in :math:`[0, N)`
    n: int  #: :math:`N`

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TokenBatch:
        return TokenBatch(self.values.to(device, non_blocking=non_blocking),
                          self.segment.to(device, non_blocking=non_blocking), self.n)

    def __len__(self) -> int:
        return self.n

    def pool(self, h: Tensor) -> Tensor:
        """Per-object mean of per-token rows ``h`` :math:`(M, *)` -> :math:`(N, *)`."""
        counts = torch.bincount(self.segment, minlength=self.n).clamp_min(1).to(h.dtype)
        out = torch.zeros((self.n, *h.shape[1:]), dtype=h.dtype, device=h.device).index_add_(0, self.segment, h)
        return out / counts.view(-1, *([1] * (h.dim() - 1)))

    def mean(self) -> Tensor:
        """Each object's mean token, :math:`(N, d)`: its pooled embedding."""
        return self.pool(self.values)


def source_features(x: Tensor | TokenBatch, width: int, name: str) -> tuple[Tensor, TokenBatch | None]:
    """The rows a connector transforms (objects, or tokens of a :class:`TokenBatch`) and the batch to pool
    them with; checks the width."""
    tokens = x if isinstance(x, TokenBatch) else None
    feats = x.values if tokens is not None else x
    if feats.dim() != 2 or feats.shape[1] != width:
        raise ValueError(f"x must have shape (N, {width}) (or be a TokenBatch of {width}-d tokens) for modality "
                         f"{name!r}, got {tuple(feats.shape)}")
    return feats, tokens


@dataclass
class ConnectorOutput:
    """What a connector returns for one direction."""

    query: Tensor  #: latent query :math:`q`, :math:`(N, d)`, compared with target keys
    pred: Tensor | None  #: regression of the frozen target embedding :math:`\hat y`, :math:`(N, d_t)`
    aux_loss: Tensor  #: router load-balancing loss (0 without a router)
    experts: Tensor | None = None  #: chosen experts :math:`(N, k)`, for inspection


class AltMoEConnector(nn.Module):
    r"""The shared, direction-conditioned mixture-of-experts connector of Alt-MoE (equations in the module
    docstring).

    Args:
        dims (dict[str, int] or list[int]): each modality's frozen embedding width (names, or positions).
        latent (int, optional): latent width :math:`d`. (default: :obj:`256`)
        hidden (int, optional): hidden width of each expert. (default: :obj:`512`)
        n_experts (int, optional): :math:`E`. (default: :obj:`12`)
        top_k (int, optional): experts per input. (default: :obj:`4`)
        dropout (float, optional): dropout on the adapters' output and inside the experts. (default: :obj:`0.1`)
        router_noise (float, optional): router logit noise in training. (default: :obj:`0.0`)
        multi_gate (bool, optional): separate expert passes (task embedding, routing, norm) for the
            contrastive and regression objectives, as in M3-JEPA's reference (module docstring).
            (default: :obj:`False`)

    Shapes:
        - x: :math:`(N, d_s)` or a :class:`TokenBatch` of :math:`N` objects; ``forward(x, s, t)`` gives
          :class:`ConnectorOutput` (query :math:`(N, d)`), ``key(y, t)`` :math:`(N, d)`.
    """

    def __init__(self, dims: dict[str, int] | list[int], latent: int = 256, hidden: int = 512, n_experts: int = 12,
                 top_k: int = 4, *, dropout: float = 0.1, router_noise: float = 0.0, multi_gate: bool = False) -> None:
        super().__init__()
        self.names = list(dims) if isinstance(dims, dict) else [str(i) for i in range(len(dims))]
        widths = list(dims.values()) if isinstance(dims, dict) else list(dims)
        m = len(widths)
        if m < 2:
            raise ValueError(f"a connector needs at least two modalities, got {m}")
        self.dims, self.latent = widths, latent
        self.inp = nn.ModuleList(nn.Linear(w, latent) for w in widths)
        self.direction = nn.Embedding(m * m, latent)
        nn.init.normal_(self.direction.weight, std=0.02)
        self.moe = MoE(latent, hidden, n_experts, top_k, dropout=dropout, router_noise=router_noise)
        self.norm = nn.LayerNorm(latent)
        self.q_head = nn.ModuleList(nn.Linear(latent, latent) for _ in widths)
        self.reg_head = nn.ModuleList(nn.Linear(latent, w) for w in widths)
        self.key_proj = nn.ModuleList(nn.Linear(w, latent) for w in widths)
        self.drop = nn.Dropout(dropout)
        self.multi_gate = multi_gate
        if multi_gate:  # created only here, so the default connector's initial weights do not move
            self.task = nn.Parameter(torch.empty(2, latent).normal_(std=0.02))  # contrastive, regression
            self.reg_norm = nn.LayerNorm(latent)

    def _index(self, m: int | str) -> int:
        if isinstance(m, str):
            if m not in self.names:
                raise KeyError(f"unknown modality {m!r}; known: {self.names}")
            return self.names.index(m)
        if not 0 <= m < len(self.dims):
            raise IndexError(f"modality index {m} out of range [0, {len(self.dims)})")
        return m

    def forward(self, x: Tensor | TokenBatch, src: int | str, tgt: int | str, *,
                pred: bool = True) -> ConnectorOutput:
        """Query (and, with ``pred``, the regression) of direction ``src -> tgt`` for source embeddings ``x``
        :math:`(N, d_s)`, or a :class:`TokenBatch` of their tokens (routed per token, pooled before the heads)."""
        s, t = self._index(src), self._index(tgt)
        if s == t:
            raise ValueError(f"direction {src!r} -> {tgt!r}: source and target must differ")
        feats, tokens = source_features(x, self.dims[s], self.names[s])
        pool = tokens.pool if tokens is not None else (lambda h: h)
        u = self.drop(self.inp[s](feats)) + self.direction.weight[s * len(self.dims) + t]
        # the router reads u after dropout, so in training the dropout draw also perturbs the routing (a kind of
        # router noise). Routing on the features before dropout was measured (session 15, MovieLens, ten splits,
        # paired): Recall@1 fell by 0.003 +- 0.002 text->behaviour and 0.004 +- 0.002 behaviour->text, so it stays.
        if not self.multi_gate:
            mixed, r = self.moe(u)
            h = pool(u + F.gelu(self.norm(mixed)))
            return ConnectorOutput(self.q_head[t](h), self.reg_head[t](h) if pred else None, r.aux_loss, r.experts)
        uc = u + self.task[0]
        mixed, r = self.moe(uc)
        q = self.q_head[t](pool(uc + F.gelu(self.norm(mixed))))
        if not pred:
            return ConnectorOutput(q, None, r.aux_loss, r.experts)
        ur = u + self.task[1]
        mixed_r, r_r = self.moe(ur)
        y_hat = self.reg_head[t](pool(ur + F.gelu(self.reg_norm(mixed_r))))
        return ConnectorOutput(q, y_hat, (r.aux_loss + r_r.aux_loss) / 2, r.experts)

    def key(self, y: Tensor, tgt: int | str) -> Tensor:
        """Latent key :math:`W^{key}_t y` of frozen target embeddings."""
        t = self._index(tgt)
        if y.dim() != 2 or y.shape[1] != self.dims[t]:
            raise ValueError(f"y must have shape (N, {self.dims[t]}) for modality {self.names[t]!r}, "
                             f"got {tuple(y.shape)}")
        return self.key_proj[t](y)
