"""llmalign: preference alignment of language models (log-probs, preference losses, diagnostics, trainer).

* :mod:`llmalign.logps`: completion log-probabilities (float32, left or right padding, one forward for pairs).
* :mod:`llmalign.losses`: DPO/cDPO, robust DPO, IPO, hinge, KTO, SimPO, ORPO, ASFT, SFT, D2O, PoFT, DCKD, ADPA.
* :mod:`llmalign.diagnostics`: top-k entropy/mass, KL to the reference, exact best-of-N KL.
* :mod:`llmalign.data`: JSONL preference files, the verifiable arithmetic set, tokenisation, batching.
* :mod:`llmalign.train`: ``python -m llmalign.train`` on :func:`aligncore.training.fit`.
"""

from .data import (
    PairCollator,
    PreferenceDataset,
    PreferenceExample,
    PreferenceFormatError,
    arithmetic_preferences,
    arithmetic_reward,
    read_preferences,
    tokenize_pairs,
    write_preferences,
)
from .diagnostics import (
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_probs,
    best_of_n_sample,
    token_kl,
    topk_token_stats,
)
from .logps import PolicyLogps, SequenceLogps, completion_logps, sequence_logps
from .losses import (
    LOSSES,
    PreferenceLoss,
    adpa_loss,
    asft_loss,
    d2o_loss,
    dckd_loss,
    dpo_loss,
    hinge_loss,
    ipo_loss,
    kto_loss,
    orpo_loss,
    pair_loss,
    poft_loss,
    robust_dpo_loss,
    sft_loss,
    simpo_loss,
)

__all__ = [
    "PairCollator", "PreferenceDataset", "PreferenceExample", "PreferenceFormatError", "arithmetic_preferences",
    "arithmetic_reward", "read_preferences", "tokenize_pairs", "write_preferences", "best_of_n_kl",
    "best_of_n_kl_bound", "best_of_n_probs", "best_of_n_sample", "token_kl", "topk_token_stats", "PolicyLogps",
    "SequenceLogps", "completion_logps", "sequence_logps", "LOSSES", "PreferenceLoss", "adpa_loss", "asft_loss",
    "d2o_loss", "dckd_loss", "dpo_loss", "hinge_loss", "ipo_loss", "kto_loss", "orpo_loss", "pair_loss",
    "poft_loss", "robust_dpo_loss", "sft_loss", "simpo_loss",
]
