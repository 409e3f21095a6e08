r"""The preference-loss family, as pure functions on log-probability tensors.

Each function takes per-example sequence log-probabilities (float tensors of shape :math:`(B,)`, sums over
completion tokens unless a length argument says otherwise) and returns a :class:`PreferenceLoss`: the mean
loss, the per-example losses, and the usual metrics (implicit rewards of the chosen and rejected
completions, their margin and the fraction of pairs where the chosen reward is higher).

Notation: :math:`\pi_\theta` is the policy, :math:`\pi_{\mathrm{ref}}` the frozen reference, :math:`y_w` the
chosen and :math:`y_l` the rejected completion, :math:`\sigma` the logistic function, and

.. math::
    h = \log\frac{\pi_\theta(y_w\mid x)}{\pi_{\mathrm{ref}}(y_w\mid x)}
      - \log\frac{\pi_\theta(y_l\mid x)}{\pi_{\mathrm{ref}}(y_l\mid x)}.

Conventions follow TRL's ``DPOTrainer`` where a choice is needed (rewards are
:math:`\beta\log\frac{\pi_\theta}{\pi_{\mathrm{ref}}}`, label smoothing as in cDPO and robust DPO), the
seed papers elsewhere. :data:`LOSSES` selects a pairwise loss by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class PreferenceLoss:
    """What every loss returns.

    Attributes:
        loss (Tensor): the scalar to minimise (mean over examples).
        losses (Tensor): per-example losses, shape :math:`(B,)`.
        chosen_rewards (Tensor): implicit reward of the chosen (or preferred) side, detached, :math:`(B,)`.
        rejected_rewards (Tensor): implicit reward of the rejected side, detached, :math:`(B,)`.
        extra (dict): further loss-specific values (detached scalars).
    """

    loss: Tensor
    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)

    @property
    def margin(self) -> Tensor:
        """Mean reward margin :math:`r_w - r_l`."""
        return (self.chosen_rewards - self.rejected_rewards).mean()

    @property
    def accuracy(self) -> Tensor:
        """Fraction of pairs with :math:`r_w > r_l`."""
        return (self.chosen_rewards > self.rejected_rewards).float().mean()

    def metrics(self) -> dict[str, float]:
        """Plain floats for logging: loss, rewards/chosen, rewards/rejected, margin, accuracy, extras."""
        out = {"loss": float(self.loss.detach()), "rewards_chosen": float(self.chosen_rewards.mean()),
               "rewards_rejected": float(self.rejected_rewards.mean()), "margin": float(self.margin),
               "accuracy": float(self.accuracy)}
        out.update({k: float(v) for k, v in self.extra.items()})
        return out


def _check(**tensors: Tensor | None) -> None:
    shape = None
    for name, t in tensors.items():
        if t is None:
            continue
        if shape is None:
            shape, first = t.shape, name
        elif t.shape != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)} but {first} has {tuple(shape)}")


def _result(losses: Tensor, chosen_rewards: Tensor, rejected_rewards: Tensor, **extra: Tensor) -> PreferenceLoss:
    return PreferenceLoss(loss=losses.mean(), losses=losses, chosen_rewards=chosen_rewards.detach(),
                          rejected_rewards=rejected_rewards.detach(),
                          extra={k: v.detach() for k, v in extra.items()})


# ------------------------------------------------------------------------------ reference-based, pairwise


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, *,
             beta: float = 0.1, label_smoothing: float = 0.0) -> PreferenceLoss:
    r"""Direct preference optimisation, from the `"Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model" <https://arxiv.org/abs/2305.18290>`_ paper (Eq. 7), with the conservative
    label smoothing of cDPO (`Mitchell, 2023 <https://ericmitchell.ai/cdpo.pdf>`_).

    .. math::
        \mathcal{L} = -(1-\varepsilon)\log\sigma(\beta h) - \varepsilon\log\sigma(-\beta h)

    Args:
        policy_chosen, policy_rejected (Tensor): :math:`\log\pi_\theta(y_w|x)`, :math:`\log\pi_\theta(y_l|x)`.
        ref_chosen, ref_rejected (Tensor): the same under :math:`\pi_{\mathrm{ref}}`.
        beta (float, optional): KL strength :math:`\beta`. (default: :obj:`0.1`)
        label_smoothing (float, optional): probability :math:`\varepsilon` that a label is flipped.
            (default: :obj:`0.0`)

    Shapes:
        - every input: :math:`(B,)`

    Returns:
        :class:`PreferenceLoss` with rewards :math:`\beta\log\frac{\pi_\theta(y|x)}{\pi_{\mathrm{ref}}(y|x)}`.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
           ref_rejected=ref_rejected)
    rc, rr = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    z = beta * (rc - rr)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return _result(losses, beta * rc, beta * rr)


