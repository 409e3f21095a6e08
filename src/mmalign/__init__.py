"""mmalign: alignment across modalities (context, das, altmoe)."""
