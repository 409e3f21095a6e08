r"""TIGER-style generative retrieval over semantic IDs, from the
`"Recommender Systems with Generative Retrieval" <https://arxiv.org/abs/2305.05065>`_ paper.

A user's history is the sequence of its items' semantic-ID tokens; a small encoder-decoder transformer reads it
and decodes the next item's ID one level at a time,

.. math::
    p(c_0, \dots, c_{L-1} \mid \text{history}) = \prod_{l=0}^{L-1} p(c_l \mid c_{<l}, \text{history}),

trained with teacher forcing (cross-entropy per level). Retrieval is a beam search constrained by a prefix trie to
code tuples that are real items, so every returned ID maps to exactly one item (the IDs carry the disambiguation
level). Recall@k with one held-out item per user equals Hits@k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aligncore.metrics import hits_at_k, ndcg_single

PAD, BOS = 0, 1


class PrefixTrie:
    r"""All valid semantic IDs as per-level lookup tables (vectorised constrained decoding).

    ``allowed[l][p, c]`` says whether prefix number :math:`p` of length :math:`l` may continue with code :math:`c`,
    and ``child[l][p, c]`` is the number of the extended prefix (at the last level: the item index).

    Args:
        codes (Tensor | np.ndarray): unique code tuples, one row per item, :math:`(N, L)`.

    Raises:
        ValueError: when two items share a tuple (add the disambiguation level first).
    """

    def __init__(self, codes: Tensor | np.ndarray):
        c = torch.as_tensor(np.asarray(codes.cpu() if isinstance(codes, Tensor) else codes), dtype=torch.long)
        if c.dim() != 2 or c.shape[0] == 0:
            raise ValueError(f"codes must have shape (N, L) with N >= 1, got {tuple(c.shape)}")
        if torch.unique(c, dim=0).shape[0] != c.shape[0]:
            raise ValueError("codes contain duplicate tuples; add a disambiguation level first")
        if bool((c < 0).any()):
            raise ValueError("codes must be non-negative")
        self.codes = c
        self.level_sizes = [int(c[:, lvl].max()) + 1 for lvl in range(c.shape[1])]
        self.allowed: list[Tensor] = []
        self.child: list[Tensor] = []
        pid = torch.zeros(c.shape[0], dtype=torch.long)
        n_prefix = 1
        for lvl, k in enumerate(self.level_sizes):
            key = pid * k + c[:, lvl]
            uniq, nxt = torch.unique(key, return_inverse=True)
            allowed = torch.zeros(n_prefix, k, dtype=torch.bool)
            child = torch.full((n_prefix, k), -1, dtype=torch.long)
            allowed[pid, c[:, lvl]] = True
            if lvl == c.shape[1] - 1:
                child[pid, c[:, lvl]] = torch.arange(c.shape[0])  # leaf: the item index
            else:
                child[pid, c[:, lvl]] = nxt
            self.allowed.append(allowed)
            self.child.append(child)
            pid, n_prefix = nxt, uniq.numel()

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    def to(self, device: torch.device | str) -> PrefixTrie:
        self.allowed = [a.to(device) for a in self.allowed]
        self.child = [ch.to(device) for ch in self.child]
        self.codes = self.codes.to(device)
        return self


class GenerativeRetriever(nn.Module):
    r"""Small encoder-decoder transformer over semantic-ID tokens (TIGER, Sec. 3.2).

    Token ids: :obj:`0` pad, :obj:`1` BOS, then the codes of level :math:`l` at offset
    :math:`2 + \sum_{l' < l} K_{l'}`. Each decoder position :math:`l` predicts level :math:`l` with its own head.

    Args:
        level_sizes (list[int]): codes per level :math:`K_l` (including the disambiguation level).
        max_history (int, optional): items of history read (the most recent). (default: :obj:`20`)
        d_model (int, optional): width. (default: :obj:`64`)
        n_heads (int, optional): attention heads. (default: :obj:`4`)
        n_layers (int, optional): encoder and decoder layers each. (default: :obj:`2`)
        dim_ff (int, optional): feed-forward width. (default: :obj:`256`)
        dropout (float, optional): dropout. (default: :obj:`0.1`)

    Shapes:
        - history: :math:`(B, H)` item ids, :obj:`-1` for padding; codes table :math:`(N, L)`.
    """

    def __init__(self, level_sizes: list[int], *, max_history: int = 20, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, dim_ff: int = 256, dropout: float = 0.1):
        super().__init__()
        self.level_sizes = list(level_sizes)
        self.n_levels = len(level_sizes)
        self.max_history = max_history
        self.register_buffer("offsets", torch.tensor([2 + sum(level_sizes[:lvl]) for lvl in range(self.n_levels)]))
        vocab = 2 + sum(level_sizes)
        self.tok = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_history * self.n_levels, d_model)
        self.dec_pos = nn.Embedding(self.n_levels, d_model)
        self.transformer = nn.Transformer(d_model, n_heads, n_layers, n_layers, dim_ff, dropout, batch_first=True)
        self.heads = nn.ModuleList(nn.Linear(d_model, k) for k in level_sizes)

    def tokens(self, codes: Tensor) -> Tensor:
        """Token ids of code tuples :math:`(\\dots, L)`."""
        return codes + self.offsets

    def encode(self, history: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder memory and its padding mask for item histories (right-aligned or not; -1 = pad)."""
        b, h = history.shape
        if h > self.max_history:
            raise ValueError(f"history has {h} items; the model reads at most max_history={self.max_history}")
        valid = history >= 0
        tok = self.tokens(codes[history.clamp(min=0)])  # (B, H, L)
        tok = torch.where(valid[..., None], tok, torch.zeros_like(tok)).reshape(b, h * self.n_levels)
        pad = tok == PAD
        x = self.tok(tok) + self.pos(torch.arange(tok.shape[1], device=tok.device))
        mem = self.transformer.encoder(x, src_key_padding_mask=pad)
        return mem, pad

    def decode(self, mem: Tensor, pad: Tensor, prefix: Tensor) -> Tensor:
        """Logits of the next level given code prefixes :math:`(B, l)` (:math:`l < L`): :math:`(B, K_l)`."""
        lvl = prefix.shape[1]
        bos = torch.full((prefix.shape[0], 1), BOS, dtype=torch.long, device=prefix.device)
        tgt = torch.cat([bos, prefix + self.offsets[:lvl]], 1)
        y = self.tok(tgt) + self.dec_pos(torch.arange(lvl + 1, device=tgt.device))
        causal = nn.Transformer.generate_square_subsequent_mask(lvl + 1, device=tgt.device)
        out = self.transformer.decoder(y, mem, tgt_mask=causal, memory_key_padding_mask=pad)
        return self.heads[lvl](out[:, -1])

    def decode_beams(self, mem: Tensor, pad: Tensor, prefix: Tensor) -> Tensor:
        """:meth:`decode` for :math:`n_b` prefixes per history, :math:`(B, n_b, l) \to (B, n_b, K_l)`, without
        copying the memory per beam.

        The decoder layers are applied by hand: self-attention and the feed-forward block see each prefix on its
        own, as in :meth:`decode`, while the cross-attention reads the beams' queries of one history as one longer
        query sequence against that history's memory (cross-attention treats every query independently). The
        memory's keys and values are thus projected once per history instead of once per beam, the bulk of beam
        search's work (20x at beam 20); the logits equal :meth:`decode`'s up to float rounding.
        """
        b, nb, lvl = prefix.shape
        bos = torch.full((b * nb, 1), BOS, dtype=torch.long, device=prefix.device)
        tgt = torch.cat([bos, prefix.reshape(b * nb, lvl) + self.offsets[:lvl]], 1)
        x = self.tok(tgt) + self.dec_pos(torch.arange(lvl + 1, device=tgt.device))
        causal = nn.Transformer.generate_square_subsequent_mask(lvl + 1, device=tgt.device)
        dec = self.transformer.decoder
        for layer in dec.layers:
            if layer.norm_first:  # nn.Transformer's default is post-norm; the pre-norm order is not written out
                raise NotImplementedError("decode_beams follows post-norm decoder layers (norm_first=False)")
            x = layer.norm1(x + layer.dropout1(layer.self_attn(x, x, x, attn_mask=causal, need_weights=False)[0]))
            q = x.reshape(b, nb * (lvl + 1), -1)
            ca = layer.multihead_attn(q, mem, mem, key_padding_mask=pad, need_weights=False)[0]
            x = layer.norm2(x + layer.dropout2(ca.reshape(b * nb, lvl + 1, -1)))
            x = layer.norm3(x + layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))))
        if dec.norm is not None:
            x = dec.norm(x)
        return self.heads[lvl](x[:, -1]).reshape(b, nb, -1)

    def forward(self, history: Tensor, target_codes: Tensor, codes: Tensor) -> Tensor:
        """Teacher-forced cross-entropy averaged over levels (scalar)."""
        mem, pad = self.encode(history, codes)
        tgt = torch.cat([torch.full_like(target_codes[:, :1], BOS), target_codes[:, :-1] + self.offsets[:-1]], 1)
        y = self.tok(tgt) + self.dec_pos(torch.arange(self.n_levels, device=tgt.device))
        causal = nn.Transformer.generate_square_subsequent_mask(self.n_levels, device=tgt.device)
        out = self.transformer.decoder(y, mem, tgt_mask=causal, memory_key_padding_mask=pad)
        return sum(F.cross_entropy(self.heads[lvl](out[:, lvl]), target_codes[:, lvl])
                   for lvl in range(self.n_levels)) / self.n_levels


