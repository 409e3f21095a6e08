r"""Paired multimodal data for Alt-MoE: row-aligned embeddings of two or more modalities, with splits.

A :class:`PairSet` holds, for every modality, the frozen-encoder embedding of the same :math:`N` objects (row
:math:`i` of every modality is object :math:`i`), and train/validation/test row indices. Bundled sets:

- :func:`movielens_pairs`: MovieLens latest-small movies, content (title, genres, tags through SmolLM2-135M,
  pooled) against behaviour (matrix factorisation of the ratings);
- :func:`dbp15k_pairs`: DBP15K linked entities, structure embeddings of the first KG (Chinese or Japanese
  DBpedia) against name embeddings (SmolLM2) of the second (English DBpedia);
- :func:`synthetic_pairs`: a planted linear correspondence (tests);
- :func:`folder_pairs`: any folder of ``<modality>.npy`` files (or embedding stores) plus ``split.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from aligncore.data import open_text, resolve_dataset

from .store import EmbeddingStore

if TYPE_CHECKING:
    from .connector import TokenBatch

__all__ = ["TokenStates", "PairSet", "cached_token_states", "movielens_token_states", "split_indices", "synthetic_pairs", "movielens_pairs", "movielens_items",
           "movielens_text_store", "dbp15k_pairs", "dbp15k_pooled_pairs", "dbp15k_links", "folder_pairs", "load_pairs", "export_pca",
           "MOVIELENS", "VENDORED_MOVIELENS_TEXT"]

MOVIELENS = "recsys/ml-latest-small"
VENDORED_MOVIELENS_TEXT = "altmoe/movielens_smollm2_pca128.npz"


@dataclass
class TokenStates:
    r"""Per-token states of :math:`N` objects of varying token counts, packed: object :math:`i`'s tokens are
    ``values[offsets[i]:offsets[i + 1]]``. A modality's pooled embedding is their mean (:meth:`pooled`).

    Args:
        values (Tensor): :math:`(M, d)` token states of all objects, one after the other (float16 keeps
            them small; batches come out float32).
        offsets (Tensor): :math:`(N + 1,)` long, non-decreasing, ``offsets[0] = 0``, ``offsets[-1] = M``;
            every object needs at least one token.
    """

    values: Tensor
    offsets: Tensor

    def __post_init__(self) -> None:
        o = self.offsets
        if self.values.dim() != 2 or o.dim() != 1 or o.numel() < 1:
            raise ValueError(f"TokenStates: values must be (M, d) and offsets (N+1,), got "
                             f"{tuple(self.values.shape)} and {tuple(o.shape)}")
        if int(o[0]) != 0 or int(o[-1]) != self.values.shape[0] or bool((o[1:] <= o[:-1]).any()):
            raise ValueError("TokenStates: offsets must start at 0, end at M and increase strictly "
                             "(every object needs a token)")

    @classmethod
    def from_padded(cls, states: Tensor, lengths: Tensor) -> TokenStates:
        """Pack right-padded states :math:`(N, T, d)` with token counts :math:`(N,)`."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        keep = torch.arange(states.shape[1]) < lengths.unsqueeze(1)
        return cls(states[keep], torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]))

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def lengths(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def batch(self, rows: Tensor) -> TokenBatch:
        """The tokens of objects ``rows`` as a float32 :class:`~mmalign.altmoe.connector.TokenBatch` (object
        ``j`` of the batch is ``rows[j]``)."""
        from .connector import TokenBatch

        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        n = self.lengths[rows]
        seg = torch.repeat_interleave(torch.arange(rows.numel()), n)
        first = torch.repeat_interleave(self.offsets[rows] - (n.cumsum(0) - n), n)
        return TokenBatch(self.values[first + torch.arange(seg.numel())].float(), seg, rows.numel())

    def column_stats(self, rows: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
        """Per-column mean and (unbiased) std of the tokens of objects ``rows``, float32, accumulated in float64
        over chunks of objects (the tokens are never all copied at once)."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        total = torch.zeros(self.dim, dtype=torch.float64)
        sq = torch.zeros(self.dim, dtype=torch.float64)
        count = 0
        for a in range(0, rows.numel(), chunk):
            x = self.batch(rows[a:a + chunk]).values.double()
            total += x.sum(0)
            sq += (x * x).sum(0)
            count += x.shape[0]
        mean = total / count
        var = (sq - count * mean * mean).clamp_min(0.0) / max(count - 1, 1)
        return mean.float(), var.sqrt().float()

    def pooled(self, chunk: int = 4096) -> Tensor:
        """The mean of each object's tokens, :math:`(N, d)` float32."""
        return torch.cat([self.batch(torch.arange(a, min(a + chunk, len(self)))).mean()
                          for a in range(0, len(self), chunk)])

    def affine(self, shift: Tensor, scale: Tensor, chunk: int = 65536) -> TokenStates:
        """Every token mapped to ``(x - shift) / scale`` (so :meth:`pooled` maps the same way), same dtype."""
        out = torch.empty_like(self.values)
        for a in range(0, out.shape[0], chunk):
            out[a:a + chunk] = ((self.values[a:a + chunk].float() - shift) / scale).to(out.dtype)
        return TokenStates(out, self.offsets)


def neighbour_tokens(emb: Tensor, edges: np.ndarray | Tensor, rows: Tensor | np.ndarray, max_neighbours: int = 16,
                     dtype: torch.dtype = torch.float16) -> TokenStates:
    r"""A token view of a structure embedding: object ``rows[i]`` gets one token :math:`[e_i \,\|\, e_j]` per
    neighbour :math:`j` in the (undirected, de-duplicated) ``edges``, the :obj:`max_neighbours` of highest degree
    first (ties by index), or the single token :math:`[e_i \,\|\, 0]` when it has none. The tokens' mean is
    :math:`[e_i \,\|\, \bar e_{N(i)}]`, the entity's own embedding beside its neighbours' mean, so a pooled model
    still reads :math:`e_i` unchanged, while a per-token connector sees each (entity, neighbour) pair on its own,
    like a message function of a graph network.

    Args:
        emb (Tensor): :math:`(V, d)` frozen embeddings of all nodes.
        edges (array): :math:`(E, 2)` node index pairs (direction and repeats ignored; self-loops dropped).
        rows (array): the nodes to give tokens for, in order.
        max_neighbours (int, optional): tokens per object at most. (default: :obj:`16`)
    """
    if max_neighbours < 1:
        raise ValueError(f"neighbour_tokens: max_neighbours must be >= 1, got {max_neighbours}")
    v = emb.shape[0]
    e = torch.as_tensor(np.asarray(edges), dtype=torch.long).reshape(-1, 2)
    e = e[e[:, 0] != e[:, 1]]
    both = torch.unique(torch.cat([e, e.flip(1)]), dim=0)  # sorted by (node, neighbour)
    deg = torch.bincount(both[:, 0], minlength=v)
    # each node's neighbours by degree (descending), ties by index (``both`` is sorted by index already):
    # two stable sorts, the last key first
    both = both[torch.sort(-deg[both[:, 1]], stable=True).indices]
    both = both[torch.sort(both[:, 0], stable=True).indices]
    start = torch.zeros(v + 1, dtype=torch.long)
    start[1:] = deg.cumsum(0)
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.long).reshape(-1)
    n = deg[rows].clamp(max=max_neighbours)
    lengths = n.clamp(min=1)
    seg = torch.repeat_interleave(torch.arange(rows.numel()), lengths)
    pos = torch.arange(seg.numel()) - torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)
    has = pos < n[seg]  # False only for the single token of an entity without neighbours
    nbr = torch.zeros(seg.numel(), emb.shape[1], dtype=emb.dtype)
    nbr[has] = emb[both[(start[rows][seg] + pos)[has], 1]]
    values = torch.cat([emb[rows][seg], nbr], dim=1).to(dtype)
    offsets = torch.zeros(rows.numel() + 1, dtype=torch.long)
    offsets[1:] = lengths.cumsum(0)
    return TokenStates(values, offsets)


