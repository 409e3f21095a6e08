"""Alt-MoE demo: align SmolLM2 content embeddings of MovieLens movies with their rating-behaviour embeddings
through a mixture-of-experts connector trained one direction at a time, then retrieve in both directions.

Uses only bundled data: data/recsys/ml-latest-small (ratings, titles, genres, tags) and
data/altmoe/movielens_smollm2_pca128.npz (the cached frozen SmolLM2 embeddings, PCA to 128-d).
"""

from __future__ import annotations

import time

import torch

from mmalign.altmoe import AltMoEConfig, AltMoETrainConfig, movielens_pairs
from mmalign.altmoe.train import train_altmoe


def main(epochs: int = 3) -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)  # small matrices: one thread is faster than two on a 2-core CPU
    t0 = time.perf_counter()
    pairs = movielens_pairs()
    print(f"MovieLens pairs: {len(pairs)} movies, modalities {pairs.dims}, train/val/test "
          f"{pairs.train.numel()}/{pairs.val.numel()}/{pairs.test.numel()} ({time.perf_counter() - t0:.1f} s)")
    results = {}
    for model in ("altmoe", "linear"):
        # the CLI's default connector (12 experts, top-4, latent 256); only 3 epochs to keep the demo short
        cfg = AltMoEConfig(model=model, experts=12, top_k=4, latent=256, hidden=256)
        tcfg = AltMoETrainConfig(out_dir=f"/tmp/alignkit-demo-altmoe/{model}", max_epochs=epochs, batch_size=256,
                                 patience=None, progress=False)
        t1 = time.perf_counter()
        out = train_altmoe(pairs, cfg, tcfg)
        results[model] = out.test
        print(f"{model:>7}: {out.n_params:>9,} params, {epochs} epochs in {time.perf_counter() - t1:.1f} s; test "
              f"({pairs.test.numel()} movies) text->behaviour R@1 {out.test['text->behaviour_recall@1']:.3f} "
              f"R@10 {out.test['text->behaviour_recall@10']:.3f}, behaviour->text R@1 "
              f"{out.test['behaviour->text_recall@1']:.3f} R@10 {out.test['behaviour->text_recall@10']:.3f}")
    chance = 1.0 / pairs.test.numel()
    print(f"(chance R@1 = {chance:.4f}; the full comparison with seeds and a single-MLP connector is "
          "benchmarks/altmoe.py)")
    return results


if __name__ == "__main__":
    main()
