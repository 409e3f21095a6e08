"""aligncore.lm.pooled_hidden_states and token_hidden_states on a tiny random Llama (no weights needed)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from aligncore.lm import pooled_hidden_states, token_hidden_states  # noqa: E402

VOCAB = {"[PAD]": 0, "[UNK]": 1, "red": 2, "apple": 3, "pear": 4, "sweet": 5, "old": 6}


@pytest.fixture(scope="module")
def tiny():
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(VOCAB, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2, pad_token_id=0)
    return transformers.LlamaForCausalLM(cfg).eval(), tok


def reference(model, text: str, n_layers: int) -> torch.Tensor:
    ids = torch.tensor([[VOCAB[w] for w in text.split()]])
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    return torch.stack(hs[-n_layers:]).mean(0)[0].mean(0)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_pooled_states_in_input_order_and_padding_free(tiny, n_layers):
    """Texts of mixed lengths, batched two at a time in length order: every row equals that text encoded alone
    (full causal LM forward, vocabulary head included), in the order given."""
    model, tok = tiny
    texts = ["red sweet apple pear old", "pear", "old apple", "sweet", "red red red"]
    out = pooled_hidden_states(model, tok, texts, n_layers=n_layers, batch_size=2)
    assert out.shape == (5, 16) and out.dtype == torch.float32
    for row, text in zip(out, texts, strict=True):
        assert torch.allclose(row, reference(model, text, n_layers), atol=1e-5)
    assert not out.requires_grad


def test_pooled_states_truncate_and_reject_a_string(tiny):
    model, tok = tiny
    out = pooled_hidden_states(model, tok, ["red sweet apple pear old"], max_length=2)
    assert torch.allclose(out[0], reference(model, "red sweet", 1), atol=1e-5)
    with pytest.raises(TypeError):
        pooled_hidden_states(model, tok, "red apple")


def reference_tokens(model, text: str, n_layers: int) -> torch.Tensor:
    ids = torch.tensor([[VOCAB[w] for w in text.split()]])
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    return torch.stack(hs[-n_layers:]).mean(0)[0]


@pytest.mark.parametrize("n_layers", [1, 2])
def test_token_states_are_the_pooled_states_before_the_mean(tiny, n_layers):
    """Per-token states: each text's real tokens equal that text encoded alone, the padding is zero, the
    lengths are the token counts, and their mean is pooled_hidden_states' row."""
    model, tok = tiny
    texts = ["red sweet apple pear old", "pear", "old apple", "sweet", "red red red"]
    states, lengths = token_hidden_states(model, tok, texts, n_layers=n_layers, batch_size=2, dtype=torch.float32)
    assert states.shape == (5, 5, 16) and lengths.tolist() == [5, 1, 2, 1, 3]
    pooled = pooled_hidden_states(model, tok, texts, n_layers=n_layers, batch_size=3)
    for i, text in enumerate(texts):
        n = int(lengths[i])
        assert torch.allclose(states[i, :n], reference_tokens(model, text, n_layers), atol=1e-5)
        assert (states[i, n:] == 0).all()
        assert torch.allclose(states[i, :n].mean(0), pooled[i], atol=1e-5)
    half, _ = token_hidden_states(model, tok, texts, n_layers=n_layers, batch_size=2)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), states, atol=1e-2)
    with pytest.raises(TypeError):
        token_hidden_states(model, tok, "red apple")