def robust_dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
                    *, beta: float = 0.1, label_smoothing: float = 0.1) -> PreferenceLoss:
    r"""Robust DPO, from the `"Provably Robust DPO: Aligning Language Models with Noisy Feedback"
    <https://arxiv.org/abs/2403.00409>`_ paper (Eq. 8): an unbiased loss under labels flipped with
    probability :math:`\varepsilon < 1/2`.

    .. math::
        \mathcal{L} = \frac{-(1-\varepsilon)\log\sigma(\beta h) + \varepsilon\log\sigma(-\beta h)}{1 - 2\varepsilon}

    Args:
        label_smoothing (float, optional): flip rate :math:`\varepsilon \in [0, 1/2)`. (default: :obj:`0.1`)

    Other arguments and shapes as in :func:`dpo_loss`.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs label_smoothing in [0, 0.5), got {label_smoothing}")
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
           ref_rejected=ref_rejected)
    rc, rr = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    z = beta * (rc - rr)
    losses = (-(1.0 - label_smoothing) * F.logsigmoid(z) + label_smoothing * F.logsigmoid(-z)) / (
        1.0 - 2.0 * label_smoothing)
    return _result(losses, beta * rc, beta * rr)


def ipo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, *,
             beta: float = 0.1, chosen_lengths: Tensor | None = None,
             rejected_lengths: Tensor | None = None) -> PreferenceLoss:
    r"""Identity preference optimisation, from the `"A General Theoretical Paradigm to Understand Learning
    from Human Preferences" <https://arxiv.org/abs/2310.12036>`_ paper (Eq. 17, :math:`\tau = \beta`).

    .. math::
        \mathcal{L} = \Bigl(h - \frac{1}{2\beta}\Bigr)^2

    When lengths are given each log-ratio is divided by its completion length first (TRL's convention,
    which the IPO authors confirmed matches their experiments).

    Args:
        beta (float, optional): regulariser :math:`\tau`. (default: :obj:`0.1`)
        chosen_lengths, rejected_lengths (Tensor, optional): completion token counts.

    Other arguments and shapes as in :func:`dpo_loss`.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
           ref_rejected=ref_rejected, chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
    rc, rr = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    if (chosen_lengths is None) != (rejected_lengths is None):
        raise ValueError("give both chosen_lengths and rejected_lengths, or neither")
    if chosen_lengths is not None:
        rc, rr = rc / chosen_lengths.clamp(min=1), rr / rejected_lengths.clamp(min=1)
    losses = (rc - rr - 1.0 / (2.0 * beta)) ** 2
    return _result(losses, beta * rc, beta * rr)


def hinge_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, *,
               beta: float = 0.1) -> PreferenceLoss:
    r"""Hinge (SLiC) loss, from the `"SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
    <https://arxiv.org/abs/2305.10425>`_ paper, on reference-normalised log-likelihoods as in the
    `RSO paper <https://arxiv.org/abs/2309.06657>`_ (margin :math:`1/\beta`).

    .. math::
        \mathcal{L} = \max(0,\ 1 - \beta h)

    Arguments and shapes as in :func:`dpo_loss`.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
           ref_rejected=ref_rejected)
    rc, rr = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    losses = torch.relu(1.0 - beta * (rc - rr))
    return _result(losses, beta * rc, beta * rr)


def kto_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, *,
             beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0,
             kl: Tensor | float | None = None) -> PreferenceLoss:
    r"""Kahneman-Tversky optimisation, from the `"KTO: Model Alignment as Prospect Theoretic Optimization"
    <https://arxiv.org/abs/2402.01306>`_ paper (Eq. 8), applied to pairs: the chosen completion is a
    desirable example and the rejected one an undesirable example.

    .. math::
        \mathcal{L} = \lambda_D\bigl(1 - \sigma(\beta(r_w - z_0))\bigr)
                    + \lambda_U\bigl(1 - \sigma(\beta(z_0 - r_l))\bigr),
        \qquad r = \log\frac{\pi_\theta(y|x)}{\pi_{\mathrm{ref}}(y|x)}

    :math:`z_0` estimates :math:`\mathrm{KL}(\pi_\theta\,\|\,\pi_{\mathrm{ref}})`; it carries no gradient.
    TRL estimates it on mismatched prompt-completion pairs; pass such an estimate as ``kl``. Without it the
    batch mean of all :math:`r` clamped at zero is used (a biased but common stand-in).

    Args:
        desirable_weight, undesirable_weight (float, optional): :math:`\lambda_D`, :math:`\lambda_U`.
            (default: :obj:`1.0`)
        kl (Tensor | float, optional): the reference point :math:`z_0`. (default: :obj:`None`)

    Other arguments and shapes as in :func:`dpo_loss`.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
           ref_rejected=ref_rejected)
    rc, rr = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    if kl is None:
        z0 = torch.cat([rc, rr]).mean().clamp(min=0).detach()
    else:
        z0 = torch.as_tensor(kl, dtype=rc.dtype, device=rc.device).clamp(min=0).detach()
    losses = (desirable_weight * (1 - torch.sigmoid(beta * (rc - z0)))
              + undesirable_weight * (1 - torch.sigmoid(beta * (z0 - rr))))
    return _result(losses, beta * rc, beta * rr, kl=z0)


