r"""Semantic IDs aligned with collaborative signals: DAS
(`"DAS: Dual-Aligned Semantic IDs Empowered Industrial Recommender System" <https://arxiv.org/abs/2508.10584>`_),
with TIGER's RQ-VAE IDs and generative retrieval (`<https://arxiv.org/abs/2305.05065>`_) as the anchor."""

from .model import DAS, DASConfig, info_nce, orthogonality
from .retriever import GenerativeRetriever, PrefixTrie, constrained_beam_search, evaluate_retrieval
from .rqvae import RQVAE, ResidualQuantizer, add_disambiguation, collision_rate, utilisation

__all__ = ["DAS", "DASConfig", "GenerativeRetriever", "PrefixTrie", "RQVAE", "ResidualQuantizer",
           "add_disambiguation", "collision_rate", "constrained_beam_search", "evaluate_retrieval", "info_nce",
           "orthogonality", "utilisation"]
