"""kgalign: entity alignment between knowledge graphs (loaders, embedding candidates, LLM-Align reranking)."""
