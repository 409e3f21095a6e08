"""LLM backends for reranking: any OpenAI-compatible HTTP server, a local causal LM, and an on-disk
response cache in front of either.

A backend maps a list of prompts to a list of :class:`Completion` (same order). Every backend counts calls,
tokens and seconds in :class:`CallStats`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class Completion:
    """One answer: text and token counts (``0`` where the backend does not report them)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    failed: bool = False


@dataclass
class CallStats:
    """Counters of a backend: ``calls`` (requests actually made), ``cache_hits``, ``retries``, ``failures``
    (requests that gave up), tokens and wall seconds spent in calls."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: float) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("calls", "cache_hits", "retries", "failures", "prompt_tokens",
                                              "completion_tokens", "seconds")}


class Backend(Protocol):
    """What the reranker needs from a model."""

    name: str
    model: str
    stats: CallStats

    def complete(self, prompts: Sequence[str]) -> list[Completion]: ...


# ----------------------------------------------------------------------------------------------- HTTP


class LLMRequestError(RuntimeError):
    """A request that still failed after every retry."""


class OpenAIChat:
    """Client of an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, Ollama, llama.cpp server, ...),
    standard library only.

    Each prompt is sent as one user message with ``temperature`` and ``max_tokens``. Failed requests
    (connection errors, timeouts, HTTP 429 and 5xx) are retried up to ``max_retries`` times with exponential
    backoff ``backoff * 2**attempt`` seconds; other HTTP errors (4xx) fail at once. At most ``concurrency``
    requests are in flight.

    Args:
        base_url (str): e.g. ``"http://127.0.0.1:8000/v1"`` (``/chat/completions`` is appended).
        model (str): the model name the server expects.
        api_key (str, optional): sent as a bearer token; defaults to ``$OPENAI_API_KEY`` when set.
        timeout (float, optional): seconds per request. (default: :obj:`60`)
        max_retries (int, optional): retries after the first attempt. (default: :obj:`3`)
        backoff (float, optional): first backoff delay in seconds. (default: :obj:`0.5`)
        concurrency (int, optional): parallel requests. (default: :obj:`4`)
        max_tokens (int, optional): completion length limit. (default: :obj:`16`)
        temperature (float, optional): sampling temperature. (default: :obj:`0.0`)
        system (str, optional): an optional system message. (default: :obj:`None`)
        raise_on_failure (bool, optional): raise :class:`LLMRequestError` when a prompt fails for good;
            otherwise its completion is empty text (an abstention) and ``stats.failures`` counts it.
            (default: :obj:`False`)
    """

    name = "openai-chat"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 0.5, concurrency: int = 4, max_tokens: int = 16,
                 temperature: float = 0.0, system: str | None = None, raise_on_failure: bool = False) -> None:
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("need concurrency >= 1, max_retries >= 0, timeout > 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.concurrency, self.max_tokens, self.temperature = concurrency, max_tokens, temperature
        self.system, self.raise_on_failure = system, raise_on_failure
        self.stats = CallStats()

    def config_key(self) -> str:
        return json.dumps({"max_tokens": self.max_tokens, "temperature": self.temperature,
                           "system": self.system}, sort_keys=True)

    def _request(self, prompt: str) -> Completion:
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": prompt}]
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                           "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats.add(retries=1)
                time.sleep(self.backoff * 2 ** (attempt - 1))
            t0 = time.perf_counter()
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read().decode())
                self.stats.add(calls=1, seconds=time.perf_counter() - t0)
            except urllib.error.HTTPError as e:
                self.stats.add(calls=1, seconds=time.perf_counter() - t0)
                last = e
                if e.code == 429 or e.code >= 500:
                    continue
                raise LLMRequestError(f"{self.url}: HTTP {e.code} {e.reason}") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                self.stats.add(calls=1, seconds=time.perf_counter() - t0)
                last = e
                continue
            try:
                text = payload["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError) as e:
                raise LLMRequestError(f"{self.url}: unexpected response {str(payload)[:200]}") from e
            usage = payload.get("usage") or {}
            comp = Completion(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
            self.stats.add(prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens)
            return comp
        self.stats.add(failures=1)
        if self.raise_on_failure:
            raise LLMRequestError(f"{self.url}: giving up after {self.max_retries + 1} attempts: {last}")
        return Completion("", failed=True)

    def complete(self, prompts: Sequence[str]) -> list[Completion]:
        if len(prompts) <= 1 or self.concurrency == 1:
            return [self._request(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._request, prompts))


# ----------------------------------------------------------------------------------------------- local


class LocalLM:
    """A local causal LM through transformers (default SmolLM2-135M-Instruct, offline, via
    :func:`aligncore.lm.load_causal_lm`), greedy decoding over the model's chat template.

    Args:
        model (str, optional): ``"smollm2"`` or a local ``from_pretrained`` folder. (default: ``"smollm2"``)
        max_new_tokens (int, optional): completion length. (default: :obj:`8`)
        batch_size (int, optional): prompts per forward batch (left-padded). (default: :obj:`4`)
        device (str, optional): torch device. (default: ``"cpu"``)
        lm (tuple, optional): an already loaded ``(model, tokenizer)`` pair (tests pass tiny random ones).
    """

    name = "local"

    def __init__(self, model: str = "smollm2", *, max_new_tokens: int = 8, batch_size: int = 4,
                 device: str = "cpu", lm: tuple[Any, Any] | None = None) -> None:
        self.model = str(model)
        self.max_new_tokens, self.batch_size, self.device = max_new_tokens, batch_size, device
        self._lm = lm
        self.stats = CallStats()

    def config_key(self) -> str:
        return json.dumps({"max_new_tokens": self.max_new_tokens, "decoding": "greedy"})

    def _load(self) -> tuple[Any, Any]:
        if self._lm is None:
            from aligncore.lm import load_causal_lm

            self._lm = load_causal_lm(self.model, device=self.device)
        return self._lm

    def _format(self, tok: Any, prompt: str) -> str:
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        return prompt

    def complete(self, prompts: Sequence[str]) -> list[Completion]:
        import torch

        model, tok = self._load()
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        out: list[Completion] = []
        for s in range(0, len(prompts), self.batch_size):
            chunk = [self._format(tok, p) for p in prompts[s:s + self.batch_size]]
            t0 = time.perf_counter()
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            n_prompt = int(enc["attention_mask"].sum())
            n_new = int((new != tok.pad_token_id).sum())
            self.stats.add(calls=len(chunk), seconds=time.perf_counter() - t0, prompt_tokens=n_prompt,
                           completion_tokens=n_new)
            lengths = enc["attention_mask"].sum(1).tolist()
            for t, length, row in zip(texts, lengths, new, strict=True):
                out.append(Completion(t, int(length), int((row != tok.pad_token_id).sum())))
        return out


# ----------------------------------------------------------------------------------------------- cache


class ResponseCache:
    """An sqlite table of completions keyed by ``sha256(backend name, model, generation options, prompt)``,
    safe to share between threads; a re-run or a resumed run repeats no call.

    Args:
        path (path): the database file (created with its folder when missing); ``":memory:"`` for tests.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, backend TEXT, "
                           "model TEXT, prompt TEXT, text TEXT, prompt_tokens INTEGER, "
                           "completion_tokens INTEGER, created REAL)")
        self._conn.commit()

    @staticmethod
    def key(backend: str, model: str, options: str, prompt: str) -> str:
        h = hashlib.sha256()
        for part in (backend, model, options, prompt):
            h.update(part.encode())
            h.update(b"\x00")
        return h.hexdigest()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute("SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key=?",
                                     (key,)).fetchone()
        return None if row is None else Completion(row[0], row[1], row[2], cached=True)

    def put(self, key: str, backend: str, model: str, prompt: str, comp: Completion) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (key, backend, model, prompt, comp.text, comp.prompt_tokens,
                                comp.completion_tokens, time.time()))
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


class CachedBackend:
    """``backend`` behind a :class:`ResponseCache`: cached prompts are answered from disk, the rest are sent
    in one :meth:`complete` call and stored. A failed request (``Completion.failed``) is not cached, so a
    later run retries it."""

    def __init__(self, backend: Backend, cache: ResponseCache) -> None:
        self.backend, self.cache = backend, cache
        self.name, self.model = backend.name, backend.model
        self.stats = backend.stats

    def complete(self, prompts: Sequence[str]) -> list[Completion]:
        options = getattr(self.backend, "config_key", lambda: "")()
        keys = [ResponseCache.key(self.backend.name, self.backend.model, options, p) for p in prompts]
        out: list[Completion | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, c in enumerate(out) if c is None]
        self.stats.add(cache_hits=len(prompts) - len(todo))
        if todo:
            fresh = self.backend.complete([prompts[i] for i in todo])
            for i, comp in zip(todo, fresh, strict=True):
                out[i] = comp
                if not comp.failed:
                    self.cache.put(keys[i], self.backend.name, self.backend.model, prompts[i], comp)
        return [c for c in out if c is not None]