# ------------------------------------------------------------------------------ reference-free, pairwise


def simpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor,
               *, beta: float = 2.0, gamma: float = 0.5, label_smoothing: float = 0.0) -> PreferenceLoss:
    r"""Simple preference optimisation, from the `"SimPO: Simple Preference Optimization with a
    Reference-Free Reward" <https://arxiv.org/abs/2405.14734>`_ paper (Eq. 6).

    .. math::
        \mathcal{L} = -\log\sigma\Bigl(\frac{\beta}{|y_w|}\log\pi_\theta(y_w|x)
                       - \frac{\beta}{|y_l|}\log\pi_\theta(y_l|x) - \gamma\Bigr)

    Args:
        chosen_lengths, rejected_lengths (Tensor): completion token counts :math:`|y|`.
        beta (float, optional): reward scale. (default: :obj:`2.0`)
        gamma (float, optional): target reward margin :math:`\gamma`. (default: :obj:`0.5`)
        label_smoothing (float, optional): as in :func:`dpo_loss`. (default: :obj:`0.0`)

    Returns:
        :class:`PreferenceLoss` with rewards :math:`\frac{\beta}{|y|}\log\pi_\theta(y|x)`.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, chosen_lengths=chosen_lengths,
           rejected_lengths=rejected_lengths)
    rw = beta * policy_chosen / chosen_lengths.clamp(min=1)
    rl = beta * policy_rejected / rejected_lengths.clamp(min=1)
    z = rw - rl - gamma
    losses = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return _result(losses, rw, rl)


def _log_odds(mean_logp: Tensor) -> Tensor:
    """:math:`\\log\\frac{p}{1-p}` for :math:`p = e^{m}`, computed stably for :math:`m < 0`."""
    m = mean_logp.clamp(max=-1e-6)
    return m - torch.log(-torch.expm1(m))


def orpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor,
              *, beta: float = 0.1) -> PreferenceLoss:
    r"""Odds-ratio preference optimisation, from the `"ORPO: Monolithic Preference Optimization without
    Reference Model" <https://arxiv.org/abs/2403.07691>`_ paper (Eqs. 6-7), with
    :math:`P_\theta(y|x) = \exp(\frac{1}{|y|}\log\pi_\theta(y|x))` and
    :math:`\mathrm{odds}(y|x) = \frac{P_\theta(y|x)}{1 - P_\theta(y|x)}`:

    .. math::
        \mathcal{L} = -\frac{1}{|y_w|}\log\pi_\theta(y_w|x)
            - \lambda \log\sigma\Bigl(\log\frac{\mathrm{odds}(y_w|x)}{\mathrm{odds}(y_l|x)}\Bigr)

    Args:
        chosen_lengths, rejected_lengths (Tensor): completion token counts.
        beta (float, optional): :math:`\lambda`, the weight of the odds-ratio term (TRL's ``beta``).
            (default: :obj:`0.1`)

    Returns:
        :class:`PreferenceLoss` with rewards :math:`\frac{\beta}{|y|}\log\pi_\theta(y|x)` (TRL's) and extras
        ``nll`` and ``log_odds_ratio``.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, chosen_lengths=chosen_lengths,
           rejected_lengths=rejected_lengths)
    mw = policy_chosen / chosen_lengths.clamp(min=1)
    ml = policy_rejected / rejected_lengths.clamp(min=1)
    ratio = _log_odds(mw) - _log_odds(ml)
    nll = -mw
    losses = nll - beta * F.logsigmoid(ratio)
    return _result(losses, beta * mw, beta * ml, nll=nll.mean(), log_odds_ratio=ratio.mean())


def asft_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor,
              *, beta: float = 1.0, lam: float = 1.0) -> PreferenceLoss:
    r"""Aligned supervised fine-tuning, from the `"ASFT: Aligned Supervised Fine-Tuning through Absolute
    Likelihood" <https://arxiv.org/abs/2409.10571>`_ paper: the SFT loss plus a *pointwise* alignment loss
    that raises the odds of the chosen and lowers those of the rejected completion, each on its own
    (no Bradley-Terry comparison, no reference model).

    .. math::
        \mathcal{L} = -\frac{1}{|y_w|}\log\pi_\theta(y_w|x)
            - \lambda\Bigl[\log\sigma\bigl(\beta\log\mathrm{odds}(y_w|x)\bigr)
                          + \log\sigma\bigl(-\beta\log\mathrm{odds}(y_l|x)\bigr)\Bigr]

    with odds as in :func:`orpo_loss`, i.e. of the *length-normalised* probability
    :math:`P_\theta(y|x) = \exp(\frac{1}{|y|}\log\pi_\theta(y|x))`. At :math:`\beta = 1`,
    :math:`\log\sigma(\log\mathrm{odds}) = \log P_\theta` and :math:`\log\sigma(-\log\mathrm{odds}) =
    \log(1 - P_\theta)`: the alignment term is the binary cross-entropy of the absolute (length-normalised)
    likelihoods, the paper's loss. Other values give the :math:`\beta`-scaled form of
    `"The Differences Between Direct Alignment Algorithms are a Blur" <https://arxiv.org/abs/2502.01237>`_.

    Checked against: the ASFT implementation that the authors of arXiv 2502.01237 contributed to
    `turbo-alignment <https://github.com/turbo-llm/turbo-alignment/pull/38>`_ (``ASFTLoss`` in
    ``turbo_alignment/trainers/dpo.py``): log-odds of mean token log-probs (the trainer refuses ASFT without
    length normalisation), :math:`-\log\sigma(\log\mathrm{odds}_w) - \log\sigma(-\log\mathrm{odds}_l)`
    weighted by one coefficient (their ``beta``, our :math:`\lambda`), plus the mean-token NLL of the chosen
    completion. Only the abstract of arXiv 2409.10571 itself was available to check.

    Args:
        chosen_lengths, rejected_lengths (Tensor): completion token counts.
        beta (float, optional): scale of the log-odds. (default: :obj:`1.0`, the paper's loss)
        lam (float, optional): weight :math:`\lambda` of the alignment term. (default: :obj:`1.0`)

    Returns:
        :class:`PreferenceLoss` with rewards :math:`\beta\log\mathrm{odds}(y|x)`.
    """
    _check(policy_chosen=policy_chosen, policy_rejected=policy_rejected, chosen_lengths=chosen_lengths,
           rejected_lengths=rejected_lengths)
    mw = policy_chosen / chosen_lengths.clamp(min=1)
    ml = policy_rejected / rejected_lengths.clamp(min=1)
    ow, ol = beta * _log_odds(mw), beta * _log_odds(ml)
    nll = -mw
    losses = nll - lam * (F.logsigmoid(ow) + F.logsigmoid(-ol))
    return _result(losses, ow, ol, nll=nll.mean())


