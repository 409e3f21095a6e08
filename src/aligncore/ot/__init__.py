"""Optimal transport for alignkit: one implementation of each solver, batched and device-agnostic."""

from .assignment import hungarian
from .gumbel import gumbel_sinkhorn, sample_gumbel
from .pot import emd, fused_gromov_wasserstein
from .sinkhorn import SinkhornResult, sinkhorn

__all__ = [
    "SinkhornResult",
    "emd",
    "fused_gromov_wasserstein",
    "gumbel_sinkhorn",
    "hungarian",
    "sample_gumbel",
    "sinkhorn",
]
