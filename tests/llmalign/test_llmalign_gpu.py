"""CUDA paths: bf16 autocast keeps completion log-probs in float32 and close to the float32 CPU values; DPO
training through aligncore.training.fit with mixed precision. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from llmalign.data import PairCollator, PreferenceDataset, TokenizedPair
from llmalign.logps import PolicyLogps, split_pairs
from llmalign.losses import dpo_loss

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _pairs(n=16, vocab=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        p = torch.randint(1, vocab, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist()
        c = torch.randint(1, vocab, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
        r = torch.randint(1, vocab, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
        out.append(TokenizedPair(p, c, r))
    return out


def test_bf16_autocast_logps_are_float32_and_close(make_tiny_llama):
    lm = make_tiny_llama(vocab_size=64)
    ds = PreferenceDataset(_pairs())
    batch = PairCollator(0, "left")([ds[i] for i in range(8)])
    with torch.no_grad():
        cpu = PolicyLogps(lm)(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        gpu_batch = {k: v.cuda() for k, v in batch.items()}
        pol = PolicyLogps(lm).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            gpu = pol(gpu_batch["input_ids"], gpu_batch["attention_mask"], gpu_batch["completion_mask"])
    assert gpu.sum.dtype == torch.float32
    assert (gpu.sum.cpu() - cpu.sum).abs().max().item() < 0.05 * cpu.n_tokens.max().item() + 0.05
    assert torch.equal(gpu.n_tokens.cpu(), cpu.n_tokens)


def test_dpo_fit_on_cuda_with_amp(make_tiny_llama, tmp_path):
    from aligncore.training import TrainConfig, fit

    lm = make_tiny_llama(vocab_size=64)
    pairs = _pairs(32)
    ds = PreferenceDataset(pairs, ref_logps=None)
    collator = PairCollator(0, "left")
    pol = PolicyLogps(lm).cuda()
    with torch.no_grad():
        b = {k: v.cuda() for k, v in collator([ds[i] for i in range(32)]).items()}
        ref = pol(b["input_ids"], b["attention_mask"], b["completion_mask"]).sum.float().cpu()
    c, r = split_pairs(ref)
    ds.ref_logps = torch.stack([c, r], 1)

    def loss_fn(model, batch):
        out = model(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        pc, pr = split_pairs(out.sum)
        res = dpo_loss(pc, pr, batch["ref_chosen"], batch["ref_rejected"], beta=0.5)
        return res.loss, {"accuracy": float(res.accuracy)}

    cfg = TrainConfig(out_dir=str(tmp_path), max_epochs=8, batch_size=8, lr=3e-3, device="cuda", amp=True,
                      progress=False, restore_best=False)
    res = fit(pol, ds, loss_fn=loss_fn, config=cfg, collate_fn=collator)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