def sft_loss(policy_chosen: Tensor, chosen_lengths: Tensor, policy_rejected: Tensor | None = None,
             rejected_lengths: Tensor | None = None) -> PreferenceLoss:
    r"""Supervised fine-tuning on the chosen completions: the token-averaged negative log-likelihood

    .. math::
        \mathcal{L} = -\frac{\sum_i \log\pi_\theta(y_w^{(i)}|x^{(i)})}{\sum_i |y_w^{(i)}|}

    Args:
        policy_chosen (Tensor): :math:`\log\pi_\theta(y_w|x)`, summed over tokens.
        chosen_lengths (Tensor): :math:`|y_w|`.
        policy_rejected, rejected_lengths (Tensor, optional): only for the reported rejected reward.

    Returns:
        :class:`PreferenceLoss`; per-example ``losses`` are :math:`-\frac{1}{|y_w|}\log\pi_\theta(y_w|x)`
        (their plain mean differs from ``loss`` when lengths differ); rewards are mean token log-probs
        (zero for the rejected side when it is not given).
    """
    _check(policy_chosen=policy_chosen, chosen_lengths=chosen_lengths, policy_rejected=policy_rejected,
           rejected_lengths=rejected_lengths)
    mw = policy_chosen / chosen_lengths.clamp(min=1)
    if policy_rejected is None:
        ml = torch.zeros_like(mw)
    else:
        ml = policy_rejected / (rejected_lengths.clamp(min=1) if rejected_lengths is not None else 1.0)
    res = _result(-mw, mw, ml)
    res.loss = -policy_chosen.sum() / chosen_lengths.clamp(min=1).sum()
    return res


# ------------------------------------------------------------------------------ the seed papers' losses


