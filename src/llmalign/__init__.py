"""llmalign: preference alignment of language models (log-probs, preference losses, diagnostics, trainer)."""
