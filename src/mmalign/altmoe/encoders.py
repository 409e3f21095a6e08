r"""Frozen unimodal encoders for Alt-MoE: pluggable callables ``list_of_inputs -> Tensor (b, d)``.

Alt-MoE (`"Alt-MoE" <https://arxiv.org/abs/2409.05929>`_) never updates the unimodal encoders; only the
connector learns. Any callable works as an encoder; this file holds the ones the bundled pair sets use:

- :class:`LMTextEncoder`: a causal language model (SmolLM2-135M-Instruct by default, offline through
  :func:`aligncore.lm.load_causal_lm`), masked mean of the hidden states of its last layers;
- :func:`mf_item_embeddings`: behaviour embeddings of items from a truncated SVD of the user-centred rating
  matrix ("PureSVD" matrix factorisation),

  .. math::
      R - \bar r_u \approx U \Sigma V^\top, \qquad e_i = \Sigma^{1/2} v_i;

- :func:`spectral_structure_embeddings`: structure embeddings of a graph's nodes from the top singular vectors
  of the symmetrically normalised adjacency with self-loops :math:`\hat A = D^{-1/2}(A + I)D^{-1/2}`, optionally
  joined with a TF-IDF/SVD embedding of which relation types each node uses (knowledge graphs);
- :func:`transe_embeddings`: TransE entity embeddings of one knowledge graph, trained on its own triples only
  (self-supervised, no alignment links), :math:`e_h + r \approx e_t`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

__all__ = ["LMTextEncoder", "mf_item_embeddings", "spectral_structure_embeddings", "transe_embeddings", "freeze",
           "top_svd"]


def top_svd(mat: sp.spmatrix, k: int, *, seed: int = 0, dense_below: int = 3000) -> tuple[np.ndarray, ...]:
    """Top-``k`` singular triplets ``(u, s, vt)`` of a sparse matrix, by decreasing singular value: an exact
    dense SVD when the smaller side is below ``dense_below``, else randomized subspace iteration
    (:func:`torch.svd_lowrank`, oversampling 2k, 8 power iterations, seeded), which stays fast on large graphs
    where ARPACK needs many restarts."""
    if not 1 <= k < min(mat.shape):
        raise ValueError(f"k must lie in [1, {min(mat.shape)}), got {k}")
    if min(mat.shape) < dense_below:
        u, s, vt = np.linalg.svd(mat.toarray(), full_matrices=False)
        return u[:, :k], s[:k], vt[:k]
    coo = mat.tocoo()
    t = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, mat.shape, dtype=torch.float64,
                                check_invariants=False)  # built from a valid scipy COO matrix
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, v = torch.svd_lowrank(t.coalesce(), q=min(2 * k, min(mat.shape)), niter=8)
    return u[:, :k].numpy(), s[:k].numpy(), v[:, :k].T.numpy()


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter and put the module in eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class LMTextEncoder(nn.Module):
    r"""Frozen text encoder: masked mean over tokens of a causal LM's hidden states, averaged over the last
    :obj:`n_layers` layers (the pooling of the Alt-MoE/M3-JEPA reference, which averages the last two).

    .. math::
        e(x) = \frac{1}{|L|\,T} \sum_{l \in L} \sum_{t=1}^{T} h^{(l)}_t(x)

    Args:
        model (str or nn.Module, optional): ``"smollm2"``, a local model folder, or a loaded causal LM (then
            :obj:`tokenizer` is required). (default: :obj:`"smollm2"`)
        tokenizer (optional): the tokenizer when :obj:`model` is a module.
        n_layers (int, optional): how many of the last hidden-state layers to average. (default: :obj:`2`)
        max_length (int, optional): truncate inputs to this many tokens. (default: :obj:`64`)
        max_layers (int, optional): keep only the first this many decoder layers (the pooled states are then
            those of layers ``max_layers - n_layers + 1 .. max_layers``); cuts the cost proportionally.
            (default: :obj:`None`, all layers)
        device (str, optional): where to run. (default: :obj:`"cpu"`)

    Shapes:
        - input: a list of :math:`b` strings
        - output: :math:`(b, d_{model})`, float32, on the device the language model is on (``device`` at
          construction, or wherever the encoder was moved since, e.g. by ``fit``)
    """

    def __init__(self, model: str | nn.Module = "smollm2", tokenizer=None, *, n_layers: int = 2,
                 max_length: int = 64, max_layers: int | None = None, device: str = "cpu") -> None:
        super().__init__()
        if isinstance(model, nn.Module):
            if tokenizer is None:
                raise ValueError("LMTextEncoder: pass tokenizer= with a loaded model")
            lm, tok = model, tokenizer
        else:
            from aligncore.lm import load_causal_lm

            lm, tok = load_causal_lm(model, device=device)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "right"
        if max_layers is not None:
            body = lm.get_decoder() if hasattr(lm, "get_decoder") else lm
            if not 1 <= max_layers <= len(body.layers):
                raise ValueError(f"max_layers must lie in [1, {len(body.layers)}], got {max_layers}")
            body.layers = nn.ModuleList(list(body.layers)[:max_layers])
            body.config.num_hidden_layers = max_layers
        self.lm, self.tokenizer = freeze(lm.to(device)), tok
        self.n_layers, self.max_length = n_layers, max_length
        self.dim = int(lm.config.hidden_size)

    def train(self, mode: bool = True) -> LMTextEncoder:  # stays frozen in eval mode
        return super().train(False)

    def forward(self, texts: Sequence[str]) -> Tensor:
        if isinstance(texts, str):
            raise TypeError("LMTextEncoder expects a list of strings, got one string")
        from aligncore.lm import pooled_hidden_states

        return pooled_hidden_states(self.lm, self.tokenizer, list(texts), n_layers=self.n_layers,
                                    max_length=self.max_length, batch_size=max(len(texts), 1))

    def tokens(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False) -> tuple[Tensor, Tensor]:
        """The per-token states whose masked mean :meth:`forward` returns: ``(states (b, T, d) float16,
        lengths (b,))`` (:func:`aligncore.lm.token_hidden_states`)."""
        if isinstance(texts, str):
            raise TypeError("LMTextEncoder expects a list of strings, got one string")
        from aligncore.lm import token_hidden_states

        return token_hidden_states(self.lm, self.tokenizer, list(texts), n_layers=self.n_layers,
                                   max_length=self.max_length, batch_size=batch_size, progress=progress)


def mf_item_embeddings(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
                       dim: int = 64, *, seed: int = 0) -> Tensor:
    r"""Item embeddings :math:`\Sigma^{1/2} V` of a rank-:obj:`dim` truncated SVD of the user-centred
    rating matrix (unobserved entries 0 after centring).

    Args:
        users, items (np.ndarray): 0-based indices of each rating, shape :math:`(R,)`.
        ratings (np.ndarray): rating values, shape :math:`(R,)`.
        n_users, n_items (int): matrix size.
        dim (int, optional): embedding width (< min(n_users, n_items)). (default: :obj:`64`)
        seed (int, optional): seed of the randomized SVD (large matrices). (default: :obj:`0`)

    Returns:
        Tensor: :math:`(n_{items}, dim)` float32, components sorted by decreasing singular value.
    """
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    r = np.asarray(ratings, dtype=np.float64)
    if not (users.shape == items.shape == r.shape) or users.ndim != 1:
        raise ValueError(f"users, items, ratings must be 1-d of one length, got {users.shape}, {items.shape}, "
                         f"{r.shape}")
    if dim >= min(n_users, n_items):
        raise ValueError(f"dim={dim} must be < min(n_users, n_items)={min(n_users, n_items)}")
    sums = np.bincount(users, weights=r, minlength=n_users)
    cnt = np.maximum(np.bincount(users, minlength=n_users), 1)
    centred = r - (sums / cnt)[users]
    mat = sp.csr_matrix((centred, (users, items)), shape=(n_users, n_items))
    _, s, vt = top_svd(mat, dim, seed=seed)
    emb = vt.T * np.sqrt(s)[None, :]
    emb = emb * np.sign(emb.sum(0, keepdims=True) + 1e-12)  # fix the sign of each component
    return torch.from_numpy(emb.astype(np.float32))


def spectral_structure_embeddings(edges: np.ndarray, n: int, dim: int = 64, *, relations: np.ndarray | None = None,
                                  rel_dim: int = 0, seed: int = 0) -> Tensor:
    r"""Structure embeddings of the :obj:`n` nodes of a graph (directions ignored).

    The first :obj:`dim` columns are :math:`U_k \Sigma_k^{1/2}` of the top singular triplets of
    :math:`\hat A = D^{-1/2}(A + I)D^{-1/2}`. With :obj:`relations` and :obj:`rel_dim > 0`, :obj:`rel_dim`
    more columns come from a truncated SVD of the TF-IDF weighted node-by-(relation, role) count matrix (how
    often a node is the head or the tail of each relation type). Columns are standardised.

    Args:
        edges (np.ndarray): :math:`(E, 2)` node indices (heads, tails).
        n (int): number of nodes.
        dim (int, optional): spectral width. (default: :obj:`64`)
        relations (np.ndarray, optional): relation id of each edge, :math:`(E,)`. (default: :obj:`None`)
        rel_dim (int, optional): width of the relation-usage part. (default: :obj:`0`)
        seed (int, optional): seed of the randomized SVD (large graphs). (default: :obj:`0`)

    Returns:
        Tensor: :math:`(n, dim + rel\_dim)` float32.
    """
    edges = np.asarray(edges, dtype=np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must have shape (E, 2), got {edges.shape}")
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"edge endpoints must lie in [0, {n})")
    h, t = edges[:, 0], edges[:, 1]
    a = sp.coo_matrix((np.ones(2 * len(h)), (np.r_[h, t], np.r_[t, h])), shape=(n, n)).tocsr()
    a.data[:] = 1.0
    a = a + sp.identity(n, format="csr")
    d = np.asarray(a.sum(1)).ravel()
    dinv = sp.diags(1.0 / np.sqrt(d))
    norm = dinv @ a @ dinv
    u, s, _ = top_svd(norm, dim, seed=seed)
    parts = [u * np.sqrt(s)[None, :]]
    if relations is not None and rel_dim > 0:
        rel = np.asarray(relations, dtype=np.int64)
        if rel.shape != h.shape:
            raise ValueError(f"relations must have shape ({len(h)},), got {rel.shape}")
        n_rel = int(rel.max()) + 1
        cols = np.r_[rel, rel + n_rel]  # head role, tail role
        c = sp.coo_matrix((np.ones(2 * len(h)), (np.r_[h, t], cols)), shape=(n, 2 * n_rel)).tocsr()
        df = np.asarray((c > 0).sum(0)).ravel()
        idf = np.log((1 + n) / (1 + df)) + 1.0
        c = sp.csr_matrix(c.multiply(idf[None, :]))
        c.data = np.log1p(c.data)
        k = min(rel_dim, min(c.shape) - 1)
        u2, s2, _ = top_svd(c, k, seed=seed + 1)
        parts.append(u2 * s2[None, :])
    emb = np.concatenate(parts, axis=1)
    emb = (emb - emb.mean(0)) / (emb.std(0) + 1e-8)
    return torch.from_numpy(emb.astype(np.float32))


def transe_embeddings(triples: np.ndarray, n: int, dim: int = 128, *, epochs: int = 100, lr: float = 1e-2,
                      batch_size: int = 2048, margin: float = 1.0, seed: int = 0, progress: bool = False) -> Tensor:
    r"""TransE entity embeddings (`Bordes et al., 2013 <https://papers.nips.cc/paper/5071>`_) of a knowledge graph,
    trained on its own relation triples only: for each triple :math:`(h, r, t)` one corrupted triple (head or
    tail replaced by a uniformly drawn entity, each with probability 1/2) and the margin ranking loss

    .. math::
        \max\bigl(0,\ \gamma + \lVert e_h + r - e_t \rVert - \lVert e_{h'} + r - e_{t'} \rVert\bigr)

    with entity vectors projected onto the unit sphere; Adam, full passes over the shuffled triples. The
    returned vectors are the unit entity vectors, columns standardised.

    Args:
        triples (np.ndarray): :math:`(T, 3)` rows ``(head, relation, tail)``, entities in :math:`[0, n)`.
        n (int): number of entities.
        dim (int, optional): embedding width. (default: :obj:`128`)
        epochs (int, optional): passes over the triples. (default: :obj:`100`)
        lr (float, optional): Adam learning rate. (default: :obj:`1e-2`)
        batch_size (int, optional): triples per step. (default: :obj:`2048`)
        margin (float, optional): :math:`\gamma`. (default: :obj:`1.0`)
        seed (int, optional): seed of the initialisation, the order and the corruptions (the global RNG is
            left alone). (default: :obj:`0`)
        progress (bool, optional): show a progress bar over epochs. (default: :obj:`False`)

    Returns:
        Tensor: :math:`(n, dim)` float32.
    """
    x, _ = _transe(triples, n, dim, epochs=epochs, lr=lr, batch_size=batch_size, margin=margin, seed=seed,
                   progress=progress)
    return ((x - x.mean(0)) / (x.std(0) + 1e-8)).float()


def _transe(triples: np.ndarray, n: int, dim: int, *, epochs: int, lr: float, batch_size: int, margin: float,
            seed: int, progress: bool) -> tuple[Tensor, Tensor]:
    """The training of :func:`transe_embeddings`: ``(unit entity vectors, relation vectors)``.

    A plain optimisation loop, not :func:`aligncore.training.fit`: this is a frozen encoder's one-off
    precomputation (cached by the caller), with no validation, early stopping or resume to offer, and ``fit``
    would checkpoint the whole entity table every epoch and reseed the global RNGs."""
    from tqdm.auto import tqdm

    tri = torch.as_tensor(np.asarray(triples, dtype=np.int64))
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.shape[0] == 0:
        raise ValueError(f"triples must have shape (T, 3) with T > 0, got {tuple(tri.shape)}")
    if tri[:, [0, 2]].min() < 0 or tri[:, [0, 2]].max() >= n:
        raise ValueError(f"triple entities must lie in [0, {n})")
    h, r, t = tri[:, 0], tri[:, 1], tri[:, 2]
    g = torch.Generator().manual_seed(seed)
    ent = nn.Parameter(torch.randn(n, dim, generator=g) * dim ** -0.5)
    rel = nn.Parameter(torch.randn(int(r.max()) + 1, dim, generator=g) * dim ** -0.5)
    opt = torch.optim.Adam([ent, rel], lr=lr)
    bar = tqdm(range(epochs), desc="TransE", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(h), generator=g)
        total = torch.zeros(())
        for a in range(0, len(h), batch_size):
            i = order[a:a + batch_size]
            hh, rr, tt = h[i], r[i], t[i]
            other = torch.randint(0, n, (len(i),), generator=g)
            head_side = torch.rand(len(i), generator=g) < 0.5
            hn, tn = torch.where(head_side, other, hh), torch.where(head_side, tt, other)
            def unit(idx: Tensor) -> Tensor:  # only the rows of this batch, not the whole table, each step
                return torch.nn.functional.normalize(ent[idx], dim=-1)

            pos = (unit(hh) + rel[rr] - unit(tt)).norm(dim=-1)
            neg = (unit(hn) + rel[rr] - unit(tn)).norm(dim=-1)
            loss = torch.relu(margin + pos - neg).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(i)  # summed as a tensor: no host sync per step
        bar.set_postfix(loss=f"{float(total) / len(h):.4f}")
    return torch.nn.functional.normalize(ent.detach(), dim=-1), rel.detach()
