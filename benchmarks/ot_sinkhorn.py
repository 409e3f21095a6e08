"""Batched log-domain Sinkhorn (aligncore.ot.sinkhorn) against POT in the same run.

Same float32 problems (uniform marginals, cost ~ U(0, 1), eps = 0.05), 100 fixed iterations (tol = 0 /
stopThr = 0), for (B, n) in {(256, 20), (64, 128), (4, 1024)}. POT paths: ot.batch.solve_batch(method=
"log_sinkhorn") on numpy arrays, and a loop of ot.sinkhorn(method="sinkhorn_log") over the batch.
Median wall time over repeats; ours is measured at 1 thread and at the machine's default thread count
(on a 2-core machine, two threads of small tensor ops are often slower than one). On CUDA it also times
ours on the GPU and POT's batch solver on torch CUDA tensors.

    python benchmarks/ot_sinkhorn.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import ot
import ot.batch
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

from aligncore.ot import sinkhorn  # noqa: E402

SIZES = [(256, 20), (64, 128), (4, 1024)]
EPS = 0.05
ITERS = 100


def timed(fn, repeats: int, sync=None) -> tuple[float, object]:
    out = fn()  # warm-up
    if sync:
        sync()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
    default_threads = torch.get_num_threads()
    rows = []
    for B, n in SIZES:  # the timed lambdas run inside this iteration, so late binding is harmless
        g = torch.Generator().manual_seed(B * 7919 + n)
        C = torch.rand(B, n, n, generator=g, dtype=torch.float32)
        Cn = C.numpy()
        w = np.full(n, 1.0 / n, dtype=np.float32)
        t_batch, res_b = timed(lambda: ot.batch.solve_batch(Cn, reg=EPS, max_iter=ITERS, tol=0.0,
                                                             method="log_sinkhorn", grad="detach"), args.repeats)
        t_loop, plans_l = timed(lambda: np.stack([ot.sinkhorn(w, w, Cn[k], EPS, method="sinkhorn_log",
                                                                numItermax=ITERS, stopThr=0.0) for k in range(B)]),
                                max(1, args.repeats // 2))
        best_pot = min(t_batch, t_loop)
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            t_ours, res = timed(lambda: sinkhorn(C, eps=EPS, max_iter=ITERS, tol=0.0), args.repeats)
            plan = res.plan.numpy()
            rows.append({
                "B": B, "n": n, "device": "cpu", "torch_threads": threads, "iters": ITERS,
                "seconds": t_ours, "pot_batch_seconds": t_batch, "pot_loop_seconds": t_loop,
                "speedup_vs_best_pot": best_pot / t_ours,
                "max_plan_diff_vs_pot_loop": float(np.abs(plan - plans_l).max()),
                "max_plan_diff_vs_pot_batch": float(np.abs(plan - np.asarray(res_b.plan)).max()),
            })
        torch.set_num_threads(default_threads)
        if torch.cuda.is_available():
            Cg = C.cuda()
            sync = torch.cuda.synchronize
            t_gpu, res = timed(lambda: sinkhorn(Cg, eps=EPS, max_iter=ITERS, tol=0.0), args.repeats, sync)
            t_potg, res_pg = timed(lambda: ot.batch.solve_batch(Cg, reg=EPS, max_iter=ITERS, tol=0.0,
                                                                 method="log_sinkhorn", grad="detach"),
                                   args.repeats, sync)
            plan = res.plan.cpu().numpy()
            rows.append({
                "B": B, "n": n, "device": "cuda", "torch_threads": default_threads, "iters": ITERS,
                "seconds": t_gpu, "pot_batch_seconds": t_potg, "pot_loop_seconds": float("nan"),
                "speedup_vs_best_pot": t_potg / t_gpu,
                "max_plan_diff_vs_pot_loop": float(np.abs(plan - plans_l).max()),
                "max_plan_diff_vs_pot_batch": float(np.abs(plan - res_pg.plan.cpu().numpy()).max()),
            })
    print_table(rows, ["B", "n", "device", "torch_threads", "seconds", "pot_batch_seconds", "pot_loop_seconds",
                       "speedup_vs_best_pot", "max_plan_diff_vs_pot_loop", "max_plan_diff_vs_pot_batch"])
    suffix = "_cuda" if torch.cuda.is_available() else ""
    path = write_results("ot_sinkhorn", rows, budget=f"{ITERS} fixed iterations, eps={EPS}, float32, "
                         f"median of {args.repeats} repeats", suffix=suffix)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
