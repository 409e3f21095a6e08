"""Preference data: JSONL files, a verifiable arithmetic generator, tokenisation and batching.

A preference file has one JSON object per line with string fields ``prompt``, ``chosen`` and ``rejected``
(``prompt`` and ``rejected`` suffice for negative-only methods such as D2O: read with
``require_chosen=False``). Other fields are kept in :attr:`PreferenceExample.meta`. A malformed line raises
:class:`PreferenceFormatError` naming the file and line.

Prompts are user messages; :func:`tokenize_pairs` wraps them in the tokenizer's chat template (with the
generation prompt) and appends the end-of-sequence token to each completion. The collate function
:class:`PairCollator` stacks the ``B`` chosen sequences on top of the ``B`` rejected ones so that one
forward pass scores both (see :mod:`llmalign.logps`); :class:`D2OCollator` does the same for D2O's
``K`` self-generated samples per prompt and the negative.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class PreferenceFormatError(ValueError):
    """A preference file has a malformed line (the message names the file and line)."""


@dataclass
class PreferenceExample:
    """One preference example: a prompt, a preferred and a dispreferred completion.

    Attributes:
        prompt (str): the user message.
        chosen (str | None): the preferred completion (``None`` in negative-only data).
        rejected (str): the dispreferred completion.
        meta (dict): any further fields of the source line (e.g. ``answer``).
    """

    prompt: str
    chosen: str | None
    rejected: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prompt": self.prompt}
        if self.chosen is not None:
            d["chosen"] = self.chosen
        d["rejected"] = self.rejected
        d.update(self.meta)
        return d


def read_preferences(path: str | os.PathLike, *, require_chosen: bool = True) -> list[PreferenceExample]:
    """Read a JSONL preference file.

    Args:
        path: the file (``.jsonl``; ``.jsonl.gz`` is read transparently).
        require_chosen (bool, optional): whether ``chosen`` is mandatory. (default: :obj:`True`)

    Raises:
        FileNotFoundError: no such file.
        PreferenceFormatError: a line is not a JSON object, lacks a field, or has a non-string or empty
            ``prompt``/``chosen``/``rejected``; the message is ``"<file>:<line>: <what is wrong>"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preference file {path} does not exist")
    if path.suffix == ".gz":
        import gzip

        fh = gzip.open(path, "rt", encoding="utf-8")
    else:
        fh = open(path, encoding="utf-8")
    needed = ("prompt", "chosen", "rejected") if require_chosen else ("prompt", "rejected")
    out: list[PreferenceExample] = []
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PreferenceFormatError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise PreferenceFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in needed if k not in row]
            if missing:
                raise PreferenceFormatError(f"{where}: missing field(s) {missing}; the line has {sorted(row)}")
            for k in ("prompt", "chosen", "rejected"):
                if k in row and not isinstance(row[k], str):
                    raise PreferenceFormatError(f"{where}: field {k!r} must be a string, got {type(row[k]).__name__}")
                if k in row and not row[k].strip():
                    raise PreferenceFormatError(f"{where}: field {k!r} is empty")
            meta = {k: v for k, v in row.items() if k not in ("prompt", "chosen", "rejected")}
            out.append(PreferenceExample(row["prompt"], row.get("chosen"), row["rejected"], meta))
    if not out:
        raise PreferenceFormatError(f"{path}: no examples")
    return out


def write_preferences(path: str | os.PathLike, examples: Iterable[PreferenceExample]) -> Path:
    """Write examples as JSONL (one object per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
    return path


# ------------------------------------------------------------------------------------ verifiable data

_PROMPT_RE = re.compile(r"What is (\d+)\s*([+\-])\s*(\d+)\?")
_INT_RE = re.compile(r"-?\d+")
ARITHMETIC_TEMPLATE = "What is {a}{op}{b}? Reply with just the number."


def arithmetic_answer(prompt: str) -> int:
    """The correct answer of a prompt made by :func:`arithmetic_preferences` (parsed from the prompt)."""
    m = _PROMPT_RE.search(prompt)
    if m is None:
        raise ValueError(f"not an arithmetic prompt: {prompt!r}")
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return a + b if op == "+" else a - b


def extract_answer(text: str) -> int | None:
    """The model's answer: the last integer on the first non-empty line (``"64 + 27 = 91"`` gives 91,
    ``"83"`` gives 83), or :obj:`None` when there is none."""
    for line in text.strip().splitlines():
        if line.strip():
            found = _INT_RE.findall(line.replace(",", ""))
            return int(found[-1]) if found else None
    return None


def arithmetic_reward(prompt: str, completion: str) -> float:
    """1.0 when the completion's answer (:func:`extract_answer`) is correct, else 0.0."""
    return float(extract_answer(completion) == arithmetic_answer(prompt))