def d2o_loss(policy_samples: Tensor, ref_samples: Tensor, policy_rejected: Tensor, ref_rejected: Tensor, *,
             beta: float = 0.1, alpha: float = 0.1, sample_mask: Tensor | None = None) -> PreferenceLoss:
    r"""Distributional dispreference optimisation, from the `"Negating Negatives: Alignment with Human
    Negative Samples via Distributional Dispreference Optimization" <https://arxiv.org/abs/2403.03419>`_
    paper: learn from negatives only, using :math:`K` self-generated responses :math:`y_1..y_K \sim
    \pi_{\mathrm{ref}}(\cdot|x)` as the positive *distribution*.

    .. math::
        \mathcal{L} = -\log\sigma\Bigl(\frac{\beta}{K}\sum_{i=1}^K \log\frac{\pi_\theta(y_i|x)}{\pi_r^-(y_i|x)}
            - \alpha\log\frac{\pi_\theta(y_l|x)}{\pi_r^+(y_l|x)}\Bigr)

    The paper's two reference policies :math:`\pi_r^-` (for the samples) and :math:`\pi_r^+` (for the
    negative) are whatever produced ``ref_samples`` and ``ref_rejected``; with one reference model both
    are :math:`\pi_{\mathrm{ref}}`.

    Checked against Eq. 3 of arXiv 2403.03419 (v2): sequence log-ratios (summed over tokens, no length
    normalisation), the samples' mean log-ratio weighted by :math:`\beta`, the negative's by :math:`\alpha`;
    the paper's experiments use :math:`\pi_r^+ = \pi_r^- =` the initial model, :math:`K = 11` and
    :math:`\alpha = \beta = 0.1`.

    Args:
        policy_samples, ref_samples (Tensor): log-probs of the :math:`K` samples per prompt.
        policy_rejected, ref_rejected (Tensor): log-probs of the human-labelled negative :math:`y_l`.
        beta (float, optional): weight of the samples' log-ratio. (default: :obj:`0.1`)
        alpha (float, optional): weight of the negative's log-ratio. (default: :obj:`0.1`)
        sample_mask (Tensor, optional): 1 for real samples when prompts have fewer than :math:`K`.

    Shapes:
        - policy_samples, ref_samples, sample_mask: :math:`(B, K)`; the rest :math:`(B,)`

    Returns:
        :class:`PreferenceLoss`: "chosen" reward :math:`\frac{\beta}{K}\sum_i\log\frac{\pi_\theta}{\pi_r^-}`,
        "rejected" reward :math:`\alpha\log\frac{\pi_\theta(y_l)}{\pi_r^+(y_l)}`.
    """
    if policy_samples.dim() != 2 or policy_samples.shape != ref_samples.shape:
        raise ValueError(f"policy_samples and ref_samples must both be (B, K); got "
                         f"{tuple(policy_samples.shape)} and {tuple(ref_samples.shape)}")
    _check(policy_rejected=policy_rejected, ref_rejected=ref_rejected)
    if policy_rejected.shape[0] != policy_samples.shape[0]:
        raise ValueError(f"policy_rejected has {policy_rejected.shape[0]} rows, samples {policy_samples.shape[0]}")
    ratio = policy_samples - ref_samples
    if sample_mask is None:
        mean_ratio = ratio.mean(-1)
    else:
        m = sample_mask.to(ratio.dtype)
        mean_ratio = (ratio * m).sum(-1) / m.sum(-1).clamp(min=1)
    rw = beta * mean_ratio
    rl = alpha * (policy_rejected - ref_rejected)
    losses = -F.logsigmoid(rw - rl)
    return _result(losses, rw, rl)


def poft_loss(policy: Tensor, aligned: Tensor, *, beta: float = 1.0, lengths: Tensor | None = None) -> PreferenceLoss:
    r"""Preference-oriented SFT, from the `"Preference-Oriented Supervised Fine-Tuning: Favoring Target
    Model Over Aligned Large Language Models" <https://arxiv.org/abs/2412.12865>`_ paper: on SFT data
    :math:`(x, y)`, a Bradley-Terry preference for the target model over :math:`M` aligned LLMs
    :math:`\pi_j`, whose (frozen) likelihoods act as a data-quality signal.

    .. math::
        \mathcal{L} = -\log\sigma\Bigl(\beta\,\bigl(s_\theta(x,y) - \tfrac{1}{M}\textstyle\sum_{j=1}^M s_j(x,y)\bigr)\Bigr),
        \qquad s(x,y) = \tfrac{1}{|y|}\log\pi(y|x)

    The aligned models' scores are averaged *before* the sigmoid (one Bradley-Terry term against their mean
    score), and every score is a mean token log-probability. The gradient equals the length-normalised SFT
    gradient weighted by :math:`\beta\,\sigma(\beta(\bar s - s_\theta))`: examples the aligned models find
    unlikely count less.

    Checked against the authors' code (``scripts/run_poft.py``, ``generate_preference_scores.py`` and
    ``merge_prefrence_scores.py`` of their alignment-handbook fork, ``Savannah120/alignment-handbook-PoFT``):
    each aligned model's score is its mean token log-likelihood of the response (its own tokenisation),
    the scores of the aligned models are averaged into one ``mean_log_llm_probs``, the target's score is
    its mean token log-likelihood, and the loss is :math:`-\log\sigma(\beta s_\theta - \beta\bar s + \gamma)`
    with :math:`\beta = 1`, :math:`\gamma = 0`.

    Args:
        policy (Tensor): :math:`\log\pi_\theta(y|x)` (sum when ``lengths`` is given, else already the mean).
        aligned (Tensor): the aligned LLMs' log-likelihoods of the same :math:`y`, on the same scale as
            ``policy`` (with ``lengths``: sums over the *policy's* tokens; without: means, which may come
            from each aligned model's own tokenisation).
        beta (float, optional): scale. (default: :obj:`1.0`)
        lengths (Tensor, optional): completion token counts, to length-normalise both.

    Shapes:
        - policy, lengths: :math:`(B,)`; aligned: :math:`(B,)` or :math:`(B, M)`

    Returns:
        :class:`PreferenceLoss` with "chosen" reward :math:`s_\theta` and "rejected" reward :math:`\bar s`.
    """
    if aligned.dim() == 1:
        aligned = aligned.unsqueeze(-1)
    if aligned.dim() != 2 or aligned.shape[0] != policy.shape[0] or policy.dim() != 1:
        raise ValueError(f"expected policy (B,) and aligned (B,) or (B, M); got {tuple(policy.shape)} and "
                         f"{tuple(aligned.shape)}")
    s_theta, s_al = policy, aligned
    if lengths is not None:
        _check(policy=policy, lengths=lengths)
        n = lengths.clamp(min=1)
        s_theta, s_al = policy / n, aligned / n.unsqueeze(-1)
    s_bar = s_al.mean(-1)
    losses = -F.logsigmoid(beta * (s_theta - s_bar))
    return _result(losses, s_theta, s_bar)