@dataclass
class PairSet:
    r"""Row-aligned embeddings of several modalities of the same objects.

    Args:
        name (str): a label for logs and results.
        modalities (dict[str, Tensor]): modality name to float32 embeddings :math:`(N, d_m)`.
        ids (list[str]): the name of each row (item id, entity URI, ...).
        train, val, test (Tensor): disjoint row indices (long).
        info (dict): provenance (encoders, dimensions, sources).
        tokens (dict[str, TokenStates], optional): per-token states of some modalities, whose means are those
            modalities' rows (a connector can then route each token, as M3-JEPA's reference does, and pool
            after; keys and regression targets stay the pooled rows).
    """

    name: str
    modalities: dict[str, Tensor]
    ids: list[str]
    train: Tensor
    val: Tensor
    test: Tensor
    info: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, TokenStates] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.modalities) < 2:
            raise ValueError(f"pair set {self.name!r}: needs at least two modalities, got {list(self.modalities)}")
        n = len(self.ids)
        for k, v in self.modalities.items():
            if v.dim() != 2 or v.shape[0] != n:
                raise ValueError(f"pair set {self.name!r}: modality {k!r} has shape {tuple(v.shape)}, "
                                 f"expected ({n}, d)")
            if not torch.isfinite(v).all():
                raise ValueError(f"pair set {self.name!r}: modality {k!r} contains non-finite values")
        for k, ts in self.tokens.items():
            if k not in self.modalities or len(ts) != n or ts.dim != self.modalities[k].shape[1]:
                raise ValueError(f"pair set {self.name!r}: token states {k!r} ({len(ts)} x {ts.dim}) do not match "
                                 f"a modality of {n} rows (widths {self.dims})")
        for part in ("train", "val", "test"):
            idx = getattr(self, part)
            if idx.numel() and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"pair set {self.name!r}: {part} indices out of range [0, {n})")
        all_idx = torch.cat([self.train, self.val, self.test])
        if all_idx.unique().numel() != all_idx.numel():
            raise ValueError(f"pair set {self.name!r}: train, val and test overlap")

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    @property
    def dims(self) -> dict[str, int]:
        return {k: int(v.shape[1]) for k, v in self.modalities.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def standardised(self, *, token_stats: bool = False) -> PairSet:
        """A copy with every modality z-scored per column with the training rows' mean and std. Token states
        get the same map, so their mean stays the pooled row; with ``token_stats`` a modality with token states
        is z-scored with the statistics of its training objects' tokens instead, and its rows become the mean
        of the standardised tokens (the pooled rows' statistics can leave single tokens far out: SmolLM2's
        middle-layer states carry a massive activation on the first token, up to 85 pooled sd)."""
        mods, toks = {}, {}
        for k, v in self.modalities.items():
            if k in self.tokens and token_stats:
                mu, sd = self.tokens[k].column_stats(self.train)
                toks[k] = self.tokens[k].affine(mu, sd + 1e-6)
                mods[k] = toks[k].pooled()
                continue
            tr = v[self.train]
            mu, sd = tr.mean(0), tr.std(0) + 1e-6
            mods[k] = (v - mu) / sd
            if k in self.tokens:  # the same map per token, so the tokens' mean stays the pooled row
                toks[k] = self.tokens[k].affine(mu, sd)
        return PairSet(self.name, mods, self.ids, self.train, self.val, self.test,
                       {**self.info, "standardised": "token statistics" if token_stats and toks else True}, toks)


def split_indices(n: int, val: float = 0.1, test: float = 0.1, *, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """A seeded random split of ``range(n)`` into train/val/test index tensors."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val={val} and test={test} must be fractions with val + test < 1")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_te, n_va = int(round(n * test)), int(round(n * val))
    return perm[n_te + n_va:].sort().values, perm[n_te:n_te + n_va].sort().values, perm[:n_te].sort().values


def synthetic_pairs(n: int = 600, dims: tuple[int, ...] = (24, 16), *, noise: float = 0.05, nonlinear: bool = False,
                    seed: int = 0) -> PairSet:
    r"""A planted correspondence: a hidden :math:`z \sim \mathcal N(0, I_{8})` and modality :math:`m` is
    :math:`x_m = z W_m + \sigma \epsilon` (:math:`\tanh` applied when :obj:`nonlinear`), :math:`W_m` random."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 8, generator=g)
    mods = {}
    for i, d in enumerate(dims):
        w = torch.randn(8, d, generator=g) / 8 ** 0.5
        x = z @ w
        if nonlinear:
            x = torch.tanh(2 * x)
        mods[f"m{i}"] = x + noise * torch.randn(n, d, generator=g)
    tr, va, te = split_indices(n, 0.15, 0.25, seed=seed)
    return PairSet("synthetic", mods, [str(i) for i in range(n)], tr, va, te, {"noise": noise, "seed": seed})


# ------------------------------------------------------------------------------------------ MovieLens

def _read_csv(path: Path) -> list[dict[str, str]]:
    with open_text(path, newline="") as fh:
        return list(csv.DictReader(fh))


def movielens_items(root: str | os.PathLike | None = None, *, max_tags: int = 8) -> dict[str, Any]:
    r"""MovieLens latest-small items that have at least one rating, with their content text and ratings.

    Returns:
        dict: ``movie_ids`` (sorted ints), ``texts`` (``"<title>. Genres: ... Tags: ..."``, up to
        :obj:`max_tags` most frequent tags), ``users``, ``items``, ``ratings`` (0-based arrays), ``n_users``.
    """
    path = resolve_dataset(MOVIELENS, root, must_contain="movies.csv")
    movies = {int(r["movieId"]): r for r in _read_csv(path / "movies.csv")}
    rat = _read_csv(path / "ratings.csv")
    rated = sorted({int(r["movieId"]) for r in rat})
    missing = [m for m in rated if m not in movies]
    if missing:
        raise ValueError(f"{path / 'ratings.csv'}: movieIds {missing[:5]} are not in movies.csv")
    tags: dict[int, Counter[str]] = defaultdict(Counter)
    for r in _read_csv(path / "tags.csv"):
        tags[int(r["movieId"])][r["tag"].strip().lower()] += 1
    texts = []
    for m in rated:
        genres = movies[m]["genres"]
        g = "none" if genres == "(no genres listed)" else ", ".join(genres.split("|"))
        t = ", ".join(k for k, _ in sorted(tags[m].items(), key=lambda kv: (-kv[1], kv[0]))[:max_tags])
        texts.append(f"{movies[m]['title']}. Genres: {g}." + (f" Tags: {t}." if t else ""))
    col = {m: i for i, m in enumerate(rated)}
    user_ids = sorted({int(r["userId"]) for r in rat})
    urow = {u: i for i, u in enumerate(user_ids)}
    return {"movie_ids": rated, "texts": texts,
            "users": np.array([urow[int(r["userId"])] for r in rat], dtype=np.int64),
            "items": np.array([col[int(r["movieId"])] for r in rat], dtype=np.int64),
            "ratings": np.array([float(r["rating"]) for r in rat], dtype=np.float64),
            "n_users": len(user_ids), "source": str(path)}


def default_cache(*parts: str) -> Path:
    from aligncore.lm import cache_dir

    return cache_dir().joinpath("altmoe", *parts)


def movielens_text_store(root: str | os.PathLike | None = None, store: str | os.PathLike | None = None, *,
                         model: str = "smollm2", max_layers: int | None = 8, batch_size: int = 32,
                         threads: int | None = None,
                         progress: bool = True) -> EmbeddingStore:
    """Build (once) or open the SmolLM2 content-embedding store of the MovieLens items (576-d float32);
    ``store`` defaults to ``$ALIGNKIT_CACHE/altmoe/movielens-smollm2``. By default only the first 8 of
    SmolLM2's 30 layers run (mean of the states of layers 7 and 8), about a quarter of the cost on a CPU.
    Texts are encoded longest first so batches pad little; rows keep the sorted movie-id order."""
    from .encoders import LMTextEncoder
    from .store import build_store

    items = movielens_items(root)
    path = Path(store) if store is not None else default_cache("movielens-smollm2")
    ids = [str(m) for m in items["movie_ids"]]
    try:
        st = EmbeddingStore(path)
        if st.ids == ids:
            return st
    except (FileNotFoundError, ValueError):
        pass
    if threads is not None:
        torch.set_num_threads(threads)
    enc = LMTextEncoder(model, max_layers=max_layers)
    texts = items["texts"]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    tmp = build_store(path.with_name(path.name + ".by-length"), enc, [texts[i] for i in order],
                      ids=[ids[i] for i in order], batch_size=batch_size, progress=progress,
                      info={"encoder": f"LMTextEncoder({model}, n_layers=2, max_length=64, "
                                            f"max_layers={max_layers})"})
    from .store import StoreWriter

    inv = np.argsort(np.asarray(order))
    w = StoreWriter(path, len(ids), tmp.dim, ids=ids, info={**tmp.info, "texts": "movielens_items()"}, resume=False)
    for a in range(0, len(ids), 2048):
        w.write(tmp[inv[a:a + 2048]])
    return w.close()


def cached_token_states(path: str | os.PathLike, ids: list[str], texts: list[str], encoder, *,
                        batch_size: int = 32, progress: bool = True, info: dict[str, Any] | None = None) -> TokenStates:
    """Per-token states of ``texts`` from ``encoder`` (a :class:`~mmalign.altmoe.encoders.LMTextEncoder`, or a
    callable returning one, so that a cache hit loads no model), kept in float16 under ``path`` (``values.npy``,
    ``offsets.npy``, ``ids.json``) and reused while the ids match."""
    path = Path(path)
    meta = path / "ids.json"
    if meta.exists() and json.loads(meta.read_text()).get("ids") == ids:
        return TokenStates(torch.from_numpy(np.load(path / "values.npy")),
                           torch.from_numpy(np.load(path / "offsets.npy")))
    enc = encoder() if not hasattr(encoder, "tokens") else encoder
    states, lengths = enc.tokens(texts, batch_size=batch_size, progress=progress)
    ts = TokenStates.from_padded(states, lengths)
    del states
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "values.npy", ts.values.numpy())
    np.save(path / "offsets.npy", ts.offsets.numpy())
    meta.write_text(json.dumps({"ids": ids, "dtype": str(ts.values.dtype), **(info or {})}))
    return ts


def movielens_token_states(root: str | os.PathLike | None = None, path: str | os.PathLike | None = None, *,
                           model: str = "smollm2", max_layers: int | None = 8, batch_size: int = 32,
                           threads: int | None = None, progress: bool = True) -> tuple[TokenStates, list[str]]:
    """Build (once) or open the per-token SmolLM2 states of the MovieLens item texts: the states that
    :func:`movielens_text_store` mean-pools (same model, first 8 layers, mean of layers 7 and 8, 64 tokens at
    most), kept per token in float16 under ``path`` (default ``$ALIGNKIT_CACHE/altmoe/movielens-smollm2-tokens``;
    about 0.24 GB, 207,210 tokens; two minutes on a 2-core CPU). Returns the states and the movie ids."""
    from .encoders import LMTextEncoder

    items = movielens_items(root)
    ids = [str(m) for m in items["movie_ids"]]
    if threads is not None:
        torch.set_num_threads(threads)
    ts = cached_token_states(path if path is not None else default_cache("movielens-smollm2-tokens"), ids,
                             items["texts"], lambda: LMTextEncoder(model, max_layers=max_layers),
                             batch_size=batch_size, progress=progress,
                             info={"encoder": f"LMTextEncoder({model}, n_layers=2, max_length=64, "
                                              f"max_layers={max_layers}).tokens"})
    return ts, ids


def movielens_pairs(root: str | os.PathLike | None = None, *, text_store: str | os.PathLike | None = None,
                    mf_dim: int = 64, val: float = 0.1, test: float = 0.1, seed: int = 0,
                    tokens: bool = False, token_store: str | os.PathLike | None = None) -> PairSet:
    r"""MovieLens latest-small: ``text`` (SmolLM2 content embeddings) against ``behaviour`` (rank-:obj:`mf_dim`
    PureSVD item factors of the ratings), one row per rated movie (9,724), random 80/10/10 split by movie.

    Args:
        root (str, optional): the MovieLens folder or a folder containing ``recsys/ml-latest-small``.
        text_store (str, optional): an embedding store built by :func:`movielens_text_store` (full 576-d
            SmolLM2 embeddings); by default the bundled ``data/altmoe/movielens_smollm2_pca128.npz`` (the
            same embeddings reduced by PCA to 128 dimensions, float16) is used.
        mf_dim (int, optional): behaviour embedding width. (default: :obj:`64`)
        tokens (bool, optional): also give the text modality's per-token states
            (:func:`movielens_token_states`, built on first use) as ``tokens["text"]``; the ``text`` rows are
            then their means (the full 576-d embeddings, pooled from the float16 token states), and
            :obj:`text_store` must be left out. (default: :obj:`False`)
        token_store (str, optional): where the token states are kept (see :func:`movielens_token_states`).
    """
    from .encoders import mf_item_embeddings

    items = movielens_items(root)
    ids = [str(m) for m in items["movie_ids"]]
    toks: dict[str, TokenStates] = {}
    if tokens:
        if text_store is not None:
            raise ValueError("movielens_pairs: tokens=True pools the text rows from the token states; "
                             "leave text_store out")
        ts, ts_ids = movielens_token_states(root, token_store)
        if ts_ids != ids:
            raise ValueError("movielens_pairs: the token states' movie ids differ from the items'")
        toks["text"] = ts
        text = ts.pooled()
        text_src = f"mean of per-token SmolLM2 states ({token_store or 'default token store'})"
    elif text_store is not None:
        st = EmbeddingStore(text_store)
        missing = [i for i in ids if i not in st.index]
        if missing:
            raise ValueError(f"store {text_store}: lacks movie ids {missing[:5]} ({len(missing)} in all)")
        text = st[[st.index[i] for i in ids]]
        text_src = f"store {text_store} ({st.info.get('encoder', '?')})"
    else:
        npz_path = resolve_dataset("altmoe", None, must_contain="movielens_smollm2_pca128.npz") / \
            "movielens_smollm2_pca128.npz"
        z = np.load(npz_path)
        row = {int(m): i for i, m in enumerate(z["movie_ids"])}
        missing = [i for i in items["movie_ids"] if i not in row]
        if missing:
            raise ValueError(f"{npz_path}: lacks movie ids {missing[:5]} ({len(missing)} in all)")
        text = torch.from_numpy(z["emb"][[row[i] for i in items["movie_ids"]]].astype(np.float32))
        text_src = str(npz_path)
    beh = mf_item_embeddings(items["users"], items["items"], items["ratings"], items["n_users"],
                             len(ids), mf_dim, seed=seed)
    tr, va, te = split_indices(len(ids), val, test, seed=seed)
    return PairSet("movielens", {"text": text, "behaviour": beh}, ids, tr, va, te,
                   {"text": text_src, "behaviour": f"PureSVD rank {mf_dim} of {items['source']}/ratings.csv",
                    **({"tokens": ["text"]} if toks else {})}, toks)


# ------------------------------------------------------------------------------------------ DBP15K

def _uri_name(uri: str) -> str:
    from urllib.parse import unquote

    return unquote(uri.rsplit("/", 1)[-1]).replace("_", " ")


def dbp15k_links(pair: str = "zh_en", root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Raw DBP15K ``pair`` (``zh_en``/``ja_en``): KG1 triples and size, KG2 URIs, train and test links."""
    base = resolve_dataset("dbp15k", root, must_contain=f"{pair}/ent_ids_1") / pair

    def rows(name: str) -> list[list[str]]:
        with open_text(base / name, newline="") as fh:
            return [line.rstrip("\n").split("\t") for line in fh if line.strip()]

    ent1 = {int(r[0]): r[1] for r in rows("ent_ids_1")}
    ent2 = {int(r[0]): r[1] for r in rows("ent_ids_2")}
    trip = np.array([[int(x) for x in r] for r in rows("triples_1")], dtype=np.int64)
    sup = np.array([[int(x) for x in r] for r in rows("sup_pairs")], dtype=np.int64)
    ref = np.array([[int(x) for x in r] for r in rows("ref_pairs")], dtype=np.int64)
    return {"ent1": ent1, "ent2": ent2, "triples1": trip, "sup": sup, "ref": ref, "source": str(base)}


def dbp15k_pairs(pair: str = "zh_en", root: str | os.PathLike | None = None, *,
                 name_store: str | os.PathLike | None = None, struct_dim: int = 96, rel_dim: int = 32,
                 transe_dim: int = 128, transe_epochs: int = 100, val: float = 0.1, seed: int = 0,
                 model: str = "smollm2", max_layers: int | None = 1, name_encoder=None,
                 tokens: bool = False, structure_tokens: int = 0, progress: bool = True) -> PairSet:
    r"""DBP15K linked entities: ``structure`` of KG1 (:func:`~mmalign.altmoe.encoders.spectral_structure_embeddings`
    of its relation triples, joined with :func:`~mmalign.altmoe.encoders.transe_embeddings` trained on the same
    triples) against ``names`` of KG2 (SmolLM2 embeddings of the English DBpedia names, built once into an
    embedding store). No alignment link is used to build either side. The 4,500 seed links give train (minus
    :obj:`val` of them for validation), the 10,500 reference links the test set.

    Args:
        name_store (str, optional): store folder for the KG2 name embeddings (built when missing).
            (default: ``$ALIGNKIT_CACHE/altmoe/dbp15k-<pair>-names-smollm2-L<max_layers>``)
        max_layers (int, optional): SmolLM2 layers run for the names; entity names are 2-6 tokens and the
            default pools the input embeddings and the first layer's states, which takes a minute or two on a CPU
            for the 15,000 names (8 layers, as for MovieLens, took over an hour on a busy 2-core CPU).
            (default: :obj:`1`)
        name_encoder (callable, optional): any frozen text encoder ``list[str] -> (b, d)`` instead of SmolLM2.
        transe_dim (int, optional): width of the TransE part (0: spectral and relation-usage features only). On
            zh-en it raised the test Recall@1 of every connector from 0.014-0.018 to 0.021-0.028 (3 seeds). Trained
            once (1-5 minutes on a 2-core CPU) and cached under ``$ALIGNKIT_CACHE/altmoe``, keyed by the
            triples' content. (default: :obj:`128`)
        transe_epochs (int, optional): TransE passes over the triples. (default: :obj:`100`)
        tokens (bool, optional): also give the names' per-token states as ``tokens["names"]`` (cached beside
            the name store, ``<store>-tokens``); the ``names`` rows are then their means. A :obj:`name_encoder`
            must then have a ``tokens(texts, batch_size=, progress=)`` method like
            :meth:`~mmalign.altmoe.encoders.LMTextEncoder.tokens`. (default: :obj:`False`)
        structure_tokens (int, optional): when positive, also give a token view of the structure side as
            ``tokens["structure"]``: one token per KG1 neighbour (this many at most, highest degree first), each
            the entity's structure embedding joined with the neighbour's (:func:`neighbour_tokens`); the
            ``structure`` rows are then their mean, the entity's embedding beside its neighbours' mean (twice as
            wide). (default: :obj:`0`)
    """
    from .encoders import LMTextEncoder, spectral_structure_embeddings, transe_embeddings
    from .store import build_store

    raw = dbp15k_links(pair, root)
    kg1 = sorted(raw["ent1"])
    pos1 = {e: i for i, e in enumerate(kg1)}
    trip = raw["triples1"]
    edges = np.stack([[pos1[h] for h in trip[:, 0]], [pos1[t] for t in trip[:, 2]]], axis=1)
    struct = spectral_structure_embeddings(edges, len(kg1), struct_dim, relations=trip[:, 1], rel_dim=rel_dim,
                                           seed=seed)
    if transe_dim > 0:
        local = np.stack([edges[:, 0], trip[:, 1], edges[:, 1]], axis=1)
        key = hashlib.sha1(np.ascontiguousarray(local).tobytes()).hexdigest()[:16]
        cached = default_cache(f"transe-{key}-d{transe_dim}-e{transe_epochs}-s{seed}.npy")
        if cached.exists():
            te = torch.from_numpy(np.load(cached))
        else:
            te = transe_embeddings(local, len(kg1), transe_dim, epochs=transe_epochs, seed=seed, progress=progress)
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, te.numpy())
        struct = torch.cat([struct, te], dim=1)
    links = np.concatenate([raw["sup"], raw["ref"]])
    uris = [raw["ent2"][int(e)] for e in links[:, 1]]
    names = [_uri_name(u) for u in uris]
    path = Path(name_store) if name_store is not None else default_cache(
        f"dbp15k-{pair}-names-{model}-L{max_layers}")
    toks: dict[str, TokenStates] = {}
    if tokens:
        ts = cached_token_states(path.with_name(path.name + "-tokens"), uris, names, name_encoder if name_encoder
                                 is not None else lambda: LMTextEncoder(model, max_length=32, max_layers=max_layers),
                                 batch_size=64, progress=progress,
                                 info={"encoder": f"LMTextEncoder({model}, n_layers=2, max_length=32, "
                                                  f"max_layers={max_layers}).tokens", "texts": "KG2 URI names"})
        toks["names"] = ts
        name_emb = ts.pooled()
    else:
        try:
            st = EmbeddingStore(path)
            if st.ids != uris:
                raise ValueError("ids differ")
        except (FileNotFoundError, ValueError):
            enc = name_encoder if name_encoder is not None else LMTextEncoder(model, max_length=32,
                                                                             max_layers=max_layers)
            st = build_store(path, enc, names, ids=uris, batch_size=64, progress=progress,
                             info={"encoder": type(enc).__name__ if name_encoder is not None else
                                   f"LMTextEncoder({model}, n_layers=2, max_layers={max_layers})",
                                   "texts": "KG2 URI names"})
        name_emb = st.load()
    rows1 = [pos1[int(e)] for e in links[:, 0]]
    if structure_tokens > 0:
        toks["structure"] = neighbour_tokens(struct, edges, rows1, structure_tokens)
        s = toks["structure"].pooled()
    else:
        s = struct[rows1]
    n_sup = len(raw["sup"])
    perm = torch.randperm(n_sup, generator=torch.Generator().manual_seed(seed))
    n_va = int(round(n_sup * val))
    return PairSet(f"dbp15k-{pair.replace('_', '-')}", {"structure": s, "names": name_emb},
                   [f"{raw['ent1'][int(a)]}|{raw['ent2'][int(b)]}" for a, b in links],
                   perm[n_va:].sort().values, perm[:n_va].sort().values,
                   torch.arange(n_sup, len(links)),
                   {"structure": f"spectral {struct_dim} + relation-usage {rel_dim} + TransE {transe_dim} "
                                 f"({transe_epochs} epochs) of {raw['source']}/triples_1" +
                                 (f"; tokens [entity | neighbour], {structure_tokens} neighbours at most (rows their "
                                  "mean)" if structure_tokens > 0 else ""),
                    "names": f"store {path}" + ("-tokens (mean of the per-token states)" if "names" in toks
                                                else "")}, toks)


def dbp15k_pooled_pairs(pairs: tuple[str, ...] = ("zh_en", "ja_en"), root: str | os.PathLike | None = None, *,
                        seed: int = 0, progress: bool = True, **kwargs: Any) -> PairSet:
    r"""Several DBP15K language pairs pooled into one pair set: ``structure`` of each non-English KG (each
    embedded on its own, so every KG has its own, unrelated coordinates) against ``names`` of the English
    entities. One connector must then serve a cross-modal map that differs between sub-populations (which KG an
    entity comes from is not given), the situation a mixture of experts is meant for and a single linear map
    cannot fit.

    Each pair is built by :func:`dbp15k_pairs` (same encoders and caches). An English entity linked in more than
    one pair would put two identical name rows in the retrieval gallery, so only its first pair keeps it (zh-en
    and ja-en share 4,934 English entities). Train, validation and test rows are the union of the pairs'.

    Args:
        pairs (tuple[str, ...]): DBP15K pair folders, e.g. ``("zh_en", "ja_en")``.
        name_store (str, optional): a parent folder; pair ``p`` keeps its name store in ``<name_store>/<p>``.
        **kwargs: passed to :func:`dbp15k_pairs`.
    """
    if len(pairs) < 2:
        raise ValueError(f"dbp15k_pooled_pairs: pool at least two pairs, got {pairs}")
    stores = kwargs.pop("name_store", None)
    parts = [dbp15k_pairs(p, root, seed=seed, progress=progress, **kwargs,
                          name_store=None if stores is None else Path(stores) / p) for p in pairs]
    seen: set[str] = set()
    mods: dict[str, list[Tensor]] = {k: [] for k in parts[0].modalities}
    ids: list[str] = []
    split: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    kept_per_pair = {}
    for pair, ps in zip(pairs, parts, strict=True):
        if set(ps.modalities) != set(mods) or ps.dims != parts[0].dims:
            raise ValueError(f"dbp15k_pooled_pairs: {pair} has modalities {ps.dims}, expected {parts[0].dims}")
        english = [i.split("|", 1)[1] for i in ps.ids]
        keep = torch.tensor([e not in seen for e in english])
        seen.update(english)
        new_pos = torch.full((len(ps),), -1, dtype=torch.long)
        new_pos[keep] = torch.arange(int(keep.sum())) + len(ids)
        for k, v in ps.modalities.items():
            mods[k].append(v[keep])
        ids.extend(f"{pair}:{i}" for i, k in zip(ps.ids, keep.tolist(), strict=True) if k)
        for part in split:
            idx = new_pos[getattr(ps, part)]
            split[part].append(idx[idx >= 0])
        kept_per_pair[pair] = int(keep.sum())
    return PairSet("dbp15k-" + "+".join(p.split("_")[0] for p in pairs) + "-en",
                   {k: torch.cat(v) for k, v in mods.items()}, ids,
                   *(torch.cat(split[p]) for p in ("train", "val", "test")),
                   {"pooled": {p: {"rows": kept_per_pair[p], **ps.info} for p, ps in zip(pairs, parts, strict=True)}})


# ------------------------------------------------------------------------------------------ folders

def folder_pairs(path: str | os.PathLike, *, seed: int = 0) -> PairSet:
    """A folder with one ``<modality>.npy`` file (or embedding-store subfolder) per modality, row-aligned,
    and optionally ``split.json`` (``{"train": [...], "val": [...], "test": [...]}``; default 80/10/10)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"pair folder {path} does not exist")
    mods: dict[str, Tensor] = {}
    for p in sorted(path.iterdir()):
        if p.suffix == ".npy":
            mods[p.stem] = torch.from_numpy(np.load(p).astype(np.float32))
        elif p.is_dir() and (p / "meta.json").exists():
            mods[p.name] = EmbeddingStore(p).load()
    if len(mods) < 2:
        raise ValueError(f"{path}: needs at least two <modality>.npy files or stores, found {sorted(mods)}")
    n = {k: v.shape[0] for k, v in mods.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"{path}: modalities have different row counts {n}")
    (rows,) = set(n.values())
    if (path / "split.json").exists():
        sp = json.loads((path / "split.json").read_text())
        tr, va, te = (torch.tensor(sp.get(k, []), dtype=torch.long) for k in ("train", "val", "test"))
    else:
        tr, va, te = split_indices(rows, 0.1, 0.1, seed=seed)
    return PairSet(path.name, mods, [str(i) for i in range(rows)], tr, va, te, {"source": str(path)})


