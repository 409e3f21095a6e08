r"""Sequence log-probabilities of completions under a causal language model.

Every preference loss in :mod:`llmalign.losses` consumes the log-likelihood of a completion :math:`y` given
its prompt :math:`x`,

.. math::
    \log \pi_\theta(y \mid x) = \sum_{t=1}^{|y|} \log \pi_\theta(y_t \mid x, y_{<t}),

summed (or averaged, :math:`\frac{1}{|y|}\log\pi_\theta(y\mid x)`) over the completion tokens only. This
module computes it from logits in float32 (whatever dtype the model runs in), for left- or right-padded
batches, and :class:`PolicyLogps` wraps a causal LM so that the whole computation runs inside
``model(...)`` (what DistributedDataParallel needs to synchronise gradients).

Chosen and rejected completions go through one forward pass: the collate function of
:mod:`llmalign.data` stacks the ``B`` chosen rows on top of the ``B`` rejected rows, and
:func:`split_pairs` takes them apart again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class SequenceLogps:
    """Per-sequence completion log-probabilities.

    Attributes:
        sum (Tensor): :math:`\\log\\pi(y\\mid x)`, summed over completion tokens, float32, shape :math:`(B,)`.
        mean (Tensor): the same divided by the number of completion tokens, shape :math:`(B,)`.
        n_tokens (Tensor): completion tokens per sequence (float32), shape :math:`(B,)`.
        per_token (Tensor | None): token log-probs aligned with ``input_ids[:, 1:]`` (zero outside the
            completion), shape :math:`(B, T-1)`.
        logits (Tensor | None): the model's logits at the predicting positions, shape
            :math:`(B, T-1, V)`, kept only when asked for (diagnostics, distillation losses).
    """

    sum: Tensor
    mean: Tensor
    n_tokens: Tensor
    per_token: Tensor | None = None
    logits: Tensor | None = None


def token_logps(logits: Tensor, labels: Tensor) -> Tensor:
    r"""Log-probability of each label under the logits, in float32:
    :math:`\log \mathrm{softmax}(z)_{y} = z_y - \log\sum_v e^{z_v}`.

    Args:
        logits (Tensor): unnormalised scores, any float dtype.
        labels (Tensor): token ids (``long``).

    Shapes:
        - logits: :math:`(*, V)`; labels: :math:`(*)`; returns :math:`(*)`
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree")
    z = logits.float()
    picked = torch.gather(z, -1, labels.long().clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(z, dim=-1)


def completion_logps(logits: Tensor, input_ids: Tensor, completion_mask: Tensor, *,
                     keep_per_token: bool = False, keep_logits: bool = False) -> SequenceLogps:
    r"""Sum and mean log-probabilities of the completion tokens of each sequence.

    Position :math:`t` of ``logits`` predicts token :math:`t+1` of ``input_ids``; a token counts when
    ``completion_mask`` is 1 at its own position, so prompt and padding tokens never contribute, whichever
    side the padding is on.

    Args:
        logits (Tensor): the model's output logits.
        input_ids (Tensor): the token ids fed to the model.
        completion_mask (Tensor): 1 on completion tokens, 0 on prompt and padding tokens.
        keep_per_token (bool, optional): also return the token log-probs. (default: :obj:`False`)
        keep_logits (bool, optional): also return the shifted logits. (default: :obj:`False`)

    Shapes:
        - logits: :math:`(B, T, V)`; input_ids, completion_mask: :math:`(B, T)`

    Returns:
        :class:`SequenceLogps` (float32).
    """
    if logits.dim() != 3 or input_ids.shape != logits.shape[:2] or completion_mask.shape != input_ids.shape:
        raise ValueError(f"expected logits (B, T, V) and input_ids, completion_mask (B, T); got logits "
                         f"{tuple(logits.shape)}, input_ids {tuple(input_ids.shape)}, completion_mask "
                         f"{tuple(completion_mask.shape)}")
    shifted = logits[:, :-1]
    labels = input_ids[:, 1:]
    mask = completion_mask[:, 1:].float()
    per_tok = token_logps(shifted, labels) * mask
    total = per_tok.sum(-1)
    n = mask.sum(-1)
    return SequenceLogps(sum=total, mean=total / n.clamp(min=1.0), n_tokens=n,
                         per_token=per_tok if keep_per_token else None,
                         logits=shifted if keep_logits else None)


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Positions that restart at 0 on the first real token of each row (correct for left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def sequence_logps(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, completion_mask: Tensor, *,
                   keep_per_token: bool = False, keep_logits: bool = False, trim: bool = True) -> SequenceLogps:
    r"""Run a causal LM (``model(input_ids=..., attention_mask=..., position_ids=...).logits``) and return
    the completion log-probabilities of every row (see :func:`completion_logps`).

    With ``trim`` the language-model head only runs on the last :math:`K` positions, where
    :math:`K = T - \min_b(\text{first completion position of row } b) + 1`, through the HuggingFace
    ``logits_to_keep`` argument: prompt positions never need logits. With left padding every completion
    ends at the last position, so :math:`K` is one more than the longest completion. The returned
    ``per_token`` and ``logits`` then cover only those positions (aligned with ``input_ids[:, T-K+1:]``).

    Shapes:
        - input_ids, attention_mask, completion_mask: :math:`(B, T)`
    """
    kw = {}
    t = input_ids.shape[1]
    start = 0
    if trim:
        has = completion_mask.any(-1)
        if bool(has.any()):
            first = torch.where(has, completion_mask.float().argmax(-1), torch.full_like(has, t, dtype=torch.long))
            start = max(int(first.min()) - 1, 0)
            kw["logits_to_keep"] = t - start
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), use_cache=False, **kw)
    logits = out.logits if hasattr(out, "logits") else out
    if logits.shape[1] != t - start:
        raise ValueError(f"model returned logits for {logits.shape[1]} positions, expected {t - start}")
    return completion_logps(logits, input_ids[:, start:], completion_mask[:, start:],
                            keep_per_token=keep_per_token, keep_logits=keep_logits)


class PolicyLogps(nn.Module):
    r"""A causal LM whose ``forward`` returns completion log-probabilities (:class:`SequenceLogps`).

    Training code calls ``policy(input_ids, attention_mask, completion_mask)`` so that the forward and the
    log-softmax run inside the module: under :func:`aligncore.training.fit` with ``torchrun`` the
    DistributedDataParallel wrapper then synchronises the gradients.

    Args:
        lm (nn.Module): a HuggingFace-style causal LM (returns an object with ``.logits``).
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: Tensor, attention_mask: Tensor, completion_mask: Tensor,
                keep_per_token: bool = False, keep_logits: bool = False, trim: bool = True) -> SequenceLogps:
        return sequence_logps(self.lm, input_ids, attention_mask, completion_mask,
                              keep_per_token=keep_per_token, keep_logits=keep_logits, trim=trim)


def split_pairs(x: Tensor) -> tuple[Tensor, Tensor]:
    """Split a tensor whose first ``B`` rows are chosen and last ``B`` rows rejected."""
    if x.shape[0] % 2:
        raise ValueError(f"expected an even number of rows (chosen then rejected), got {x.shape[0]}")
    half = x.shape[0] // 2
    return x[:half], x[half:]