def _masked_token_mean(x: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1)


def dckd_loss(student_logits_chosen: Tensor, teacher_logits_chosen: Tensor, mask_chosen: Tensor,
              student_logits_rejected: Tensor, teacher_logits_rejected: Tensor, mask_rejected: Tensor,
              labels_chosen: Tensor | None = None, *, sft_weight: float = 1.0, kd_weight: float = 1.0,
              temperature: float = 1.0) -> PreferenceLoss:
    r"""Dual-constrained knowledge distillation (DCKD), from the `"Advantage-Guided Distillation for
    Preference Alignment in Small Language Models" <https://arxiv.org/abs/2502.17927>`_ paper (ICLR 2025):
    token-level KL from a preference-aligned teacher to the student on *both* the chosen and the rejected
    response, plus SFT on the chosen one.

    .. math::
        \mathcal{L} = -\lambda_{\mathrm{sft}}\frac{1}{|y_w|}\log\pi_\theta(y_w|x)
        + \lambda_{\mathrm{kd}}\Bigl[\tfrac{1}{|y_w|}\textstyle\sum_t \mathrm{KL}\bigl(\pi_T(\cdot|x,y_{w,<t})
            \,\|\,\pi_\theta(\cdot|x,y_{w,<t})\bigr)
        + \tfrac{1}{|y_l|}\textstyle\sum_t \mathrm{KL}\bigl(\pi_T(\cdot|x,y_{l,<t})\,\|\,\pi_\theta(\cdot|x,y_{l,<t})\bigr)\Bigr]

    (token means here are over all completion tokens of the batch).

    Checked against the authors' training code (``DistillTrainer.get_batch_loss_metrics`` in
    ``scripts/run_distill_dpo.py`` of the ADPA release): ``sft_on_chosen`` times the token-mean NLL of the
    chosen responses plus ``distillation_weight`` times the forward KL (teacher to student, summed over the
    vocabulary, mean over the batch's completion tokens) on chosen and on rejected responses. The authors
    keep only the teacher's top-50 probabilities (pre-computed); this function uses the full distribution.

    Args:
        student_logits_chosen, teacher_logits_chosen (Tensor): logits at the positions predicting the chosen
            completion tokens (e.g. :attr:`SequenceLogps.logits`).
        mask_chosen (Tensor): 1 where the position predicts a completion token.
        student_logits_rejected, teacher_logits_rejected, mask_rejected (Tensor): the same for :math:`y_l`.
        labels_chosen (Tensor, optional): the chosen tokens each position predicts; needed when
            ``sft_weight > 0``.
        sft_weight, kd_weight (float, optional): term weights. (default: :obj:`1.0`)
        temperature (float, optional): softmax temperature of both distributions. (default: :obj:`1.0`)

    Shapes:
        - logits: :math:`(B, T, V)`; masks, labels: :math:`(B, T)`

    Returns:
        :class:`PreferenceLoss` with rewards the negative mean KL on each side (higher: closer to teacher).
    """
    def kl_tokens(s: Tensor, t: Tensor) -> Tensor:
        if s.shape != t.shape:
            raise ValueError(f"student logits {tuple(s.shape)} and teacher logits {tuple(t.shape)} disagree")
        lp_s = F.log_softmax(s.float() / temperature, -1)
        lp_t = F.log_softmax(t.float() / temperature, -1)
        return (lp_t.exp() * (lp_t - lp_s)).sum(-1)

    kl_w = kl_tokens(student_logits_chosen, teacher_logits_chosen)
    kl_l = kl_tokens(student_logits_rejected, teacher_logits_rejected)
    kd_w, kd_l = _masked_token_mean(kl_w, mask_chosen), _masked_token_mean(kl_l, mask_rejected)
    total = kd_weight * (kd_w + kd_l)
    nll = torch.zeros((), device=total.device)
    if sft_weight:
        if labels_chosen is None:
            raise ValueError("dckd_loss: labels_chosen is needed when sft_weight > 0")
        lp = F.log_softmax(student_logits_chosen.float(), -1)
        tok = torch.gather(lp, -1, labels_chosen.long().clamp(min=0).unsqueeze(-1)).squeeze(-1)
        nll = -_masked_token_mean(tok, mask_chosen)
        total = total + sft_weight * nll
    b = student_logits_chosen.shape[0]
    per_w = (kl_w * mask_chosen).sum(-1) / mask_chosen.sum(-1).clamp(min=1)
    per_l = (kl_l * mask_rejected).sum(-1) / mask_rejected.sum(-1).clamp(min=1)
    res = _result(total.expand(b), -per_w, -per_l, kd_chosen=kd_w, kd_rejected=kd_l, nll=nll)
    res.loss = total
    return res


