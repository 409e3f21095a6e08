"""graphalign: graph edit distance with general edit costs (exact solver, bounds, labels, neural estimators)."""

from .align import AlignResult, align  # the function shadows the module name, by design
from .bounds import GEDBounds, ged_bounds
from .costs import COST_PRESETS, GRAPHEDX, UNIT, EditCosts, get_costs
from .data import GEDDataset, graphedx_split, load_ged_dataset, load_tu_dataset, within_split_pairs
from .edit_path import EditOp, apply_edit_path, edit_path, path_cost
from .exact import GEDResult, as_graph_arrays, exact_ged, mapping_cost
from .models import Bipartite, GMNEmbed, GraphEdX, GraphEdXConfig, SimGNN, build_model, load_ged_pairs

__all__ = [
    "EditCosts", "UNIT", "GRAPHEDX", "COST_PRESETS", "get_costs",
    "GEDResult", "exact_ged", "mapping_cost", "as_graph_arrays",
    "GEDBounds", "ged_bounds",
    "EditOp", "edit_path", "apply_edit_path", "path_cost",
    "GEDDataset", "load_ged_dataset", "load_tu_dataset", "graphedx_split", "within_split_pairs",
    "GEDLabels", "load_labels",
    "GraphEdX", "GraphEdXConfig", "GMNEmbed", "SimGNN", "Bipartite", "build_model", "load_ged_pairs",
    "AlignResult", "align",
]


def __getattr__(name: str):
    # graphalign.label is also the `python -m graphalign.label` CLI: importing it lazily keeps runpy from
    # finding it half-imported (a RuntimeWarning) when the CLI starts.
    if name in ("GEDLabels", "load_labels"):
        from . import label

        return getattr(label, name)
    raise AttributeError(f"module 'graphalign' has no attribute {name!r}")