def _wrong_answer(a: int, b: int, op: str, answer: int, rng: random.Random) -> int:
    """A plausible mistake: off by one or two, off by ten, digits swapped, or the wrong operation."""
    cands = {answer + 1, answer - 1, answer + 2, answer - 2, answer + 10, answer - 10,
             a - b if op == "+" else a + b}
    s = str(abs(answer))
    if len(s) > 1 and s[::-1] != s:
        cands.add(int(s[::-1]) * (1 if answer >= 0 else -1))
    cands.discard(answer)
    return rng.choice(sorted(cands))


def arithmetic_preferences(n: int, *, seed: int = 0, max_operand: int = 99, ops: str = "+-") -> list[PreferenceExample]:
    """A verifiable preference set: ``"What is a+b? Reply with just the number."`` with the correct
    number as ``chosen`` and a plausible wrong number as ``rejected`` (``meta["answer"]`` holds the
    truth, checkable with :func:`arithmetic_reward`). Subtractions never go negative. Prompts are distinct
    (up to ``n`` the operand range allows).

    Args:
        n (int): number of examples.
        seed (int, optional): RNG seed. (default: :obj:`0`)
        max_operand (int, optional): operands are drawn from ``[2, max_operand]``. (default: :obj:`99`)
        ops (str, optional): operations to use, from ``"+-"``. (default: :obj:`"+-"`)
    """
    if not ops or set(ops) - set("+-"):
        raise ValueError(f"ops must be a non-empty subset of '+-', got {ops!r}")
    capacity = len(ops) * (max_operand - 1) ** 2
    if n > capacity:
        raise ValueError(f"only {capacity} distinct prompts with max_operand={max_operand}, ops={ops!r}; asked {n}")
    rng = random.Random(seed)
    seen: set[tuple[int, str, int]] = set()
    out: list[PreferenceExample] = []
    while len(out) < n:
        a, b, op = rng.randint(2, max_operand), rng.randint(2, max_operand), rng.choice(ops)
        if op == "-" and b > a:
            a, b = b, a
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        ans = a + b if op == "+" else a - b
        out.append(PreferenceExample(ARITHMETIC_TEMPLATE.format(a=a, op=op, b=b), str(ans),
                                     str(_wrong_answer(a, b, op, ans, rng)), {"answer": ans}))
    return out


# ------------------------------------------------------------------------------------ tokenisation


def render_prompts(tokenizer: Any, prompts: Sequence[str], *, chat_template: bool = True) -> list[str]:
    """Prompts as the model sees them: the chat template with the generation prompt, or the raw text."""
    if not chat_template:
        return list(prompts)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; pass chat_template=False to use raw prompts")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) for p in prompts]


