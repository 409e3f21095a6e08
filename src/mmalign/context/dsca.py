r"""DSCA-GNN context alignment of a time series with a frozen causal language model, from the
`"Context-Alignment: Activating and Enhancing LLM Capabilities in Time Series"
<https://arxiv.org/abs/2501.03747>`_ paper (Hu et al., ICLR 2025; the instantiation is called DECA in v1 of the
paper and FSCA in later versions and in the authors' code).

The idea: a language model reads a sentence as tokens *and* as a structure (which words form a phrase, which
phrase a statement refers to). Context alignment builds that structure explicitly for a time series: the
window becomes a token sequence laid out like a few-shot prompt, and *Dual-Scale Context-Alignment* graphs
(DSCA) tell the model which tokens belong together (structure) and which part is a demonstration, which the
question (logic). The graphs enter the model through graph layers placed between its transformer blocks.

This file holds the whole model, top to bottom:

1. **Instance normalisation and channel independence.** Each channel of each window is normalised by its own
   mean and standard deviation (undone at the output) and forecast on its own.
2. **Patching.** The normalised series is padded by ``stride`` (repeating the last value), cut into
   :math:`n_p = \lfloor (L - P)/S \rfloor + 2` patches of length :math:`P` and embedded linearly.
3. **Fine-scale nodes (demonstration layout).** The patches are cut into ``n_segments`` consecutive groups;
   a demonstration prompt follows every group but the last, and a task prompt ends the sequence. With two
   segments: ``[first half of the patches] [prompt] [second half] [task prompt]``. Prompt tokens are the
   backbone's own token embeddings of the prompt text. Every token is a node; each patch segment and each
   prompt is a *group*; groups alternate patch, prompt, patch, ..., prompt.
4. **Directed edges and weights.** For every prompt group :math:`e`: (logic) an edge from every patch node of
   every earlier patch group to the first token of :math:`e` ("the prompt summarises what came before"), and
   (structure) an edge from the last token of :math:`e` to every node of the next patch group ("the prompt
   introduces what follows"). Each such set of edges is one *edge group*; an edge :math:`u \to v` of group
   :math:`g` weighs

   .. math::
       w_{uv} = \frac{1 + \cos(x_u, x_v)}{\sum_{(u', v') \in g} \bigl(1 + \cos(x_{u'}, x_{v'})\bigr)}

   computed from the input embeddings :math:`x`, so the weights of each edge group sum to one.
5. **Coarse-scale nodes.** One node per group: a linear map of the concatenated (zero-padded) embeddings of its
   tokens (one map for patch groups, one for prompt groups). The coarse graph has the same rule on these
   :math:`K` nodes, unweighted.
6. **Graph layers inside the backbone.** Before each backbone block listed in ``gnn_layers`` (and after the
   last when the index equals the number of blocks) the fine sequence passes through a graph convolution on
   the weighted fine graph, the coarse sequence through one on the coarse graph, and the coarse states are fed
   back to the fine tokens of their group (coarse-to-fine):

   .. math::
       H^{f} \leftarrow \mathrm{GNN}_f(H^{f}, A^{f}) + \lambda\, W_{c \to f}\, \bigl(M\, \mathrm{GNN}_c(H^{c},
       A^{c})_{[:, :d_c]}\bigr), \qquad M_{ig} = \frac{[\text{node } i \in g]}{|g|}

   Both sequences then run through the same (frozen) block. The defaults (graph layer before block 0 of the
   first 4 blocks, :math:`\lambda = 10^{-4}`, patch 8 / stride 8, two segments, the prompt
   "Predict future sequences using previous data:") are those of the authors' few-shot ETTh1 scripts.
7. **Head.** After the final norm, the hidden states at the patch positions (first ``d_ff`` features) are
   flattened and mapped linearly to the horizon.

Backbone freezing follows GPT4TS/OFA: every backbone weight is frozen except its normalisation layers and its
learned position embeddings (GPT-2's ``wpe``). Llama-style models (SmolLM2) have rotary position encodings and
no learned position embeddings, so only their RMSNorm weights are trained there, unless
``learned_positions`` adds a zero-initialised trainable absolute table beside the rotary encoding (the
counterpart of GPT-2's ``wpe``; an option, off by default, since the pretrained model never saw one).

Differences from the authors' code, made on purpose: the head reads the patch positions (the code reads the
last ``n_p`` positions, which include the task prompt); each insertion point has its own graph layer (the code
shares one); the coarse maps see the embeddings with gradient (the code detaches them); groups of unequal size
are zero-padded rather than required to divide evenly; the test loader keeps the last partial batch.

Differences not chosen for a reason, kept because the committed runs used them (found in session 16's review):
the head's dropout acts on the flattened features before the output map, the code's ``out_dropout`` on the
predicted values after it (``head_dropout_on="outputs"`` gives the code's placement; see
:class:`FlattenHead`); patches are embedded by one linear map (GPT4TS/OFA), the code's
``DataEmbedding_wo_time`` adds a convolution over neighbouring patches and a sinusoidal position term, which
also enters the cosine edge weights; the code's GPT-2 applies its embedding dropout (0.1) to both streams,
SmolLM2 has none.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ContextGraph", "build_context_graph", "group_normalised_weights", "batch_edges", "InstanceNorm",
           "patchify", "n_patches", "CausalLMBackbone", "freeze_backbone", "FlattenHead", "DSCAModel"]


# ------------------------------------------------------------------------------------------ graph construction


@dataclass
class ContextGraph:
    r"""The dual-scale context graph of one sample (every sample of a batch shares it).

    Attributes:
        group (Tensor): :math:`(N,)` group id of every fine node, groups numbered :math:`0..K-1` in sequence
            order; even ids are patch groups, odd ids prompt groups.
        is_prompt (Tensor): :math:`(N,)` whether a fine node is a prompt token.
        patch_pos (Tensor): :math:`(n_p,)` positions of the patch tokens in the fine sequence, in time order.
        edge_index (Tensor): :math:`(2, E)` directed fine edges (row 0 source, row 1 target).
        edge_group (Tensor): :math:`(E,)` the edge group of each fine edge, :math:`0..G-1`.
        coarse_edge_index (Tensor): :math:`(2, E_c)` directed coarse edges between groups.
        assign (Tensor): :math:`(N, K)` coarse-to-fine matrix :math:`M_{ig} = [i \in g] / |g|`.
    """

    group: Tensor
    is_prompt: Tensor
    patch_pos: Tensor
    edge_index: Tensor
    edge_group: Tensor
    coarse_edge_index: Tensor
    assign: Tensor

    @property
    def n_nodes(self) -> int:
        return int(self.group.numel())

    @property
    def n_groups(self) -> int:
        return int(self.assign.shape[1])

    @property
    def n_edge_groups(self) -> int:
        return int(self.edge_group.max()) + 1 if self.edge_group.numel() else 0


def _group_edges(members: list[list[int]], n_groups: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The DSCA edge rule on groups given by their member nodes (groups alternate patch, prompt, ...)."""
    edges: list[tuple[int, int]] = []
    gid: list[int] = []
    g = 0
    for e in range(1, n_groups, 2):  # prompt groups
        first = members[e][0]
        src = [u for p in range(0, e, 2) for u in members[p]]  # every node of every earlier patch group
        if src:
            edges += [(u, first) for u in src]
            gid += [g] * len(src)
            g += 1
        if e + 1 < n_groups:  # the prompt introduces the next patch group
            last = members[e][-1]
            edges += [(last, v) for v in members[e + 1]]
            gid += [g] * len(members[e + 1])
            g += 1
    return edges, gid