def adpa_loss(student_logits: Tensor, teacher_logits: Tensor, teacher_ref_logits: Tensor, mask: Tensor, *,
              beta: float = 1.0, labels: Tensor | None = None, sft_weight: float = 0.0) -> PreferenceLoss:
    r"""Advantage-guided distillation for preference alignment (ADPA), from the `"Advantage-Guided
    Distillation for Preference Alignment in Small Language Models" <https://arxiv.org/abs/2502.17927>`_
    paper (ICLR 2025). A DPO-trained teacher :math:`\pi_{\mathrm{dpo}}` and its reference
    :math:`\pi_{\mathrm{ref}}` define, for every prefix :math:`s_t` and every vocabulary token :math:`a`,
    the advantage :math:`A(s_t, a) = \beta\bigl(\log\pi_{\mathrm{dpo}}(a|s_t) - \log\pi_{\mathrm{ref}}(a|s_t)\bigr)`
    (DPO's token-level implicit reward); the student maximises its expected advantage under its own
    next-token distribution:

    .. math::
        \mathcal{L} = -\frac{1}{\sum_t 1}\sum_t \sum_{a\in\mathcal{V}} \pi_\theta(a|s_t)\,A(s_t, a)
                      \;[+\ \lambda_{\mathrm{sft}}\,\mathrm{NLL}]

    (ADPA+ starts from a DCKD-trained student.) The prefixes :math:`s_t` are those of the responses the
    caller passes; the authors use responses sampled from the (initial) student.

    Checked against the authors' code (``get_reverse_ce`` and the ADPA part of
    ``DistillTrainer.get_batch_loss_metrics`` in ``scripts/run_distill_dpo.py``, and
    ``utils/merge_logits_adpa_dataset.py``): the advantage is the per-token log-ratio
    :math:`\log\pi_{\mathrm{dpo}}(a|s_t) - \log\pi_{\mathrm{ref}}(a|s_t)` (no :math:`\beta`, i.e. :math:`\beta = 1`,
    restricted there to the teacher's top-50 tokens; the full vocabulary here), evaluated at the prefixes
    of student-generated responses; the loss is minus the student's expected advantage averaged over those
    positions, added to ``sft_on_chosen`` times the NLL of the chosen responses.

    Args:
        student_logits (Tensor): student logits at the positions of interest.
        teacher_logits (Tensor): logits of the preference-aligned (DPO) teacher at the same positions.
        teacher_ref_logits (Tensor): logits of the teacher's reference model there.
        mask (Tensor): 1 at positions that count.
        beta (float, optional): the teacher's DPO :math:`\beta`. (default: :obj:`1.0`)
        labels (Tensor, optional): tokens each position predicts, for the optional SFT term.
        sft_weight (float, optional): weight of that term. (default: :obj:`0.0`)

    Shapes:
        - logits: :math:`(B, T, V)`; mask, labels: :math:`(B, T)`

    Returns:
        :class:`PreferenceLoss`; "chosen" reward is the student's mean expected advantage per example and
        "rejected" reward the advantage of the teacher-reference's own distribution (the baseline,
        :math:`-\beta\,\mathrm{KL}(\pi_{\mathrm{ref}}\|\pi_{\mathrm{dpo}})`).
    """
    if not (student_logits.shape == teacher_logits.shape == teacher_ref_logits.shape):
        raise ValueError(f"student {tuple(student_logits.shape)}, teacher {tuple(teacher_logits.shape)} and "
                         f"teacher_ref {tuple(teacher_ref_logits.shape)} logits must share a shape")
    with torch.no_grad():
        adv = beta * (F.log_softmax(teacher_logits.float(), -1) - F.log_softmax(teacher_ref_logits.float(), -1))
        p_ref = F.softmax(teacher_ref_logits.float(), -1)
        base = (p_ref * adv).sum(-1)
    p_s = F.softmax(student_logits.float(), -1)
    exp_adv = (p_s * adv).sum(-1)
    total = -_masked_token_mean(exp_adv, mask)
    if sft_weight:
        if labels is None:
            raise ValueError("adpa_loss: labels are needed when sft_weight > 0")
        tok = torch.gather(F.log_softmax(student_logits.float(), -1), -1,
                           labels.long().clamp(min=0).unsqueeze(-1)).squeeze(-1)
        total = total - sft_weight * _masked_token_mean(tok, mask)
    m = mask.to(exp_adv.dtype)
    per = (exp_adv * m).sum(-1) / m.sum(-1).clamp(min=1)
    per_base = (base * m).sum(-1) / m.sum(-1).clamp(min=1)
    res = _result((-per), per, per_base)
    res.loss = total
    return res


