r"""mmalign.altmoe: mixture-of-experts connectors between frozen encoders, trained by alternating one-way
alignment, from the `"Alt-MoE: A Scalable Framework for Bidirectional Multimodal Alignment and Efficient
Knowledge Integration" <https://arxiv.org/abs/2409.05929>`_ paper (later M3-JEPA).

- :mod:`~mmalign.altmoe.connector`: the shared, direction-conditioned top-k MoE connector and its router;
- :mod:`~mmalign.altmoe.schedule`: which direction each step aligns (round-robin or by validation recall);
- :mod:`~mmalign.altmoe.align`: the loss (symmetric InfoNCE + smooth L1 + load balance) and two-way retrieval;
- :mod:`~mmalign.altmoe.baselines`: CLIP-style linear projections and a single-MLP connector;
- :mod:`~mmalign.altmoe.encoders` and :mod:`~mmalign.altmoe.store`: frozen encoders and the on-disk store;
- :mod:`~mmalign.altmoe.data`: pair sets (MovieLens content/behaviour, DBP15K structure/names, synthetic);
- :mod:`~mmalign.altmoe.train`: ``python -m mmalign.altmoe.train`` on :func:`aligncore.training.fit`.
"""

from .align import (
    AltAligner,
    PairDataset,
    RetrievalResult,
    evaluate_retrieval,
    info_nce,
    retrieval,
    symmetric_info_nce,
)
from .baselines import LinearProjection, mlp_connector
from .config import AltMoEConfig, AltMoETrainConfig
from .connector import AltMoEConnector, ConnectorOutput, MoE, RouterOutput, TopKRouter, load_balancing_loss
from .data import PairSet, dbp15k_pairs, folder_pairs, load_pairs, movielens_pairs, synthetic_pairs
from .schedule import AlternatingSchedule, all_directions
from .store import EmbeddingStore, StoreWriter, build_store

__all__ = [
    "AltAligner", "PairDataset", "RetrievalResult", "evaluate_retrieval", "info_nce", "retrieval",
    "symmetric_info_nce", "LinearProjection", "mlp_connector", "AltMoEConfig", "AltMoETrainConfig",
    "AltMoEConnector", "ConnectorOutput", "MoE", "RouterOutput", "TopKRouter", "load_balancing_loss", "PairSet",
    "dbp15k_pairs", "folder_pairs", "load_pairs", "movielens_pairs", "synthetic_pairs", "AlternatingSchedule",
    "all_directions", "EmbeddingStore", "StoreWriter", "build_store",
]