def build_context_graph(n_patch: int, demo_len: int, task_len: int, n_segments: int = 2) -> ContextGraph:
    r"""Node layout and edges of the DSCA graphs (steps 3-5 of the module docstring).

    Args:
        n_patch (int): number of patch tokens :math:`n_p`.
        demo_len (int): tokens of the demonstration prompt placed after every segment but the last.
        task_len (int): tokens of the task prompt at the end.
        n_segments (int, optional): patch segments :math:`s`; segment :math:`j < s-1` holds patches
            :math:`[j \lfloor n_p/s \rfloor, (j+1) \lfloor n_p/s \rfloor)`, the last one the rest.
            (default: :obj:`2`)

    Returns:
        ContextGraph with :math:`N = n_p + (s-1)\,\text{demo\_len} + \text{task\_len}` nodes and :math:`K = 2s`
        groups.
    """
    if n_segments < 1 or n_patch < n_segments:
        raise ValueError(f"need 1 <= n_segments <= n_patch, got n_segments={n_segments}, n_patch={n_patch}")
    if (demo_len < 1 and n_segments > 1) or task_len < 1:
        raise ValueError(f"prompts must have at least one token, got demo_len={demo_len}, task_len={task_len}")
    interval = n_patch // n_segments
    members: list[list[int]] = []
    group: list[int] = []
    is_prompt: list[bool] = []
    patch_pos: list[int] = []
    pos = 0
    for j in range(n_segments):
        size = interval if j < n_segments - 1 else n_patch - interval * (n_segments - 1)
        members.append(list(range(pos, pos + size)))
        patch_pos += members[-1]
        group += [len(members) - 1] * size
        is_prompt += [False] * size
        pos += size
        plen = demo_len if j < n_segments - 1 else task_len
        members.append(list(range(pos, pos + plen)))
        group += [len(members) - 1] * plen
        is_prompt += [True] * plen
        pos += plen
    k = len(members)
    edges, gid = _group_edges(members, k)
    coarse_edges, _ = _group_edges([[g] for g in range(k)], k)
    assign = torch.zeros(pos, k)
    for g, mem in enumerate(members):
        assign[mem, g] = 1.0 / len(mem)
    return ContextGraph(
        group=torch.tensor(group), is_prompt=torch.tensor(is_prompt), patch_pos=torch.tensor(patch_pos),
        edge_index=torch.tensor(edges, dtype=torch.long).t().reshape(2, -1),
        edge_group=torch.tensor(gid, dtype=torch.long),
        coarse_edge_index=torch.tensor(coarse_edges, dtype=torch.long).t().reshape(2, -1), assign=assign)


