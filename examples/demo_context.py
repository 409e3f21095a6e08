"""Context-alignment demo: a short DSCA-GNN run on bundled ETTh1 (data/ett) with the first blocks of the
pretrained SmolLM2-135M as the frozen backbone, then test MSE/MAE next to DLinear trained on the same steps.

A few optimiser steps on a 2-core CPU: the numbers show the pipeline working end to end (TSLib splits, train-only
scaler, graph layers inside the LM, early-stopping loop), not the method's accuracy; see
benchmarks/results/context.json for the measured grid.
"""

from __future__ import annotations

import time

import torch

from aligncore.training import TrainConfig
from mmalign.context import ContextConfig, ett_splits
from mmalign.context.train import build_model, train_context


def main(steps: int = 10) -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)  # small tensors on a shared 2-core machine: one thread is faster
    t0 = time.perf_counter()
    common = dict(data="ETTh1", seq_len=96, pred_len=24, few_shot=0.05, eval_stride=32, eval_batch_size=128)
    splits = ett_splits("ETTh1", 96, 24, few_shot=0.05, eval_stride=32)
    print(f"ETTh1 (TSLib splits, 5% few-shot): {len(splits.train)} train windows, {len(splits.val)} val and "
          f"{len(splits.test)} test windows (every 32nd), 7 channels")
    from aligncore.lm import load_causal_lm

    lm, tok = load_causal_lm("smollm2")
    print(f"SmolLM2-135M loaded ({time.perf_counter() - t0:.1f} s); backbone: its first 2 blocks, frozen but norms")
    results = {}
    for model in ("dsca", "dlinear"):
        cfg = ContextConfig(model=model, n_layers=2, patch_len=16, stride=16, **common)
        tc = TrainConfig(out_dir=f"/tmp/alignkit-demo-context/{model}", max_epochs=1, max_steps=steps,
                         batch_size=16, lr=1e-3, progress=False, resume=False, device="cpu")
        t1 = time.perf_counter()
        built = build_model(cfg, lm=lm, tokenizer=tok, seed=0)
        if model == "dsca":
            g = built.graph
            print(f"DSCA graph: {g.n_nodes} fine nodes ({built.n_patch} patches + prompt tokens), {g.n_groups} "
                  f"groups, {g.edge_index.shape[1]} weighted directed edges; {g.coarse_edge_index.shape[1]} coarse")
        out = train_context(cfg, tc, splits=splits, model=built)
        results[model] = out.test
        print(f"{model:8s} {out.fit.steps} steps ({time.perf_counter() - t1:.1f} s): test MSE {out.test['mse']:.4f} "
              f"MAE {out.test['mae']:.4f} over {int(out.test['n_windows'])} windows; "
              f"{out.n_trainable} trainable / {out.n_frozen} frozen parameters")
    return results


if __name__ == "__main__":
    main()
