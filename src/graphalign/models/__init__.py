"""Neural GED estimators on padded pair batches: GraphEdX (arXiv 2409.17687) and the baselines it is compared with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..costs import EditCosts
from .base import GEDModel
from .batch import GraphStore, PairBatch, PairDataset, encode_pairs
from .bipartite import Bipartite
from .encoder import GMNEncoder
from .gmn_embed import GMNEmbed, GMNEmbedConfig
from .graphedx import GraphEdX, GraphEdXConfig, GraphEdXOutput, align_diff, diff_align, pair_alignment
from .pairs import GEDPairs, load_ged_pairs
from .simgnn import SimGNN, SimGNNConfig

__all__ = [
    "GEDModel", "GraphStore", "PairBatch", "PairDataset", "encode_pairs", "GMNEncoder",
    "GraphEdX", "GraphEdXConfig", "GraphEdXOutput", "align_diff", "diff_align", "pair_alignment",
    "GMNEmbed", "GMNEmbedConfig", "SimGNN", "SimGNNConfig", "Bipartite",
    "GEDPairs", "load_ged_pairs", "MODELS", "build_model",
]

#: model name -> (class, config class or None)
MODELS: dict[str, tuple[type[GEDModel], type | None]] = {
    "graphedx": (GraphEdX, GraphEdXConfig),
    "gmn-embed": (GMNEmbed, GMNEmbedConfig),
    "simgnn": (SimGNN, SimGNNConfig),
    "bipartite": (Bipartite, None),
}


def build_model(name: str, config: Any = None, *, costs: EditCosts | None = None, node_label: str | None = None,
                label_vocab: Sequence[str] | None = None) -> GEDModel:
    """A model by name (``graphedx``, ``gmn-embed``, ``simgnn``, ``bipartite``) with its config (or the default)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    cls, cfg_cls = MODELS[name]
    if cfg_cls is None:
        return cls(costs=costs, node_label=node_label, label_vocab=label_vocab)
    if isinstance(config, dict):
        config = cfg_cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()})
    return cls(config or cfg_cls(), costs=costs, node_label=node_label, label_vocab=label_vocab)
