"""aligncore: what every alignkit package shares: optimal transport, metrics, the training loop, data roots."""

from . import metrics, ot
from .data import resolve_dataset
from .training import FitResult, TrainConfig, fit

__all__ = ["FitResult", "TrainConfig", "fit", "metrics", "ot", "resolve_dataset"]
__version__ = "0.1.0"