def group_normalised_weights(x: Tensor, edge_index: Tensor, edge_group: Tensor, n_edge_groups: int) -> Tensor:
    r"""Edge weights :math:`w_{uv} = (1 + \cos(x_u, x_v)) / \sum_{g}(1 + \cos)` per sample and edge group.

    Shapes:
        - x: :math:`(B, N, D)`; edge_index: :math:`(2, E)`; edge_group: :math:`(E,)`
        - returns: :math:`(B, E)`, each edge group summing to one in every sample
    """
    xn = F.normalize(x, dim=-1)
    w = (xn[:, edge_index[0]] * xn[:, edge_index[1]]).sum(-1) + 1.0  # (B, E), in [0, 2]
    w = w.clamp_min(1e-6)
    sums = w.new_zeros(w.shape[0], n_edge_groups).index_add_(1, edge_group, w)
    return w / sums[:, edge_group]


def batch_edges(edge_index: Tensor, batch: int, n_nodes: int) -> Tensor:
    """Repeat one sample's edges for ``batch`` samples flattened to ``batch * n_nodes`` nodes (sample-major)."""
    off = torch.arange(batch, device=edge_index.device).repeat_interleave(edge_index.shape[1]) * n_nodes
    return edge_index.repeat(1, batch) + off


# -------------------------------------------------------------------------------------- series preprocessing