# ------------------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class LossSpec:
    """A registry entry: the function, whether it needs reference log-probs, its tunable keywords."""

    fn: Callable[..., PreferenceLoss]
    needs_reference: bool
    uses_lengths: bool
    params: tuple[str, ...]
    paper: str


#: Pairwise losses usable on (prompt, chosen, rejected) data by name (``python -m llmalign.train --loss``).
LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec(dpo_loss, True, False, ("beta", "label_smoothing"), "https://arxiv.org/abs/2305.18290"),
    "robust": LossSpec(robust_dpo_loss, True, False, ("beta", "label_smoothing"),
                       "https://arxiv.org/abs/2403.00409"),
    "ipo": LossSpec(ipo_loss, True, True, ("beta",), "https://arxiv.org/abs/2310.12036"),
    "hinge": LossSpec(hinge_loss, True, False, ("beta",), "https://arxiv.org/abs/2305.10425"),
    "kto": LossSpec(kto_loss, True, False, ("beta", "desirable_weight", "undesirable_weight"),
                    "https://arxiv.org/abs/2402.01306"),
    "simpo": LossSpec(simpo_loss, False, True, ("beta", "gamma", "label_smoothing"),
                      "https://arxiv.org/abs/2405.14734"),
    "orpo": LossSpec(orpo_loss, False, True, ("beta",), "https://arxiv.org/abs/2403.07691"),
    "asft": LossSpec(asft_loss, False, True, ("beta", "lam"), "https://arxiv.org/abs/2409.10571"),
    "sft": LossSpec(sft_loss, False, True, (), ""),
}
LOSSES["sigmoid"] = LOSSES["dpo"]  # TRL's name

#: Losses that need other inputs than a preference pair (samples, aligned models, teachers): call directly.
OTHER_LOSSES: dict[str, Callable[..., PreferenceLoss]] = {
    "d2o": d2o_loss, "poft": poft_loss, "dckd": dckd_loss, "adpa": adpa_loss}


def pair_loss(name: str, policy_chosen: Tensor, policy_rejected: Tensor, *, ref_chosen: Tensor | None = None,
              ref_rejected: Tensor | None = None, chosen_lengths: Tensor | None = None,
              rejected_lengths: Tensor | None = None, **params: float) -> PreferenceLoss:
    """Compute the pairwise loss ``name`` (a key of :data:`LOSSES`) from summed log-probs.

    Only the keywords the loss uses (``LOSSES[name].params``) are passed on; unknown ones are an error,
    so a typo never silently leaves a default in place.
    """
    if name not in LOSSES:
        extra = f" ({name!r} needs other inputs: call llmalign.losses.{name}_loss)" if name in OTHER_LOSSES else ""
        raise KeyError(f"unknown pairwise loss {name!r}{extra}; known: {sorted(LOSSES)}")
    spec = LOSSES[name]
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise TypeError(f"loss {name!r} takes {list(spec.params)}, not {unknown}")
    if spec.needs_reference and (ref_chosen is None or ref_rejected is None):
        raise ValueError(f"loss {name!r} needs reference log-probs (ref_chosen, ref_rejected)")
    if spec.uses_lengths and name != "ipo" and (chosen_lengths is None or rejected_lengths is None):
        raise ValueError(f"loss {name!r} needs chosen_lengths and rejected_lengths")
    if name == "sft":
        return sft_loss(policy_chosen, chosen_lengths, policy_rejected, rejected_lengths)
    if spec.needs_reference:
        kw = dict(params)
        if name == "ipo":
            kw.update(chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
        return spec.fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, **kw)
    return spec.fn(policy_chosen, policy_rejected, chosen_lengths, rejected_lengths, **params)


__all__ = ["PreferenceLoss", "dpo_loss", "robust_dpo_loss", "ipo_loss", "hinge_loss", "kto_loss", "simpo_loss",
           "orpo_loss", "asft_loss", "sft_loss", "d2o_loss", "poft_loss", "dckd_loss", "adpa_loss", "LOSSES",
           "OTHER_LOSSES", "LossSpec", "pair_loss"]
