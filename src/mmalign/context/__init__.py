r"""Context alignment of time series with a frozen causal LM: DSCA-GNN (DECA / FSCA), from the
`"Context-Alignment: Activating and Enhancing LLM Capabilities in Time Series"
<https://arxiv.org/abs/2501.03747>`_ paper, with DLinear, PatchTST and OFA/GPT4TS baselines on the ETT data.
"""

from .baselines import DLinear, OFAModel, PatchTST
from .config import ContextConfig, ContextTrainConfig
from .data import ETTSplits, WindowDataset, ett_splits, load_ett, split_borders
from .dsca import CausalLMBackbone, ContextGraph, DSCAModel, build_context_graph, group_normalised_weights

__all__ = ["DSCAModel", "CausalLMBackbone", "ContextGraph", "build_context_graph", "group_normalised_weights",
           "OFAModel", "DLinear", "PatchTST", "ContextConfig", "ContextTrainConfig", "ETTSplits", "WindowDataset",
           "ett_splits", "load_ett", "split_borders"]
