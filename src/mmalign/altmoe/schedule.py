r"""Alternating one-way alignment: which direction :math:`s \to t` each training step aligns, from the
`"Alt-MoE" <https://arxiv.org/abs/2409.05929>`_ paper.

Alt-MoE trains the shared connector on one direction at a time (text :math:`\to` behaviour, then behaviour
:math:`\to` text, ...), so that each step's gradient serves one mapping and directions (and modalities) can be
added without retraining the others. Two policies:

- ``"round_robin"``: step :math:`n` aligns direction :math:`n \bmod D` of the declared list;
- ``"recall"``: step :math:`n` samples direction :math:`j` with probability
  :math:`\pi_j \propto \exp(-R_j / T)`, where :math:`R_j` is the latest validation Recall@1 of direction
  :math:`j` (fed by :meth:`AlternatingSchedule.observe`), so the weakest direction is trained most.

The schedule is an :class:`~torch.nn.Module` whose state (step counter, recalls, visit counts) lives in
buffers: it is saved in the training checkpoints with the model, and a resumed run continues the same sequence
(the sample at step :math:`n` depends only on ``(seed, n)`` and the recalls).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["AlternatingSchedule", "all_directions"]

MODES = ("round_robin", "recall")


def all_directions(n_modalities: int) -> list[tuple[int, int]]:
    """Every ordered pair :math:`(s, t)`, :math:`s \\ne t`, in the order (0,1), (1,0), (0,2), (2,0), (1,2), ..."""
    out = []
    for s in range(n_modalities):
        for t in range(s + 1, n_modalities):
            out += [(s, t), (t, s)]
    return out


class AlternatingSchedule(nn.Module):
    r"""Picks the direction of each alignment step.

    Args:
        directions (sequence of (int, int)): the directions :math:`(s, t)` to alternate over, in order.
        mode (str, optional): ``"round_robin"`` or ``"recall"``. (default: :obj:`"round_robin"`)
        temperature (float, optional): :math:`T` of the ``"recall"`` policy. (default: :obj:`0.1`)
        seed (int, optional): seed of the ``"recall"`` sampling. (default: :obj:`0`)
    """

    step: Tensor
    recall: Tensor
    visits: Tensor

    def __init__(self, directions: Sequence[tuple[int, int]], mode: str = "round_robin", *,
                 temperature: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not directions:
            raise ValueError("directions is empty")
        for s, t in directions:
            if s == t:
                raise ValueError(f"direction ({s}, {t}): source and target must differ")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.directions = [(int(s), int(t)) for s, t in directions]
        self.mode, self.temperature, self.seed = mode, temperature, seed
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("recall", torch.zeros(len(self.directions), dtype=torch.float64))
        self.register_buffer("visits", torch.zeros(len(self.directions), dtype=torch.long))

    def probabilities(self) -> Tensor:
        """Sampling probabilities of the directions under the ``"recall"`` policy, :math:`(D,)`."""
        return torch.softmax(-self.recall.cpu() / self.temperature, dim=0)

    def peek(self) -> int:
        """Index (into :attr:`directions`) of the direction the next step will align, without advancing."""
        n = int(self.step)
        if self.mode == "round_robin":
            return n % len(self.directions)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
        return int(torch.multinomial(self.probabilities(), 1, generator=g))

    def next(self) -> tuple[int, int]:
        """The direction :math:`(s, t)` of this step; advances the counter."""
        j = self.peek()
        self.step += 1
        self.visits[j] += 1
        return self.directions[j]

    def observe(self, recalls: Sequence[float] | Tensor) -> None:
        """Record the latest validation Recall@1 of every direction (in :attr:`directions` order)."""
        r = torch.as_tensor(recalls, dtype=torch.float64)
        if r.shape != self.recall.shape:
            raise ValueError(f"expected {len(self.directions)} recalls, got shape {tuple(r.shape)}")
        self.recall.copy_(r.to(self.recall.device))

    def extra_repr(self) -> str:
        return f"directions={self.directions}, mode={self.mode!r}"
