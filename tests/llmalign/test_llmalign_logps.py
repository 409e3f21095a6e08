"""Completion log-probs: against a float64 loop, padding-side invariance, trimming, bf16, one forward for pairs."""

from __future__ import annotations

import math

import pytest
import torch

from llmalign.data import PairCollator
from llmalign.logps import PolicyLogps, completion_logps, sequence_logps, split_pairs, token_logps


def test_completion_logps_against_float64_loop():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    cm = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    got = completion_logps(logits, ids, cm, keep_per_token=True)
    for b in range(2):
        total, n = 0.0, 0
        for t in range(1, 5):
            if cm[b, t]:
                row = logits[b, t - 1].double()
                total += (row[ids[b, t]] - torch.logsumexp(row, 0)).item()
                n += 1
        assert got.sum[b].item() == pytest.approx(total, rel=1e-5)
        assert got.mean[b].item() == pytest.approx(total / n, rel=1e-5)
        assert got.n_tokens[b].item() == n
    assert got.sum.dtype == torch.float32


def _pair_batch(side):
    items = [{"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9], "rejected_ids": [10, 11, 12, 13], "index": 0},
             {"prompt_ids": [14], "chosen_ids": [15, 16, 17], "rejected_ids": [18], "index": 1}]
    return PairCollator(pad_token_id=0, padding_side=side)(items)


def test_padding_side_and_trimming_do_not_change_logps(make_tiny_llama):
    lm = make_tiny_llama(vocab_size=32)
    pol = PolicyLogps(lm)
    with torch.no_grad():
        right = _pair_batch("right")
        left = _pair_batch("left")
        a = pol(right["input_ids"], right["attention_mask"], right["completion_mask"], trim=False)
        b = pol(left["input_ids"], left["attention_mask"], left["completion_mask"])
        c = pol(right["input_ids"], right["attention_mask"], right["completion_mask"])
        # each sequence alone, unpadded
        singles = []
        for p, comp in [([5, 6, 7], [8, 9]), ([14], [15, 16, 17]), ([5, 6, 7], [10, 11, 12, 13]), ([14], [18])]:
            ids = torch.tensor([p + comp])
            cm = torch.tensor([[0] * len(p) + [1] * len(comp)])
            singles.append(sequence_logps(lm, ids, torch.ones_like(ids), cm).sum.item())
    torch.testing.assert_close(a.sum, b.sum, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.sum, c.sum, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.sum, torch.tensor(singles), atol=1e-5, rtol=1e-5)
    assert a.n_tokens.tolist() == [2, 3, 4, 1]
    chosen, rejected = split_pairs(a.sum)
    assert chosen.shape == rejected.shape == (2,)


def test_bf16_inputs_give_float32_logps_within_tolerance(make_tiny_llama):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 50) * 3
    labels = torch.randint(0, 50, (3, 4))
    ref = token_logps(logits.double(), labels)
    got = token_logps(logits.bfloat16(), labels)
    assert got.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: logits of size ~10 are off by up to ~0.04
    assert (got.double() - ref).abs().max().item() < 0.1
    lm = make_tiny_llama(vocab_size=32)
    batch = _pair_batch("left")
    with torch.no_grad():
        full = PolicyLogps(lm)(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        half = PolicyLogps(lm.to(torch.bfloat16))(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    assert half.sum.dtype == torch.float32
    assert (half.sum - full.sum).abs().max().item() < 0.05 * full.n_tokens.max().item() + 0.05


def test_gradients_flow_only_through_completion_tokens(make_tiny_llama):
    lm = make_tiny_llama(vocab_size=32)
    batch = _pair_batch("right")
    ids = batch["input_ids"]
    emb = lm.get_input_embeddings()
    out = PolicyLogps(lm)(ids, batch["attention_mask"], batch["completion_mask"])
    out.sum[0].backward()
    # the padding row positions of row 0 (chosen of pair 0) never feed its log-prob; token 13 only occurs in row 2
    g = emb.weight.grad
    assert g[13].abs().sum().item() == 0.0
    assert g[8].abs().sum().item() > 0.0
    assert math.isfinite(out.sum[0].item())


def test_shape_errors_name_the_tensors():
    with pytest.raises(ValueError, match="completion_mask"):
        completion_logps(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="even"):
        split_pairs(torch.zeros(3))
