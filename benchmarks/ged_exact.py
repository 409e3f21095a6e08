"""Exact GED: graphalign.exact_ged against networkx.graph_edit_distance, and solve times on Mutagenicity.

1. Random G(n, 0.3) pairs, n in {7, 8, 9}, unit costs, unlabelled: both solvers on the same pairs in one run; median
   time of each and the ratio (networkx runs under its own ``timeout``; a timed-out networkx run is reported as such
   and its time is a lower bound on networkx's).
2. Mutagenicity (TU) graphs with <= 20 nodes after the GraphEdX filter/dedupe/split, random within-split ordered pairs,
   GraphEdX costs (node del 3, node ins 1, edge del 2, edge ins 1), unlabelled as in the GraphEdX paper: median and p95
   solve time on one core and the share solved to optimality within the timeout.

Times are CPU seconds of the benchmark process (``time.process_time``, one thread), so that other jobs on a shared
machine do not inflate them; the timeout of exact_ged is in CPU time too (``timeout_clock="cpu"``).

    python benchmarks/ged_exact.py                       # the default budget (a few minutes)
    python benchmarks/ged_exact.py --quick               # a smoke run
    python benchmarks/ged_exact.py --tu-root ../shared/data/graphs/TUDataset/Mutagenicity

Writes benchmarks/results/ged_exact.json (format of DESIGN.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy/BLAS single-threaded
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from graphalign import GRAPHEDX, UNIT, exact_ged  # noqa: E402


def nx_ged(g1, g2, timeout):
    t0, c0 = time.perf_counter(), time.process_time()
    v = nx.graph_edit_distance(g1, g2, timeout=timeout)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return v, dc, dt >= timeout * 0.98


def ours(g1, g2, costs, **kw):
    c0 = time.process_time()
    r = exact_ged(g1, g2, costs, **kw)
    return r, time.process_time() - c0


def bench_random(ns, pairs_per_n, nx_timeout, seed):
    rows = []
    for n in ns:
        rng = random.Random(seed + n)
        mine, theirs, agree, nx_to = [], [], 0, 0
        for _ in range(pairs_per_n[n]):
            g1 = nx.gnp_random_graph(n, 0.3, seed=rng.randint(0, 10**9))
            g2 = nx.gnp_random_graph(n, 0.3, seed=rng.randint(0, 10**9))
            r, dc = ours(g1, g2, UNIT)
            v, dt, to = nx_ged(g1, g2, nx_timeout)
            mine.append(dc)
            theirs.append(dt)
            nx_to += int(to)
            if not to:
                if v != r.value:
                    raise AssertionError(f"n={n}: networkx {v} != exact_ged {r.value}")
                agree += 1
            print(f"  G({n},0.3) pair: exact_ged {r.value:g} in {dc * 1e3:.1f} ms CPU; networkx {v:g} in "
                  f"{dt:.2f} s CPU{' (timed out)' if to else ''}", flush=True)
        row = {"benchmark": "random_vs_networkx", "graphs": f"G({n},0.3)", "n": n, "costs": "unit",
               "pairs": len(mine), "median_seconds": float(np.median(mine)),
               "networkx_median_seconds": float(np.median(theirs)),
               "speedup_median": float(np.median(theirs) / np.median(mine)),
               "speedup_min": float(np.min(np.array(theirs) / np.array(mine))),
               "networkx_timeouts": nx_to, "networkx_timeout_s": nx_timeout, "values_equal": agree}
        rows.append(row)
    return rows


def mutagenicity_graphs(tu_root):
    from graphalign.data import graphedx_split, load_tu_dataset

    try:
        graphs = load_tu_dataset("mutagenicity", tu_root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sp = graphedx_split(graphs, max_nodes=20, seed=0)
        return graphs, sp.as_dict(), "TU Mutagenicity"
    except FileNotFoundError:
        from graphalign.label import load_labels

        files = sorted((Path(__file__).resolve().parents[1] / "data" / "graphs" / "labels").glob("mutagenicity*.npz"))
        if not files:
            raise
        lab = load_labels(files[0])
        return lab.graphs, lab.splits, f"graphs of {files[0].name}"


def bench_mutagenicity(n_pairs, timeout, seed, tu_root):
    graphs, splits, src = mutagenicity_graphs(tu_root)
    rng = random.Random(seed)
    sizes = {s: len(v) for s, v in splits.items()}
    names = list(splits)
    weights = [sizes[s] * (sizes[s] - 1) for s in names]
    times, walls, opt, gaps = [], [], 0, []
    for k in range(n_pairs):
        s = rng.choices(names, weights)[0]
        i, j = rng.sample(splits[s], 2)
        r, dc = ours(graphs[i], graphs[j], GRAPHEDX, timeout=timeout, timeout_clock="cpu")
        times.append(dc)
        walls.append(r.seconds)
        opt += int(r.optimal)
        if not r.optimal:
            gaps.append(r.upper_bound - r.lower_bound)
        if (k + 1) % 10 == 0:
            print(f"  mutagenicity {k + 1}/{n_pairs}: median {np.median(times):.3f} s, optimal {opt}/{k + 1}",
                  flush=True)
    t = np.array(times)
    return [{"benchmark": "mutagenicity_graphedx", "graphs": f"Mutagenicity <=20 nodes ({src})", "costs": "graphedx",
             "labelled": False, "pairs": n_pairs, "timeout_s": timeout, "median_seconds": float(np.median(t)),
             "p95_seconds": float(np.percentile(t, 95)), "mean_seconds": float(t.mean()),
             "max_seconds": float(t.max()), "wall_median_seconds": float(np.median(walls)),
             "optimal_share": opt / n_pairs,
             "mean_gap_when_not_optimal": float(np.mean(gaps)) if gaps else 0.0}]


def markdown_table(doc: dict) -> str:
    """The README table, generated from benchmarks/results/ged_exact.json."""
    out = ["| benchmark | graphs | costs | pairs | exact_ged median CPU s | p95 CPU s | networkx median CPU s | speedup (median) "
           "| optimal |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        nx_med = r.get("networkx_median_seconds")
        nx_to = r.get("networkx_timeouts", 0)
        out.append(
            f"| {r['benchmark']} | {r['graphs']} | {r['costs']} | {r['pairs']} | {r['median_seconds']:.4f} | "
            + (f"{r['p95_seconds']:.3f}" if "p95_seconds" in r else "-") + " | "
            + (f"{nx_med:.2f}" + (f" ({nx_to} timed out at {r['networkx_timeout_s']:g} s)" if nx_to else "")
               if nx_med is not None else "-") + " | "
            + (f"{r['speedup_median']:.0f}x" if "speedup_median" in r else "-") + " | "
            + (f"{r['optimal_share']:.1%} within {r['timeout_s']:g} s" if "optimal_share" in r else "100%") + " |")
    out.append(f"\n{doc['machine']}; {doc['budget']}.")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: few pairs")
    p.add_argument("--nx-timeout", type=float, default=60.0, help="timeout given to networkx per pair (s)")
    p.add_argument("--mut-pairs", type=int, default=300, help="Mutagenicity pairs")
    p.add_argument("--timeout", type=float, default=10.0, help="exact_ged timeout per Mutagenicity pair (s)")
    p.add_argument("--tu-root", default=None, help="TU Mutagenicity folder (default: $ALIGNKIT_DATA, data/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="do not write the results JSON")
    p.add_argument("--markdown", action="store_true", help="print the table of the saved results JSON and exit")
    a = p.parse_args(argv)
    if a.markdown:
        import json

        from _common import RESULTS

        print(markdown_table(json.loads((RESULTS / "ged_exact.json").read_text())))
        return
    torch.set_num_threads(1)
    pairs_per_n = {7: 10, 8: 8, 9: 6} if not a.quick else {7: 2, 8: 1, 9: 1}
    mut = a.mut_pairs if not a.quick else 10
    t0 = time.perf_counter()
    print("== random G(n, 0.3), unit costs: exact_ged vs networkx.graph_edit_distance", flush=True)
    rows = bench_random([7, 8, 9], pairs_per_n, a.nx_timeout, a.seed)
    print("== Mutagenicity <= 20 nodes, GraphEdX costs, one core", flush=True)
    rows += bench_mutagenicity(mut, a.timeout, a.seed, a.tu_root)
    total = time.perf_counter() - t0
    print(f"\n{'benchmark':24s} {'graphs':14s} {'pairs':>5s} {'median s':>10s} {'p95 s':>8s} {'nx median s':>12s} "
          f"{'speedup':>8s} {'optimal':>8s}")
    for r in rows:
        print(f"{r['benchmark']:24s} {r['graphs'][:14]:14s} {r['pairs']:5d} {r['median_seconds']:10.4f} "
              f"{r.get('p95_seconds', float('nan')):8.3f} {r.get('networkx_median_seconds', float('nan')):12.3f} "
              f"{r.get('speedup_median', float('nan')):8.0f} {r.get('optimal_share', float('nan')):8.2%}")
    budget = (f"times are CPU seconds of this process (time.process_time), since other jobs shared the 2 cores "
              f"(load average {os.getloadavg()[0]:.0f} at the end); G(n,0.3): {pairs_per_n} pairs per n, networkx "
              f"timeout {a.nx_timeout:g} s wall per pair; Mutagenicity: {mut} random within-split ordered pairs, "
              f"exact_ged timeout {a.timeout:g} s of CPU time; one thread (OMP_NUM_THREADS=1, torch threads 1); "
              f"total {total:.0f} s wall")
    if not a.no_write:
        path = write_results("ged_exact", rows, budget=budget)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