@torch.no_grad()
def constrained_beam_search(model: GenerativeRetriever, history: Tensor, codes: Tensor, trie: PrefixTrie, *,
                            beam: int = 20) -> tuple[Tensor, Tensor]:
    """Top-:obj:`beam` items per history by beam search restricted to valid IDs.

    Returns:
        ``(items, scores)``, each :math:`(B, \\text{beam})`, best first; ``items`` is :obj:`-1` and the score
        :obj:`-inf` where fewer than :obj:`beam` valid IDs exist.
    """
    b = history.shape[0]
    mem, pad = model.encode(history, codes)
    dev = mem.device
    prefix = torch.zeros(b, 1, 0, dtype=torch.long, device=dev)  # (B, beams, l)
    pid = torch.zeros(b, 1, dtype=torch.long, device=dev)
    score = torch.zeros(b, 1, device=dev)
    for lvl in range(trie.n_levels):
        nb = prefix.shape[1]
        logp = F.log_softmax(model.decode_beams(mem, pad, prefix).float(), -1)
        ok = trie.allowed[lvl][pid.clamp(min=0)] & (pid >= 0)[..., None]
        total = torch.where(ok, score[..., None] + logp, torch.full_like(logp, -float("inf")))
        k = trie.level_sizes[lvl]
        top = total.reshape(b, nb * k).topk(min(beam, nb * k), dim=1)
        src, code = top.indices // k, top.indices % k
        alive = torch.isfinite(top.values)
        new_pid = trie.child[lvl][pid.gather(1, src).clamp(min=0), code]
        pid = torch.where(alive, new_pid, torch.full_like(new_pid, -1))
        prefix = torch.cat([prefix.gather(1, src[..., None].expand(-1, -1, lvl)), code[..., None]], 2)
        score = top.values
    if pid.shape[1] < beam:
        fill = beam - pid.shape[1]
        pid = torch.cat([pid, pid.new_full((b, fill), -1)], 1)
        score = torch.cat([score, score.new_full((b, fill), -float("inf"))], 1)
    return pid, score