def load_pairs(spec: str, root: str | os.PathLike | None = None, *, seed: int = 0,
               text_store: str | None = None, tokens: bool = False, structure_tokens: int = 0,
               progress: bool = True) -> PairSet:
    """``"movielens"``, ``"dbp15k-zh-en"``, ``"dbp15k-ja-en"``, ``"dbp15k-zh+ja-en"`` (both pooled), ``"synthetic"`` or
    a folder path. ``tokens``: per-token text states (MovieLens texts, DBP15K names: :func:`movielens_pairs`,
    :func:`dbp15k_pairs`); ``structure_tokens``: a token view of the DBP15K structure side (:func:`dbp15k_pairs`)."""
    if structure_tokens and spec not in ("dbp15k-zh-en", "dbp15k-ja-en"):
        raise ValueError(f"--pairs {spec!r}: structure tokens are available for one DBP15K pair only")
    if tokens and spec not in ("movielens", "dbp15k-zh-en", "dbp15k-ja-en"):
        raise ValueError(f"--pairs {spec!r}: per-token states are available for movielens and one DBP15K pair only")
    if spec == "movielens":
        return movielens_pairs(root, text_store=text_store, seed=seed, tokens=tokens)
    if spec in ("dbp15k-zh-en", "dbp15k-ja-en"):
        return dbp15k_pairs(spec[len("dbp15k-"):].replace("-", "_"), root, seed=seed, tokens=tokens,
                            structure_tokens=structure_tokens, progress=progress)
    if spec == "dbp15k-zh+ja-en":
        return dbp15k_pooled_pairs(("zh_en", "ja_en"), root, seed=seed, progress=progress)
    if spec == "synthetic":
        return synthetic_pairs(seed=seed)
    if Path(spec).is_dir():
        return folder_pairs(spec, seed=seed)
    raise ValueError(f"--pairs {spec!r}: expected movielens, dbp15k-zh-en, dbp15k-ja-en, dbp15k-zh+ja-en, "
                     "synthetic or a folder")


def export_pca(store: EmbeddingStore, out: str | os.PathLike, dim: int = 128, *, id_key: str = "movie_ids") -> Path:
    r"""Write a compact copy of a store: the top-:obj:`dim` principal components (float16) with the row ids,
    as ``.npz`` (``emb``, ``<id_key>``, ``explained_variance_ratio``). This is how the bundled
    ``data/altmoe/movielens_smollm2_pca128.npz`` was made from :func:`movielens_text_store`."""
    x = store.load().double()
    xc = x - x.mean(0)
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    z = xc @ vt[:dim].T
    ratio = (s[:dim] ** 2).sum() / (s ** 2).sum()
    ids = np.array([int(i) for i in store.ids]) if all(i.isdigit() for i in store.ids) else np.array(store.ids)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, emb=z.numpy().astype(np.float16), **{id_key: ids},
                        explained_variance_ratio=np.array(float(ratio)))
    return out
