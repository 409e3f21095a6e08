"""llmalign demo: DPO on SmolLM2-135M-Instruct with verifiable arithmetic preferences (CPU, about a minute).

1. the loss family on one pair of log-probs;
2. the exact KL of best-of-N sampling next to the log N - (N-1)/N bound;
3. three DPO steps on SmolLM2 (offline; last two blocks trained) with held-out preference accuracy, likelihood accuracy and the
   accuracy of greedy answers before and after, plus the over-optimisation indicators.
"""

from __future__ import annotations

import tempfile
import time

import torch


def main() -> None:
    from aligncore.lm import load_causal_lm
    from aligncore.training import TrainConfig
    from llmalign.data import arithmetic_preferences
    from llmalign.diagnostics import best_of_n_kl, best_of_n_kl_bound
    from llmalign.losses import LOSSES, pair_loss
    from llmalign.train import PreferenceConfig, train_preferences

    torch.manual_seed(0)
    # 1. every pairwise loss on one pair: policy log-probs -3 / -5, reference -4 / -4, lengths 3 / 4
    t = torch.tensor
    print("losses on one pair (policy -3/-5, reference -4/-4, lengths 3/4):")
    for name in sorted(set(LOSSES) - {"sigmoid"}):
        res = pair_loss(name, t([-3.0]), t([-5.0]), ref_chosen=t([-4.0]), ref_rejected=t([-4.0]),
                        chosen_lengths=t([3.0]), rejected_lengths=t([4.0]))
        print(f"  {name:7s} loss {res.loss.item():7.4f}  margin {res.margin.item():+.4f}")

    # 2. best-of-N on 6 outcomes: exact KL is below the folklore value log N - (N-1)/N
    probs = torch.tensor([0.3, 0.25, 0.2, 0.15, 0.07, 0.03], dtype=torch.float64)
    rewards = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    print("best-of-N KL (6 outcomes):  " + "  ".join(
        f"N={n}: {best_of_n_kl(probs, rewards, n).item():.3f} <= {best_of_n_kl_bound(n):.3f}" for n in (2, 4, 16)))

    # 3. DPO on SmolLM2-135M-Instruct
    t0 = time.perf_counter()
    lm, tok = load_causal_lm("smollm2")
    # to fit the demo's CPU budget only the last two transformer blocks are trained (the benchmark trains all)
    lm.requires_grad_(False)
    for block in lm.model.layers[-2:]:
        block.requires_grad_(True)
    data = arithmetic_preferences(14, seed=0)
    train, held_out = data[:6], data[6:]
    pc = PreferenceConfig(loss="dpo", beta=0.1, task_eval=len(held_out), max_new_tokens=16, kl_eval=False,
                          eval_batch_size=8, ref_batch_size=8)
    with tempfile.TemporaryDirectory() as out:
        tc = TrainConfig(out_dir=out, batch_size=2, max_epochs=1, max_steps=3, lr=2e-5, progress=False, device="cpu",
                         restore_best=False)
        run = train_preferences(lm, tok, train, held_out, pc, tc, model_name="smollm2", eval_before=True)
    b, a = run.initial_metrics, run.result.final_metrics
    print(f"DPO on SmolLM2-135M (last 2 blocks trained): {run.result.steps} steps x 2 pairs, {time.perf_counter() - t0:.0f} s; "
          f"{len(held_out)} held-out arithmetic pairs")
    for key, label in [("val_loss", "DPO loss"), ("val_accuracy", "preference accuracy (implicit reward)"),
                       ("val_likelihood_accuracy", "likelihood accuracy (log p chosen > rejected)"),
                       ("task_accuracy", "greedy answers correct"), ("val_top10_entropy", "top-10 entropy"),
                       ("val_top10_mass", "top-10 mass")]:
        print(f"  {label:46s} before {b[key]:.3f}   after {a[key]:.3f}")


if __name__ == "__main__":
    main()
