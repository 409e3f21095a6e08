r"""Sequential recommendation data for semantic IDs: Amazon Beauty (the S3-Rec / TIGER split, with LETTER's
published semantic IDs) and MovieLens latest-small, with the leave-one-out split of
`"Recommender Systems with Generative Retrieval" (TIGER) <https://arxiv.org/abs/2305.05065>`_:
for every user the last item is the test target, the second-to-last the validation target, and the rest is
training history.

Loaders resolve their folder through :func:`aligncore.data.resolve_dataset` (``root=``, then
``$ALIGNKIT_DATA``, then the project's ``data/``) and read a file or its gzip'd copy (``name.gz``).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from aligncore.data import open_text, resolve_dataset

BEAUTY = "recsys/amazon-beauty"
MOVIELENS = "recsys/ml-latest-small"
DATASETS = ("beauty", "ml-latest-small")


@dataclass
class SeqData:
    """Chronological interaction sequences of one dataset.

    Attributes:
        name (str): ``"beauty"`` or ``"ml-latest-small"``.
        sequences (list[list[int]]): per user, 0-based item ids in time order.
        n_items (int): number of items (ids are ``0 .. n_items - 1``).
        item_texts (list[str]): one content string per item (title, genres, tags; or attribute tokens).
        source (str): the folder read.
    """

    name: str
    sequences: list[list[int]]
    n_items: int
    item_texts: list[str]
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.sequences)


@dataclass
class Split:
    """Leave-one-out split: ``train[u]`` is the history, ``val[u]`` / ``test[u]`` the held-out items.

    Attributes:
        train (list[list[int]]): ``sequence[:-2]`` per user.
        val (np.ndarray): ``sequence[-2]`` per user, shape :math:`(U,)`.
        test (np.ndarray): ``sequence[-1]`` per user, shape :math:`(U,)`.
        full (list[list[int]]): the full sequences (for the test input history ``full[u][:-1]``).
    """

    train: list[list[int]]
    val: np.ndarray
    test: np.ndarray
    full: list[list[int]] = field(repr=False)


def leave_one_out(sequences: list[list[int]], *, min_len: int = 3) -> Split:
    """Split each sequence into training history, validation item (second-to-last) and test item (last).

    Args:
        sequences: chronological item ids per user.
        min_len: users with fewer interactions raise (every user needs one training item). (default: 3)

    Raises:
        ValueError: naming the first user whose sequence is too short.
    """
    for u, s in enumerate(sequences):
        if len(s) < min_len:
            raise ValueError(f"user {u} has {len(s)} interactions; leave-one-out needs at least {min_len}")
    return Split(train=[list(s[:-2]) for s in sequences],
                 val=np.array([s[-2] for s in sequences], dtype=np.int64),
                 test=np.array([s[-1] for s in sequences], dtype=np.int64),
                 full=[list(s) for s in sequences])


# ------------------------------------------------------------------------------------------ file helpers

# ------------------------------------------------------------------------------------------ Beauty

def load_beauty(root: str | os.PathLike | None = None, *, max_users: int | None = None) -> SeqData:
    """Amazon Beauty 5-core as preprocessed by S3-Rec (22,363 users, 12,101 items).

    Item ``k`` (0-based) is S3-Rec item ``k + 1`` and LETTER's item ``"k"``. The dataset carries no item text,
    only attribute ids (brand and category tokens), so ``item_texts`` are strings like ``"a12 a407 a3"``.

    Args:
        root: dataset folder or a folder that contains ``recsys/amazon-beauty``. (default: :obj:`None`)
        max_users: keep only the first users (for fast tests); item ids are unchanged. (default: all)
    """
    path = resolve_dataset(BEAUTY, root, must_contain="Beauty.txt")
    seqs: list[list[int]] = []
    with open_text(path / "Beauty.txt", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                ids = [int(p) - 1 for p in parts[1:]]
            except ValueError as e:
                raise ValueError(f"{path / 'Beauty.txt'} line {lineno}: not integers: {line[:60]!r}") from e
            if min(ids, default=0) < 0:
                raise ValueError(f"{path / 'Beauty.txt'} line {lineno}: item ids must be >= 1")
            seqs.append(ids)
            if max_users is not None and len(seqs) >= max_users:
                break
    with open_text(path / "Beauty_item2attributes.json", newline="") as fh:
        attrs = {int(k) - 1: v for k, v in json.load(fh).items()}
    n_items = max(max(attrs), max(max(s) for s in seqs)) + 1
    texts = [" ".join(f"a{a}" for a in attrs.get(i, [])) for i in range(n_items)]
    return SeqData("beauty", seqs, n_items, texts, str(path))


def letter_semantic_ids(root: str | os.PathLike | None = None) -> np.ndarray:
    """LETTER's published Beauty semantic IDs (4 levels x 256 codes), shape :math:`(12101, 4)`, row = item id."""
    path = resolve_dataset(BEAUTY, root, must_contain="letter-sid/Beauty.index.json")
    with open_text(path / "letter-sid" / "Beauty.index.json", newline="") as fh:
        raw = json.load(fh)
    out = np.zeros((len(raw), 4), dtype=np.int64)
    for k, toks in raw.items():
        i = int(k)
        if len(toks) != 4:
            raise ValueError(f"{path}/letter-sid/Beauty.index.json: item {k} has {len(toks)} tokens, expected 4")
        out[i] = [int(t.split("_")[1].rstrip(">")) for t in toks]
    return out