@dataclass
class TokenizedPair:
    """Token ids of one example: prompt, chosen and rejected completions (each ending with EOS)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def tokenize_pairs(tokenizer: Any, examples: Sequence[PreferenceExample], *, max_length: int = 512,
                   chat_template: bool = True, require_chosen: bool = True) -> list[TokenizedPair]:
    """Tokenise prompts (through the chat template) and completions (followed by EOS).

    A sequence longer than ``max_length`` keeps the last ``max_length // 2`` prompt tokens at most and
    truncates the completion on the right.

    Args:
        require_chosen (bool, optional): whether every example needs a ``chosen`` completion; with
            :obj:`False` (negatives-only data, D2O) a missing one gives empty ``chosen_ids``.
            (default: :obj:`True`)

    Raises:
        ValueError: an example without ``chosen`` (when required), or a tokenizer without an EOS token.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id")
    texts = render_prompts(tokenizer, [e.prompt for e in examples], chat_template=chat_template)
    out: list[TokenizedPair] = []
    for i, (ex, text) in enumerate(zip(examples, texts, strict=True)):
        if ex.chosen is None and require_chosen:
            raise ValueError(f"example {i} has no chosen completion")
        p = tokenizer(text, add_special_tokens=False)["input_ids"]
        c = [] if ex.chosen is None else tokenizer(ex.chosen, add_special_tokens=False)["input_ids"] + [eos]
        r = tokenizer(ex.rejected, add_special_tokens=False)["input_ids"] + [eos]
        if len(p) + max(len(c), len(r)) > max_length:
            p = p[-(max_length // 2):] if len(p) > max_length // 2 else p
            c, r = c[: max_length - len(p)], r[: max_length - len(p)]
        out.append(TokenizedPair(p, c, r))
    return out


def pad_rows(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_token_id: int,
             padding_side: str = "right") -> tuple[Tensor, Tensor, Tensor]:
    """Pad ``(prompt_ids, completion_ids)`` rows into ``input_ids``, ``attention_mask`` and
    ``completion_mask`` (1 on completion tokens), each :math:`(R, T)` with ``T`` the longest row."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    t = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), t), int(pad_token_id), dtype=torch.long)
    att = torch.zeros((len(rows), t), dtype=torch.long)
    comp = torch.zeros((len(rows), t), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        s = 0 if padding_side == "right" else t - n
        ids[i, s:s + n] = torch.tensor(list(p) + list(c), dtype=torch.long)
        att[i, s:s + n] = 1
        comp[i, s + len(p):s + n] = 1
    return ids, att, comp


class PreferenceDataset(Dataset):
    """Tokenised preference pairs, with optional cached reference log-probs and further per-example columns.

    ``ds[i]`` is a dict with ``prompt_ids``, ``chosen_ids``, ``rejected_ids``, ``index`` and, once
    :attr:`ref_logps` is set (a :math:`(N, 2)` tensor of chosen/rejected reference log-probs), ``ref_chosen``
    and ``ref_rejected``; every entry of :attr:`columns` (name to a tensor whose first dimension is
    :math:`N`, e.g. PoFT's aligned-model scores) adds ``name`` with row ``i``.
    """

    def __init__(self, pairs: Sequence[TokenizedPair], ref_logps: Tensor | None = None,
                 columns: dict[str, Tensor] | None = None) -> None:
        self.pairs = list(pairs)
        self.ref_logps = ref_logps
        self.columns = dict(columns or {})
        for name, col in self.columns.items():
            if col.shape[0] != len(self.pairs):
                raise ValueError(f"column {name!r} has {col.shape[0]} rows for {len(self.pairs)} pairs")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.pairs[i]
        item: dict[str, Any] = {"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids,
                                "rejected_ids": p.rejected_ids, "index": i}
        if self.ref_logps is not None:
            item["ref_chosen"] = self.ref_logps[i, 0]
            item["ref_rejected"] = self.ref_logps[i, 1]
        for name, col in self.columns.items():
            item[name] = col[i]
        return item

    def n_tokens(self) -> int:
        """Total tokens of all chosen and rejected sequences (prompt included)."""
        return sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in self.pairs)


_ID_KEYS = frozenset({"prompt_ids", "chosen_ids", "rejected_ids", "sample_ids", "index"})


def _stack_columns(items: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Float tensors of every per-example value that is not token ids (reference log-probs, scores)."""
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]).float()
            for k in items[0] if k not in _ID_KEYS}