class InstanceNorm(nn.Module):
    r"""Per-window, per-channel normalisation :math:`\tilde x = (x - \mu) / \sigma` with
    :math:`\sigma = \sqrt{\mathrm{Var}(x) + \epsilon}` (statistics over time, detached), and its inverse.

    Shapes:
        - x: :math:`(B, L, C)`; statistics :math:`(B, 1, C)`
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def normalise(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu = x.mean(1, keepdim=True).detach()
        sigma = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mu) / sigma, mu, sigma

    @staticmethod
    def denormalise(y: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
        return y * sigma + mu


def n_patches(seq_len: int, patch_len: int, stride: int) -> int:
    r""":math:`\lfloor (L - P)/S \rfloor + 2`: patches after padding the end by ``stride``."""
    if seq_len < patch_len:
        raise ValueError(f"seq_len={seq_len} is shorter than patch_len={patch_len}")
    return (seq_len - patch_len) // stride + 2


def patchify(x: Tensor, patch_len: int, stride: int) -> Tensor:
    """Pad the end by ``stride`` copies of the last value and cut into patches.

    Shapes:
        - x: :math:`(B, L)`; returns :math:`(B, n_p, P)`
    """
    x = torch.cat([x, x[:, -1:].expand(-1, stride)], dim=1)
    return x.unfold(-1, patch_len, stride)


# ------------------------------------------------------------------------------------------------- backbone


def _is_trainable_backbone_module(mod: nn.Module) -> bool:
    name = type(mod).__name__.lower()
    return isinstance(mod, nn.LayerNorm) or "rmsnorm" in name or "layernorm" in name


def freeze_backbone(module: nn.Module, position_embeddings: nn.Module | None = None) -> None:
    """The GPT4TS/OFA rule: freeze every parameter except normalisation layers and learned position embeddings."""
    for p in module.parameters():
        p.requires_grad_(False)
    for mod in module.modules():
        if _is_trainable_backbone_module(mod):
            for p in mod.parameters(recurse=False):
                p.requires_grad_(True)
    if position_embeddings is not None:
        for p in position_embeddings.parameters():
            p.requires_grad_(True)


class CausalLMBackbone(nn.Module):
    """The first ``n_layers`` transformer blocks of a causal LM (Llama-style or GPT-2-style), its position
    encoding and its final norm, callable block by block so that graph layers can sit between blocks.

    The kept blocks, the final norm and GPT-2's position table are copied (the LM object is left untouched, so
    several models can be built from one loaded LM); the token embedding table is only borrowed until
    :meth:`drop_embedding_table` (prompt tokens are embedded once by :meth:`embed_text`). The copies are frozen
    by :func:`freeze_backbone`.

    Args:
        lm: a ``transformers`` causal LM (``LlamaForCausalLM``, ``GPT2LMHeadModel``, ...) or its base model.
        n_layers (int): blocks kept, from the bottom. (default: all)
    """

    def __init__(self, lm: nn.Module, n_layers: int | None = None) -> None:
        super().__init__()
        base = getattr(lm, "model", None) or getattr(lm, "transformer", None) or lm
        if hasattr(base, "layers"):  # Llama, Mistral, Qwen2, SmolLM2, ...
            self.kind = "rotary"
            blocks, self.norm = base.layers, base.norm
            self.rotary = base.rotary_emb
            self.wpe = None
        elif hasattr(base, "h") and hasattr(base, "wpe"):  # GPT-2
            self.kind = "learned"
            blocks, self.norm, self.wpe = base.h, base.ln_f, base.wpe
            self.rotary = None
        else:
            raise ValueError(f"unsupported backbone {type(lm).__name__}: expected .layers (Llama-style) or "
                             f".h/.wpe (GPT-2-style)")
        n_total = len(blocks)
        n_layers = n_total if n_layers is None else n_layers
        if not 1 <= n_layers <= n_total:
            raise ValueError(f"n_layers must be in [1, {n_total}], got {n_layers}")
        # copies: training the norms of one model never changes the LM object (or another model built from it)
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in list(blocks)[:n_layers])
        self.norm = copy.deepcopy(self.norm)
        self.wpe = copy.deepcopy(self.wpe)
        self.hidden_size = int(lm.config.hidden_size)
        self.pos_table: nn.Embedding | None = None  # see add_position_table
        # borrowed, not registered: neither trained, nor saved, nor frozen on the LM's side
        object.__setattr__(self, "_embed", lm.get_input_embeddings())
        freeze_backbone(self, self.wpe)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @torch.no_grad()
    def embed_text(self, token_ids: Tensor) -> Tensor:
        """Token embeddings :math:`(T, D)` of ``token_ids`` :math:`(T,)` from the LM's input embedding table."""
        if self._embed is None:
            raise RuntimeError("embed_text: the token embedding table was dropped; embed prompts before that")
        return self._embed(token_ids.to(self._embed.weight.device)).detach().float().clone()

    def drop_embedding_table(self) -> None:
        """Forget the borrowed token embedding table once the prompts are embedded."""
        object.__setattr__(self, "_embed", None)

    def add_position_table(self, n_positions: int) -> None:
        """Give a rotary backbone a trainable absolute position table of ``n_positions`` rows, zero-initialised
        (the pretrained function is unchanged at the start): the counterpart of GPT-2's ``wpe``, which the
        GPT4TS/OFA rule trains. A GPT-2-style backbone already has one; calling this there is an error."""
        if self.kind != "rotary":
            raise ValueError("add_position_table: this backbone already has learned position embeddings")
        self.pos_table = nn.Embedding(n_positions, self.hidden_size)
        nn.init.zeros_(self.pos_table.weight)

    def start(self, h: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """Add learned position embeddings (GPT-2, or the table of :meth:`add_position_table`) or prepare rotary
        ones (Llama), and the causal mask."""
        n = h.shape[1]
        pos = torch.arange(n, device=h.device).unsqueeze(0)
        if self.pos_table is not None:
            if n > self.pos_table.num_embeddings:
                raise ValueError(f"sequence of {n} tokens, position table of {self.pos_table.num_embeddings}")
            h = h + self.pos_table(pos).to(h.dtype)
        mask = torch.full((n, n), torch.finfo(h.dtype).min, device=h.device, dtype=h.dtype).triu(1)[None, None]
        ctx: dict[str, Any] = {"attention_mask": mask}
        if self.kind == "learned":
            h = h + self.wpe(pos)
        else:
            ctx["position_ids"] = pos
            ctx["position_embeddings"] = self.rotary(h, position_ids=pos)
        return h, ctx

    def block(self, i: int, h: Tensor, ctx: dict[str, Any]) -> Tensor:
        out = self.blocks[i](h, **ctx)
        return out[0] if isinstance(out, tuple) else out

    def finish(self, h: Tensor) -> Tensor:
        return self.norm(h)

    def forward(self, h: Tensor) -> Tensor:
        """All kept blocks and the final norm on input embeddings :math:`(B, N, D)` (the OFA path)."""
        h, ctx = self.start(h)
        for i in range(self.n_layers):
            h = self.block(i, h, ctx)
        return self.finish(h)


# ---------------------------------------------------------------------------------------------------- model


def _graph_layer(kind: str, dim: int) -> nn.Module:
    from torch_geometric.nn import GATConv, GCNConv

    if kind == "gcn":
        return GCNConv(dim, dim, bias=True)
    if kind == "gat":
        return GATConv(dim, dim, heads=1, edge_dim=1, bias=True)
    raise ValueError(f"unknown graph layer {kind!r}; expected 'gcn' or 'gat'")


class FlattenHead(nn.Sequential):
    r"""The output head: flatten the last two axes, one linear map to the horizon, and dropout either on the
    flattened features before the map (``on="features"``) or on the predicted values after it
    (``on="outputs"``: the FSCA reference's ``out_dropout``, and PatchTST's head). The linear map is always
    ``self[2]``, so checkpoints of either placement share their keys.

    Args:
        in_features (int): flattened width.
        pred_len (int): horizon :math:`H`.
        dropout (float): dropout probability.
        on (str, optional): ``"features"`` or ``"outputs"``. (default: :obj:`"features"`)
    """

    def __init__(self, in_features: int, pred_len: int, dropout: float, on: str = "features") -> None:
        if on not in ("features", "outputs"):
            raise ValueError(f"head dropout acts on 'features' or 'outputs', got {on!r}")
        super().__init__(nn.Flatten(-2), nn.Dropout(dropout if on == "features" else 0.0),
                         nn.Linear(in_features, pred_len))
        self.on = on
        self.out_p = dropout if on == "outputs" else 0.0  # a float, not a module: the Sequential keeps 3 entries

    def forward(self, h: Tensor) -> Tensor:
        y = super().forward(h)
        return F.dropout(y, self.out_p, self.training) if self.out_p > 0 else y


class DSCAModel(nn.Module):
    r"""Context-aligned forecaster: dual-scale context graphs inside a frozen causal LM (see the module
    docstring for the full recipe).

    Args:
        backbone (CausalLMBackbone): the frozen blocks.
        demo_prompt (Tensor): embeddings :math:`(T_d, D)` of the demonstration prompt.
        task_prompt (Tensor): embeddings :math:`(T_t, D)` of the task prompt.
        seq_len (int): input length :math:`L`.
        pred_len (int): horizon :math:`H`.
        patch_len (int, optional): :math:`P`. (default: :obj:`8`)
        stride (int, optional): :math:`S`. (default: :obj:`8`)
        n_segments (int, optional): patch segments :math:`s`. (default: :obj:`2`)
        gnn (str, optional): ``"gcn"`` or ``"gat"``. (default: :obj:`"gcn"`)
        gnn_layers (tuple of int, optional): insert the graph layers before these blocks (:obj:`n_layers`:
            after the last). (default: :obj:`(0,)`)
        coarse_weight (float, optional): :math:`\lambda` of the coarse-to-fine feedback. (default: :obj:`1e-4`)
        coarse_dim (int, optional): :math:`d_c`, coarse features fed back. (default: :obj:`512`)
        d_ff (int, optional): hidden features read by the head (:obj:`None`: all). (default: :obj:`None`)
        head_dropout (float, optional): dropout of the output head. (default: :obj:`0.3`)
        head_dropout_on (str, optional): where it acts: ``"features"`` (the flattened hidden features before the
            output map) or ``"outputs"`` (the predicted values after it, as the FSCA reference's ``out_dropout``
            and PatchTST's head). (default: :obj:`"features"`)

    Shapes:
        - input: :math:`(B, L, C)`; output: :math:`(B, H, C)`
    """

    def __init__(self, backbone: CausalLMBackbone, demo_prompt: Tensor, task_prompt: Tensor, *, seq_len: int,
                 pred_len: int, patch_len: int = 8, stride: int = 8, n_segments: int = 2, gnn: str = "gcn",
                 gnn_layers: tuple[int, ...] = (0,), coarse_weight: float = 1e-4, coarse_dim: int = 512,
                 d_ff: int | None = None, head_dropout: float = 0.3, head_dropout_on: str = "features") -> None:
        super().__init__()
        self.backbone = backbone
        d = backbone.hidden_size
        for name, p in (("demo_prompt", demo_prompt), ("task_prompt", task_prompt)):
            if p.ndim != 2 or p.shape[1] != d:
                raise ValueError(f"{name} must be (T, {d}), got {tuple(p.shape)}")
        bad = [i for i in gnn_layers if not 0 <= i <= backbone.n_layers]
        if bad or not gnn_layers:
            raise ValueError(f"gnn_layers must be non-empty, in [0, {backbone.n_layers}], got {gnn_layers}")
        self.seq_len, self.pred_len, self.patch_len, self.stride = seq_len, pred_len, patch_len, stride
        self.n_patch = n_patches(seq_len, patch_len, stride)
        self.register_buffer("demo_prompt", demo_prompt.detach().float().clone())
        self.register_buffer("task_prompt", task_prompt.detach().float().clone())
        self.graph = build_context_graph(self.n_patch, demo_prompt.shape[0], task_prompt.shape[0], n_segments)
        g = self.graph
        for name in ("patch_pos", "edge_index", "edge_group", "coarse_edge_index", "assign", "group"):
            self.register_buffer(f"_g_{name}", getattr(g, name), persistent=False)
        sizes = torch.bincount(g.group, minlength=g.n_groups)
        ends = torch.cumsum(sizes, 0).tolist()
        # groups are contiguous runs of the fine sequence; patch groups also of the patch sequence
        self._group_spans = [(e - int(s_), e) for s_, e in zip(sizes.tolist(), ends, strict=True)]
        pends = torch.cumsum(sizes[0::2], 0).tolist()
        self._patch_spans = [(e - int(s_), e) for s_, e in zip(sizes[0::2].tolist(), pends, strict=True)]
        self.max_patch_group = int(sizes[0::2].max())
        self.max_prompt_group = int(sizes[1::2].max())
        self.gnn_layers = tuple(sorted(set(gnn_layers)))
        self.gnn_kind = gnn
        self.coarse_weight = coarse_weight
        self.coarse_dim = min(coarse_dim, d)
        self.d_ff = d if d_ff is None else min(d_ff, d)

        self.norm = InstanceNorm()
        self.patch_embed = nn.Linear(patch_len, d)
        self.coarse_patch = nn.Linear(self.max_patch_group * d, d)
        self.coarse_prompt = nn.Linear(self.max_prompt_group * d, d)
        self.gnn_fine = nn.ModuleList(_graph_layer(gnn, d) for _ in self.gnn_layers)
        self.gnn_coarse = nn.ModuleList(_graph_layer(gnn, d) for _ in self.gnn_layers)
        self.coarse_to_fine = nn.Linear(self.coarse_dim, d)
        self.head = FlattenHead(self.n_patch * self.d_ff, pred_len, head_dropout, head_dropout_on)

    # -- sequence assembly

    def fine_sequence(self, patches: Tensor) -> Tensor:
        """Interleave patch segments and prompt embeddings in the demonstration layout: :math:`(B', N, D)`."""
        b = patches.shape[0]
        parts = []
        for j, (a, e) in enumerate(self._patch_spans):
            parts.append(patches[:, a:e])
            prompt = self.demo_prompt if j < len(self._patch_spans) - 1 else self.task_prompt
            parts.append(prompt.to(patches.dtype).unsqueeze(0).expand(b, -1, -1))
        return torch.cat(parts, dim=1)

    def coarse_sequence(self, fine: Tensor) -> Tensor:
        """One node per group: a linear map of the group's concatenated, zero-padded tokens: :math:`(B', K, D)`."""
        b, _, d = fine.shape
        nodes = []
        for j, (a, e) in enumerate(self._group_spans):
            width = self.max_patch_group if j % 2 == 0 else self.max_prompt_group
            x = F.pad(fine[:, a:e], (0, 0, 0, width - (e - a))).reshape(b, width * d)
            nodes.append((self.coarse_patch if j % 2 == 0 else self.coarse_prompt)(x))
        return torch.stack(nodes, dim=1)

    # -- graph layers

    def _graph_step(self, k: int, fine: Tensor, coarse: Tensor, fine_edges: Tensor, fine_w: Tensor,
                    coarse_edges: Tensor) -> tuple[Tensor, Tensor]:
        b, n, d = fine.shape
        kk = coarse.shape[1]
        if self.gnn_kind == "gcn":
            f = self.gnn_fine[k](fine.reshape(b * n, d), fine_edges, edge_weight=fine_w)
        else:
            f = self.gnn_fine[k](fine.reshape(b * n, d), fine_edges, edge_attr=fine_w.unsqueeze(-1))
        c = self.gnn_coarse[k](coarse.reshape(b * kk, d), coarse_edges)
        f, c = f.reshape(b, n, d), c.reshape(b, kk, d)
        fb = torch.matmul(self._g_assign.to(c.dtype), c[..., : self.coarse_dim])  # (B', N, d_c)
        return f + self.coarse_weight * self.coarse_to_fine(fb), c

    # -- forward

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1] != self.seq_len:
            raise ValueError(f"x must be (B, {self.seq_len}, C), got {tuple(x.shape)}")
        bsz, _, n_ch = x.shape
        xn, mu, sigma = self.norm.normalise(x)
        series = xn.permute(0, 2, 1).reshape(bsz * n_ch, self.seq_len)  # channel independence
        patches = self.patch_embed(patchify(series, self.patch_len, self.stride))  # (B', n_p, D)
        fine = self.fine_sequence(patches)
        coarse = self.coarse_sequence(fine)
        b, n, _ = fine.shape
        fine_w = group_normalised_weights(fine, self._g_edge_index, self._g_edge_group,
                                          self.graph.n_edge_groups).reshape(-1)
        fine_edges = batch_edges(self._g_edge_index, b, n)
        coarse_edges = batch_edges(self._g_coarse_edge_index, b, coarse.shape[1])

        bb = self.backbone
        fine, ctx_f = bb.start(fine)
        coarse, ctx_c = bb.start(coarse)
        last_graph = max(self.gnn_layers)
        for i in range(bb.n_layers + 1):
            if i in self.gnn_layers:
                fine, coarse = self._graph_step(self.gnn_layers.index(i), fine, coarse, fine_edges, fine_w,
                                                coarse_edges)
            if i == bb.n_layers:
                break
            fine = bb.block(i, fine, ctx_f)
            if i < last_graph:  # the coarse stream only matters up to the last graph layer
                coarse = bb.block(i, coarse, ctx_c)
        h = bb.finish(fine)[:, self._g_patch_pos, : self.d_ff]  # (B', n_p, d_ff)
        y = self.head(h).reshape(bsz, n_ch, self.pred_len).permute(0, 2, 1)
        return self.norm.denormalise(y, mu, sigma)