# ------------------------------------------------------------------------------------------ MovieLens

def load_movielens(root: str | os.PathLike | None = None, *, max_tags: int = 8,
                   max_users: int | None = None) -> SeqData:
    """MovieLens latest-small as chronological sequences (every rating is an interaction, ordered by timestamp,
    ties by movie id); items are the rated movies, 0-based in ascending movieId order; text is
    ``"<title>. Genres: ... Tags: ..."`` with the :obj:`max_tags` most frequent tags.
    """
    path = resolve_dataset(MOVIELENS, root, must_contain="movies.csv")
    with open_text(path / "movies.csv", newline="") as fh:
        movies = {int(r["movieId"]): r for r in csv.DictReader(fh)}
    with open_text(path / "ratings.csv", newline="") as fh:
        rat = [(int(r["userId"]), int(r["movieId"]), int(r["timestamp"])) for r in csv.DictReader(fh)]
    tags: dict[int, Counter[str]] = defaultdict(Counter)
    with open_text(path / "tags.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            tags[int(r["movieId"])][r["tag"].strip().lower()] += 1
    rated = sorted({m for _, m, _ in rat})
    col = {m: i for i, m in enumerate(rated)}
    by_user: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for u, m, t in rat:
        by_user[u].append((t, m))
    users = sorted(by_user)
    if max_users is not None:
        users = users[:max_users]
    seqs = [[col[m] for _, m in sorted(by_user[u])] for u in users]
    texts = []
    for m in rated:
        if m not in movies:
            raise ValueError(f"{path / 'ratings.csv'}: movieId {m} is not in movies.csv")
        g = movies[m]["genres"]
        g = "none" if g == "(no genres listed)" else ", ".join(g.split("|"))
        t = ", ".join(k for k, _ in sorted(tags[m].items(), key=lambda kv: (-kv[1], kv[0]))[:max_tags])
        texts.append(f"{movies[m]['title']}. Genres: {g}." + (f" Tags: {t}." if t else ""))
    return SeqData("ml-latest-small", seqs, len(rated), texts, str(path))


def load(name: str, root: str | os.PathLike | None = None, *, max_users: int | None = None) -> SeqData:
    """Load ``"beauty"`` or ``"ml-latest-small"``."""
    if name == "beauty":
        return load_beauty(root, max_users=max_users)
    if name in ("ml-latest-small", "movielens"):
        return load_movielens(root, max_users=max_users)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def interactions(train: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training interactions as arrays ``(user, item, next_item)``; ``next_item`` is the item that follows in the
    user's history (the previous one for the last item; the item itself for one-item histories): the
    co-occurrence partner of DAS's dual co-occurrence alignment."""
    us, its, nx = [], [], []
    for u, s in enumerate(train):
        for t, i in enumerate(s):
            us.append(u)
            its.append(i)
            nx.append(s[t + 1] if t + 1 < len(s) else (s[t - 1] if t > 0 else i))
    return np.array(us, dtype=np.int64), np.array(its, dtype=np.int64), np.array(nx, dtype=np.int64)


def item_counts(train: list[list[int]], n_items: int) -> np.ndarray:
    """Training interactions per item, :math:`(I,)` int64 (held-out validation and test items are not counted)."""
    flat = np.fromiter((i for s in train for i in s), dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n_items):
        raise ValueError(f"item ids must lie in [0, {n_items}), got [{flat.min()}, {flat.max()}]")
    return np.bincount(flat, minlength=n_items)