@dataclass
class RetrievalMetrics:
    """Recall@k (= Hits@k with one held-out item) and NDCG@k per k, the number of users evaluated, and each
    user's 1-based rank of the held-out item (:obj:`inf` when outside the beam), for paired comparisons
    (:func:`aligncore.metrics.paired_hits`)."""

    values: dict[str, float]
    n_users: int
    ranks: Tensor | None = None


def ranks_from_beams(items: Tensor, target: Tensor) -> Tensor:
    """1-based rank of the target among the beam's items; :obj:`inf` when absent."""
    hit = items == target[:, None]
    first = hit.float().argmax(1).double() + 1.0
    return torch.where(hit.any(1), first, torch.full_like(first, float("inf")))


@torch.no_grad()
def evaluate_retrieval(model: GenerativeRetriever, histories: Tensor, targets: Tensor, codes: Tensor,
                       trie: PrefixTrie, *, beam: int = 20, ks: tuple[int, ...] = (5, 10),
                       batch_size: int = 256) -> RetrievalMetrics:
    """Recall@k and NDCG@k (:func:`aligncore.metrics.ndcg_single`) of constrained beam search."""
    if beam < max(ks):
        raise ValueError(f"beam={beam} must be at least max(ks)={max(ks)}")
    was = model.training
    model.eval()
    ranks = []
    for s in range(0, histories.shape[0], batch_size):
        items, _ = constrained_beam_search(model, histories[s:s + batch_size], codes, trie, beam=beam)
        ranks.append(ranks_from_beams(items, targets[s:s + batch_size].to(items.device)))
    model.train(was)
    r = torch.cat(ranks).cpu()
    vals = {}
    for k in ks:
        vals[f"recall@{k}"] = hits_at_k(r, k)
        vals[f"ndcg@{k}"] = ndcg_single(r, k)
    return RetrievalMetrics(vals, int(r.numel()), r)


def pad_histories(seqs: list[list[int]], max_history: int) -> Tensor:
    """The last :obj:`max_history` items of each sequence, left-padded with :obj:`-1`, :math:`(B, H)`."""
    out = torch.full((len(seqs), max_history), -1, dtype=torch.long)
    for r, s in enumerate(seqs):
        s = s[-max_history:]
        if s:
            out[r, max_history - len(s):] = torch.as_tensor(s)
    return out


class NextItemDataset(torch.utils.data.Dataset):
    """Training examples of the retriever: every prefix of every training history predicts its next item
    (TIGER trains on all of them).

    Args:
        train (list[list[int]]): training histories per user.
        max_history (int): items kept per example (the most recent).
    """

    def __init__(self, train: list[list[int]], max_history: int):
        hist, tgt = [], []
        for s in train:
            for t in range(1, len(s)):
                hist.append(s[max(0, t - max_history):t])
                tgt.append(s[t])
        if not tgt:
            raise ValueError("NextItemDataset: no training history has two items")
        self.history = pad_histories(hist, max_history)
        self.target = torch.as_tensor(tgt, dtype=torch.long)

    def __len__(self) -> int:
        return self.target.numel()

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor]:
        return self.history[k], self.target[k]
