"""kgalign: entity alignment between knowledge graphs.

LLM-Align (`"LLM-Align: Utilizing Large Language Models for Entity Alignment in Knowledge Graphs"
<https://arxiv.org/abs/2412.04690>`_): an embedding base model proposes candidates
(:class:`EmbeddingAligner`), identifying triples are selected (:class:`TripleSelector`), and an LLM chooses
among the candidates with multi-round voting over reordered lists (:func:`rerank`).
"""

from .backends import CachedBackend, CallStats, Completion, LocalLM, OpenAIChat, ResponseCache
from .candidates import BaseModelResult, CandidateConfig, EmbeddingAligner, StructureTrainConfig
from .data import EADataset, KnowledgeGraph, load_dbp15k, load_openea, read_attribute_triples
from .inference import Candidates, csls, hungarian_match, ranking_metrics, sinkhorn_scores, top_candidates
from .llm_align import Describer, make_backend
from .names import CharNgramTfidf, NameEncoderConfig, sparse_similarity
from .prompt import NONE, EntityView, build_prompt, parse_answer
from .selection import Fact, TripleSelector
from .structure import GCNAlignEncoder, LinearAligner, StructureConfig, train_linear, train_structure
from .voting import (
    RerankResult,
    ThresholdCalibration,
    VotingConfig,
    calibrate_margin_threshold,
    decide,
    rerank,
    round_order,
)

__all__ = [
    "BaseModelResult", "CachedBackend", "CallStats", "CandidateConfig", "Candidates", "CharNgramTfidf",
    "Completion", "Describer", "EADataset", "EmbeddingAligner", "EntityView", "Fact", "GCNAlignEncoder",
    "KnowledgeGraph", "LinearAligner", "LocalLM", "NONE", "NameEncoderConfig", "OpenAIChat", "RerankResult",
    "ResponseCache", "StructureConfig", "StructureTrainConfig", "ThresholdCalibration", "TripleSelector",
    "VotingConfig", "build_prompt", "calibrate_margin_threshold", "csls", "decide", "hungarian_match",
    "load_dbp15k", "load_openea", "make_backend",
    "parse_answer", "ranking_metrics", "read_attribute_triples", "rerank", "round_order", "sinkhorn_scores",
    "sparse_similarity", "top_candidates", "train_linear", "train_structure",
]
