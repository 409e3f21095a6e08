"""LLM-Align glue: entity descriptions for prompts and backend construction.

The full pipeline (`"LLM-Align" <https://arxiv.org/abs/2412.04690>`_): the embedding base model
(:class:`~kgalign.candidates.EmbeddingAligner`) proposes ``k`` candidates, :class:`Describer` selects the
few identifying triples of the source and of each candidate (:mod:`kgalign.selection`), and
:func:`~kgalign.voting.rerank` asks the model in several reordered rounds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .backends import Backend, CachedBackend, LocalLM, OpenAIChat, ResponseCache
from .data import EADataset
from .prompt import EntityView
from .selection import TripleSelector


class Describer:
    """``describer(source_id, candidate_ids) -> (source view, candidate views)`` with selected facts.

    Args:
        data (EADataset): the dataset.
        max_relations (int, optional): relation facts per entity. (default: :obj:`3`)
        max_attributes (int, optional): attribute facts per entity. (default: :obj:`2`)
    """

    def __init__(self, data: EADataset, max_relations: int = 3, max_attributes: int = 2) -> None:
        self.data = data
        self.sel1 = TripleSelector(data.kg1, max_relations, max_attributes)
        self.sel2 = TripleSelector(data.kg2, max_relations, max_attributes)

    def __call__(self, source: int, candidates: Sequence[int]) -> tuple[EntityView, list[EntityView]]:
        src = EntityView(self.data.kg1.names[source], self.sel1.select(source))
        views = [EntityView(self.data.kg2.names[c], self.sel2.select(c, candidates)) for c in candidates]
        return src, views


def make_backend(llm: str, model: str | None = None, *, cache: str | os.PathLike | None = None,
                 **kwargs) -> Backend:
    """``llm="local"`` gives :class:`LocalLM` (``model`` defaults to ``"smollm2"``); a URL gives
    :class:`OpenAIChat` (``model`` required). With ``cache``, the backend sits behind an sqlite
    :class:`ResponseCache` at that path."""
    if llm == "local":
        backend: Backend = LocalLM(model or "smollm2", **kwargs)
    elif llm.startswith(("http://", "https://")):
        if not model:
            raise ValueError("--model is required with an HTTP endpoint")
        backend = OpenAIChat(llm, model, **kwargs)
    else:
        raise ValueError(f"llm must be 'local' or an http(s) URL of an OpenAI-compatible server, got {llm!r}")
    if cache is not None:
        backend = CachedBackend(backend, ResponseCache(cache))
    return backend
