r"""Exact GED labels for the within-split pairs of a dataset (GraphEdX protocol), in parallel, cached and resumable.

``python -m graphalign.label --dataset mutagenicity --costs graphedx --max-nodes 20 --workers 2``

Pairs are solved with :func:`graphalign.exact_ged` in worker processes; every finished chunk is committed to a SQLite
cache keyed by dataset, costs and filter parameters (``$ALIGNKIT_CACHE/graphalign/labels/<key>/labels.sqlite``), so
a killed run restarted with the same arguments skips the pairs already done. Within each split the ordered pairs
(both directions: costs may be asymmetric) are visited in a seeded random order, so a partial run holds a uniform
sample of pairs. ``--out`` exports what is done to a compressed ``.npz`` (see :class:`GEDLabels`).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import signal
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from aligncore.config import field, parse_config

from .costs import EditCosts, get_costs
from .data import arrays_to_graphs, graphedx_split, graphs_to_arrays, load_dataset, within_split_pairs
from .exact import GraphArrays, exact_ged

__all__ = ["LabelConfig", "GEDLabels", "label_dataset", "export_labels", "load_labels", "labels_markdown", "cache_key", "main"]

SPLITS = ("train", "val", "test")


@dataclass
class LabelConfig:
    """Options of ``python -m graphalign.label``."""

    dataset: str = field("aids700nef", help="dataset to label",
                         choices=["aids700nef", "linux", "aids", "mutagenicity"])
    costs: str = field("graphedx", help="edit costs: a preset (unit, graphedx) or 'node_del,node_ins,edge_del,"
                                        "edge_ins[,node_sub]'; GraphEdX (arXiv 2409.17687) unequal = 3,1,2,1")
    max_nodes: int | None = field(20, help="drop graphs with more nodes (GraphEdX: 20)")
    dedupe: bool = field(True, help="drop graphs isomorphic (ignoring labels) to an earlier one (GraphEdX protocol)")
    seed: int = field(0, help="seed of the 60/20/20 shuffle (GraphEdX: random.seed(0)) and of the pair order")
    labelled: bool = field(False, help="compare node labels (atom types), relabel costing costs.node_sub; GraphEdX's "
                                       "unequal-cost setting is unlabelled")
    splits: list[str] = field(default_factory=lambda: list(SPLITS), help="splits to label, in this order")
    workers: int = field(2, help="worker processes")
    timeout: float = field(60.0, help="seconds per pair; a timed-out pair is stored with its bounds, optimal=0")
    timeout_clock: str = field("wall", help="what --timeout measures: wall time, or the worker's CPU time (same "
                                            "labels whatever the machine's load)", choices=["wall", "cpu"])
    chunk_size: int = field(32, help="pairs per task sent to a worker (and per cache commit)")
    root: str | None = field(None, help="dataset folder (default: $ALIGNKIT_DATA, then the project's data/)")
    cache_dir: str | None = field(None, help="cache folder (default: $ALIGNKIT_CACHE/graphalign/labels)")
    time_budget: float | None = field(None, help="stop submitting new pairs after this many seconds (resume later)")
    max_pairs: int | None = field(None, help="label at most this many new pairs in this run")
    retry_timeouts: bool = field(False, help="also re-solve cached pairs that timed out (with this run's --timeout), "
                                             "before any new pair; bounds only ever tighten")
    out: str | None = field(None, help="export the labels done so far to this .npz")
    progress: bool = field(True, help="show a progress bar (pairs/s, ETA)")


def cache_key(cfg: LabelConfig) -> str:
    """Folder name of the cache: dataset, costs and every parameter that changes the pairs or their values."""
    c = get_costs(cfg.costs)
    return (f"{cfg.dataset.lower()}-{c.key()}-n{cfg.max_nodes}-dedupe{int(cfg.dedupe)}-seed{cfg.seed}-"
            f"{'labelled' if cfg.labelled else 'unlabelled'}")


def _cache_root(cfg: LabelConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    base = os.environ.get("ALIGNKIT_CACHE", str(Path.home() / ".cache" / "alignkit"))
    return Path(base).expanduser() / "graphalign" / "labels"


def _prepare(cfg: LabelConfig) -> tuple[list[nx.Graph], dict[str, list[int]]]:
    graphs = load_dataset(cfg.dataset, cfg.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # networkx's WL-hash change notice
        sp = graphedx_split(graphs, max_nodes=cfg.max_nodes, dedupe=cfg.dedupe, seed=cfg.seed)
    return graphs, sp.as_dict()


def _open_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=60)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS pairs (split TEXT, i INTEGER, j INTEGER, value REAL, lower REAL, "
               "upper REAL, optimal INTEGER, seconds REAL, PRIMARY KEY (split, i, j))")
    db.commit()
    return db


# ---- worker side ---------------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _worker_init(arrays: dict[str, np.ndarray], costs: EditCosts, labelled: bool, timeout: float,
                 clock: str = "wall") -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C stops the driver, which terminates the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    _W["graphs"] = arrays_to_graphs(arrays)
    _W["costs"], _W["labelled"], _W["timeout"], _W["clock"] = costs, labelled, timeout, clock
    _W["cache"] = {}


def _garr(gi: int) -> GraphArrays:
    from .exact import as_graph_arrays

    c = _W["cache"]
    if gi not in c:
        c[gi] = as_graph_arrays(_W["graphs"][gi], "label" if _W["labelled"] else None)
    return c[gi]


def _worker_run(task: list[tuple[str, int, int, int, int]]) -> list[tuple]:
    out = []
    for split, i, j, gi, gj in task:
        r = exact_ged(_garr(gi), _garr(gj), _W["costs"], timeout=_W["timeout"],
                      node_label="label" if _W["labelled"] else None, timeout_clock=_W["clock"])
        out.append((split, i, j, r.value, r.lower_bound, r.upper_bound, int(r.optimal), r.seconds))
    return out


# ---- driver --------------------------------------------------------------------------------------------------------

# a re-solved pair keeps the tightest bounds of all attempts
_UPSERT = ("INSERT INTO pairs VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(split, i, j) DO UPDATE SET "
           "value = min(value, excluded.value), lower = max(lower, excluded.lower), "
           "upper = min(upper, excluded.upper), optimal = max(optimal, excluded.optimal), "
           "seconds = seconds + excluded.seconds")


def label_dataset(cfg: LabelConfig) -> Path:
    """Label (or continue labelling) the within-split pairs described by ``cfg``; returns the SQLite cache path.

    Resumable: pairs already in the cache are skipped. Stops early (cleanly) at ``time_budget`` / ``max_pairs``.
    """
    costs = get_costs(cfg.costs)
    for s in cfg.splits:
        if s not in SPLITS:
            raise ValueError(f"unknown split {s!r}; choose from {SPLITS}")
    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    graphs, splits = _prepare(cfg)
    folder = _cache_root(cfg) / cache_key(cfg)
    db = _open_db(folder / "labels.sqlite")
    meta = {"config": {k: v for k, v in dataclasses.asdict(cfg).items()
                       if k in ("dataset", "costs", "max_nodes", "dedupe", "seed", "labelled")},
            "costs": costs.as_dict(), "splits": splits}
    old = db.execute("SELECT value FROM meta WHERE key='meta'").fetchone()
    if old is not None and json.loads(old[0])["splits"] != splits:
        raise RuntimeError(f"cache {folder} was built with a different split of the graphs; remove it or change "
                           f"--cache-dir")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('meta', ?)", (json.dumps(meta),))
    db.commit()
    query = "SELECT split, i, j FROM pairs" + (" WHERE optimal = 1" if cfg.retry_timeouts else "")
    done = {(s, i, j) for s, i, j in db.execute(query)}
    rng = np.random.default_rng(cfg.seed)
    todo: list[tuple[str, int, int, int, int]] = []
    total = 0
    for s in cfg.splits:
        idx = splits[s]
        pairs = within_split_pairs(len(idx), ordered=True)
        pairs = pairs[rng.permutation(len(pairs))]
        total += len(pairs)
        todo.extend((s, int(i), int(j), idx[i], idx[j]) for i, j in pairs if (s, int(i), int(j)) not in done)
    if cfg.retry_timeouts:  # the timed-out pairs first, then new ones
        timed_out = {(s, i, j) for s, i, j in db.execute("SELECT split, i, j FROM pairs WHERE optimal = 0")}
        todo.sort(key=lambda t: (t[0], t[1], t[2]) not in timed_out)
    if cfg.max_pairs is not None:
        todo = todo[:cfg.max_pairs]
    n_done = sum(1 for d in done if d[0] in cfg.splits)  # cached pairs of the splits asked for
    print(f"[graphalign.label] {cache_key(cfg)}: {total} within-split pairs ({', '.join(f'{s}: {len(splits[s])} graphs' for s in cfg.splits)}); "
          f"{len(done)} cached, {len(todo)} to do, {cfg.workers} workers; cache {folder}", file=sys.stderr, flush=True)
    arrays = graphs_to_arrays(graphs, "label" if _has_labels(graphs) else None)
    t0 = time.perf_counter()

    # the pool's feeder thread drains this generator eagerly: a semaphore keeps at most 2 chunks per worker in
    # flight, so that the time budget is checked when a chunk is actually handed out
    slots = threading.Semaphore(2 * cfg.workers)
    stop = threading.Event()

    def tasks() -> Iterator[list[tuple[str, int, int, int, int]]]:
        for a in range(0, len(todo), cfg.chunk_size):
            while not slots.acquire(timeout=0.2):
                if stop.is_set():
                    return
            if stop.is_set() or (cfg.time_budget is not None and time.perf_counter() - t0 > cfg.time_budget):
                return
            yield todo[a:a + cfg.chunk_size]

    from tqdm.auto import tqdm

    bar = tqdm(total=n_done + len(todo), initial=n_done, unit="pair", disable=not cfg.progress, smoothing=0.05,
               dynamic_ncols=True)
    n_timeout = 0
    ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, _stop)  # a clean stop: finished chunks are already committed
    try:
        with ctx.Pool(cfg.workers, initializer=_worker_init, initargs=(arrays, costs, cfg.labelled, cfg.timeout,
                                                                           cfg.timeout_clock)) as pool:
            try:
                for res in pool.imap_unordered(_worker_run, tasks()):
                    slots.release()
                    db.executemany(_UPSERT, res)
                    db.commit()
                    n_timeout += sum(1 for r in res if not r[6])
                    bar.update(len(res))
                    if n_timeout:
                        bar.set_postfix(timeouts=n_timeout, refresh=False)
            finally:
                stop.set()  # lets the feeder thread leave tasks() before the pool is terminated
    except KeyboardInterrupt:
        print(f"\n[graphalign.label] stopped; {bar.n} pairs done, rerun the same command to resume",
              file=sys.stderr, flush=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
        bar.close()
        db.close()
    if cfg.out:
        export_labels(folder / "labels.sqlite", cfg.out, graphs=graphs, splits=splits)
    return folder / "labels.sqlite"


def _has_labels(graphs: list[nx.Graph]) -> bool:
    return all("label" in g.nodes[u] for g in graphs[:50] for u in g)


@dataclass
class GEDLabels:
    """Exact GED labels of the within-split pairs of one dataset (what :func:`load_labels` returns).

    Attributes:
        graphs: the kept graphs, split after split (``splits[s]`` indexes into it).
        splits: ``{"train": [...], "val": [...], "test": [...]}`` positions in ``graphs``.
        ged, lower, upper: ``{split: (n_s, n_s) float64}``; ``ged[s][i, j]`` = GED(graph i -> graph j) of that split
            (``nan`` when not labelled; the value is an upper bound only where ``optimal`` is False); diagonal 0.
        optimal: ``{split: (n_s, n_s) bool}`` (False where not labelled or timed out).
        costs: the edit costs; meta: how the labels were made (config, dataset indices of the graphs).
    """

    graphs: list[nx.Graph]
    splits: dict[str, list[int]]
    ged: dict[str, np.ndarray]
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    optimal: dict[str, np.ndarray]
    costs: EditCosts
    meta: dict[str, Any]

    def pairs(self, split: str, *, only_optimal: bool = True) -> np.ndarray:
        """Labelled pairs of a split as rows ``(i, j, ged)`` with ``i``, ``j`` positions in ``splits[split]``."""
        g = self.ged[split]
        m = self.optimal[split] if only_optimal else np.isfinite(g)
        m = m & ~np.eye(g.shape[0], dtype=bool)
        i, j = np.nonzero(m)
        return np.stack([i, j, g[i, j]], axis=1)


def export_labels(db_path: str | os.PathLike, out: str | os.PathLike, *, graphs: list[nx.Graph] | None = None,
                  splits: dict[str, list[int]] | None = None, root: str | None = None) -> Path:
    """Write the cached labels to a compressed ``.npz`` holding the graphs, the splits, the matrices and the meta."""
    db = sqlite3.connect(str(db_path))
    meta = json.loads(db.execute("SELECT value FROM meta WHERE key='meta'").fetchone()[0])
    if graphs is None:
        graphs = load_dataset(meta["config"]["dataset"], root)
    splits = splits or meta["splits"]
    order = [g for s in SPLITS for g in splits[s]]
    payload: dict[str, np.ndarray] = {}
    counts = {}
    for s in SPLITS:
        n = len(splits[s])
        val = np.full((n, n), np.nan, dtype=np.float32)
        lo = np.full((n, n), np.nan, dtype=np.float32)
        hi = np.full((n, n), np.nan, dtype=np.float32)
        opt = np.zeros((n, n), dtype=bool)
        rows = db.execute("SELECT i, j, value, lower, upper, optimal FROM pairs WHERE split=?", (s,)).fetchall()
        if rows:
            r = np.array(rows, dtype=np.float64)
            i, j = r[:, 0].astype(int), r[:, 1].astype(int)
            val[i, j], lo[i, j], hi[i, j], opt[i, j] = r[:, 2], r[:, 3], r[:, 4], r[:, 5] > 0
        np.fill_diagonal(val, 0)
        np.fill_diagonal(lo, 0)
        np.fill_diagonal(hi, 0)
        np.fill_diagonal(opt, True)
        payload.update({f"{s}_ged": val, f"{s}_lower": lo, f"{s}_upper": hi, f"{s}_optimal": opt})
        counts[s] = {"pairs": n * (n - 1), "labelled": len(rows), "optimal": int(sum(int(x[5]) for x in rows))}
    db.close()
    meta = dict(meta, counts=counts, dataset_index=order)
    arr = graphs_to_arrays([graphs[g] for g in order], "label" if _has_labels(graphs) else None)
    payload.update(arr)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, meta=np.array(json.dumps(meta)), **payload)
    return out


def load_labels(path: str | os.PathLike) -> GEDLabels:
    """Read a label file written by :func:`export_labels` (e.g. ``data/graphs/labels/*.npz``)."""
    with np.load(path, allow_pickle=False) as z:
        arr = {k: z[k] for k in z.files}
    meta = json.loads(str(arr["meta"]))
    graphs = arrays_to_graphs(arr)
    sizes = [len(meta["splits"][s]) for s in SPLITS]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    splits = {s: list(range(int(starts[k]), int(starts[k + 1]))) for k, s in enumerate(SPLITS)}
    get = {name: {s: arr[f"{s}_{name}"].astype(np.float64 if name != "optimal" else bool) for s in SPLITS}
           for name in ("ged", "lower", "upper", "optimal")}
    return GEDLabels(graphs, splits, get["ged"], get["lower"], get["upper"], get["optimal"],
                     EditCosts(**meta["costs"]), meta)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(LabelConfig, argv, description="Exact GED labels of within-split pairs (GraphEdX protocol).")
    try:
        path = label_dataset(cfg)
    except KeyboardInterrupt:
        return 130
    print(f"[graphalign.label] cache: {path}" + (f"; exported {cfg.out}" if cfg.out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def labels_markdown(paths: list[str | os.PathLike]) -> str:
    """A markdown table of label files (graphs per split, pairs labelled / optimal), for the README section."""
    out = ["| file | dataset | costs | node labels | graphs train/val/test | pairs labelled (of all) | optimal |",
           "|---|---|---|---|---|---:|---:|"]
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
        cnt = meta["counts"]
        lab = sum(cnt[s]["labelled"] for s in SPLITS)
        allp = sum(cnt[s]["pairs"] for s in SPLITS)
        opt = sum(cnt[s]["optimal"] for s in SPLITS)
        c = meta["costs"]
        cost = f"del/ins node {c['node_del']:g}/{c['node_ins']:g}, edge {c['edge_del']:g}/{c['edge_ins']:g}" + (
            f", relabel {c['node_sub']:g}" if meta["config"]["labelled"] else "")
        per = ", ".join(f"{s} {cnt[s]['labelled']}/{cnt[s]['pairs']}" for s in SPLITS)
        out.append(f"| {Path(p).name} | {meta['config']['dataset']} | {cost} | "
                   f"{'atom type' if meta['config']['labelled'] else 'none'} | "
                   f"{'/'.join(str(len(meta['splits'][s])) for s in SPLITS)} | {lab} of {allp} ({per}) | "
                   f"{opt / max(lab, 1):.1%} |")
    return "\n".join(out)
