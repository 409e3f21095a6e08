"""graphalign: graph edit distance with general edit costs (exact solver, bounds, labels, neural estimators)."""
