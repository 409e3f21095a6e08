"""Shape and mask handling shared by the OT solvers (batched ``(B, n, m)`` problems with padding)."""

from __future__ import annotations

import torch
from torch import Tensor


def as_batched(x: Tensor, name: str) -> tuple[Tensor, bool]:
    """Return ``x`` as a ``(B, n, m)`` tensor and whether a batch dimension was added."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 2:
        return x.unsqueeze(0), True
    if x.dim() == 3:
        return x, False
    raise ValueError(f"{name} must have shape (n, m) or (B, n, m), got {tuple(x.shape)}")


def check_mask(mask: Tensor | None, name: str, batch: int, size: int, squeezed: bool, device) -> Tensor | None:
    """Validate a boolean padding mask of shape ``(B, size)`` (or ``(size,)`` for an unbatched problem)."""
    if mask is None:
        return None
    if squeezed and mask.dim() == 1:
        mask = mask.unsqueeze(0)
    if mask.shape != (batch, size):
        raise ValueError(f"{name} must have shape ({batch}, {size}), got {tuple(mask.shape)}")
    mask = mask.to(device=device, dtype=torch.bool)
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        idx = empty.nonzero().flatten().tolist()
        raise ValueError(f"{name} marks no valid entry for batch item(s) {idx}")
    return mask


def check_marginal(
    w: Tensor | None, name: str, batch: int, size: int, squeezed: bool, mask: Tensor | None, like: Tensor
) -> Tensor:
    """Return marginal weights ``(B, size)``: uniform over the valid entries when ``w`` is None, zero on padding."""
    if w is None:
        if mask is None:
            return torch.full((batch, size), 1.0 / size, dtype=like.dtype, device=like.device)
        m = mask.to(like.dtype)
        return m / m.sum(dim=1, keepdim=True)
    if squeezed and w.dim() == 1:
        w = w.unsqueeze(0)
    if w.shape != (batch, size):
        raise ValueError(f"{name} must have shape ({batch}, {size}) to match cost, got {tuple(w.shape)}")
    w = w.to(device=like.device, dtype=like.dtype)
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains non-finite values")
    if bool((w < 0).any()):
        raise ValueError(f"{name} must be non-negative, min is {float(w.min())}")
    if mask is not None:
        w = w * mask.to(w.dtype)
    if bool((w.sum(dim=1) <= 0).any()):
        raise ValueError(f"{name} has zero total mass for some batch item")
    return w