class PairCollator:
    """Batch preference items into one padded tensor of ``2B`` rows: chosen rows, then rejected rows.

    Returns a dict with ``input_ids``, ``attention_mask``, ``completion_mask`` (all :math:`(2B, T)`),
    ``index`` :math:`(B,)` and every further per-example value of the items as a float tensor (e.g.
    ``ref_chosen``, ``ref_rejected`` :math:`(B,)`).

    Args:
        pad_token_id (int): id used for padding (masked out everywhere).
        padding_side (str, optional): ``"right"`` or ``"left"``. (default: :obj:`"right"`)
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right") -> None:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad, self.side = int(pad_token_id), padding_side

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        rows = [(it["prompt_ids"], it["chosen_ids"]) for it in items] + \
               [(it["prompt_ids"], it["rejected_ids"]) for it in items]
        ids, att, comp = pad_rows(rows, self.pad, self.side)
        batch = {"input_ids": ids, "attention_mask": att, "completion_mask": comp,
                 "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
        batch.update(_stack_columns(items))
        return batch


@dataclass
class SampledNegative:
    """One D2O example: the prompt, the human negative and ``K`` completions sampled from the reference."""

    prompt_ids: list[int]
    rejected_ids: list[int]
    sample_ids: list[list[int]]


class D2ODataset(Dataset):
    r"""D2O examples with the reference log-probs of their samples and negative (computed once).

    ``ds[i]`` is a dict with ``prompt_ids``, ``rejected_ids``, ``sample_ids`` (``K`` lists), ``index``,
    ``ref_samples`` :math:`(K,)` and ``ref_rejected`` (scalar).

    Args:
        items (sequence of SampledNegative): every item with the same number ``K`` of samples.
        ref_samples (Tensor): :math:`\log\pi_{\mathrm{ref}}(y_k|x)`, shape :math:`(N, K)`.
        ref_rejected (Tensor): :math:`\log\pi_{\mathrm{ref}}(y_l|x)`, shape :math:`(N,)`.
    """

    def __init__(self, items: Sequence[SampledNegative], ref_samples: Tensor, ref_rejected: Tensor) -> None:
        self.items = list(items)
        ks = {len(it.sample_ids) for it in self.items}
        if len(ks) > 1 or 0 in ks:
            raise ValueError(f"every D2O item needs the same number K >= 1 of samples; got {sorted(ks)}")
        n = len(self.items)
        if ref_samples.dim() != 2 or ref_samples.shape[0] != n or ref_rejected.shape != (n,) or (
                n and ref_samples.shape[1] != len(self.items[0].sample_ids)):
            raise ValueError(f"ref_samples must be (N, K) and ref_rejected (N,) for N={n} items; got "
                             f"{tuple(ref_samples.shape)} and {tuple(ref_rejected.shape)}")
        self.ref_samples, self.ref_rejected = ref_samples, ref_rejected

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        return {"prompt_ids": it.prompt_ids, "rejected_ids": it.rejected_ids, "sample_ids": it.sample_ids,
                "index": i, "ref_samples": self.ref_samples[i], "ref_rejected": self.ref_rejected[i]}

    def n_tokens(self) -> int:
        """Total tokens of all sample and negative sequences (prompt included)."""
        return sum((len(it.sample_ids) + 1) * len(it.prompt_ids) + len(it.rejected_ids)
                   + sum(len(s) for s in it.sample_ids) for it in self.items)


class D2OCollator:
    """Batch D2O items into one padded tensor of ``B K + B`` rows: the ``K`` samples of each prompt (prompt
    by prompt), then the ``B`` negatives, so that one forward pass scores everything.

    Returns ``input_ids``, ``attention_mask``, ``completion_mask`` :math:`(BK + B, T)`, ``index``
    :math:`(B,)`, ``ref_samples`` :math:`(B, K)` and ``ref_rejected`` :math:`(B,)`.

    Args:
        pad_token_id (int): id used for padding.
        padding_side (str, optional): ``"right"`` or ``"left"``. (default: :obj:`"right"`)
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right") -> None:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad, self.side = int(pad_token_id), padding_side

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        rows = [(it["prompt_ids"], s) for it in items for s in it["sample_ids"]] + \
               [(it["prompt_ids"], it["rejected_ids"]) for it in items]
        ids, att, comp = pad_rows(rows, self.pad, self.side)
        batch = {"input_ids": ids, "attention_mask": att, "completion_mask": comp,
                 "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
        batch.update(_stack_columns(items))
        return batch


def main(argv: list[str] | None = None) -> int:
    """``python -m llmalign.data OUT.jsonl --n 1000 --seed 0``: write the arithmetic preference set."""
    import argparse

    ap = argparse.ArgumentParser(description="Write a verifiable arithmetic preference set as JSONL.")
    ap.add_argument("out", type=Path, help="output .jsonl file")
    ap.add_argument("--n", type=int, default=1000, help="number of examples (default: 1000)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (default: 0)")
    ap.add_argument("--max-operand", type=int, default=99, help="largest operand (default: 99)")
    ap.add_argument("--ops", default="+-", help="operations, a subset of '+-' (default: '+-')")
    a = ap.parse_args(argv)
    path = write_preferences(a.out, arithmetic_preferences(a.n, seed=a.seed, max_operand=a.max_operand, ops=a.ops))
    print(f"wrote {a.n} examples to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
