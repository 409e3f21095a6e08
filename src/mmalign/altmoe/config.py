"""Configuration of Alt-MoE runs (`"Alt-MoE" <https://arxiv.org/abs/2409.05929>`_): the method's options and
the training-loop defaults it uses."""

from __future__ import annotations

from dataclasses import dataclass

from aligncore.config import field
from aligncore.training import TrainConfig

__all__ = ["AltMoEConfig", "AltMoETrainConfig"]


@dataclass
class AltMoEConfig:
    """Alt-MoE: a mixture-of-experts connector between frozen encoders, trained by alternating one-way
    alignment (arXiv 2409.05929)."""

    pairs: str = field("movielens", help="pair set: movielens, dbp15k-zh-en, dbp15k-ja-en, dbp15k-zh+ja-en "
                                         "(both pooled), synthetic, or a folder of <modality>.npy files "
                                         "(+ split.json)")
    data_root: str | None = field(None, help="dataset root (else $ALIGNKIT_DATA, then the project's data/)")
    text_store: str | None = field(None, help="movielens: an embedding store of full SmolLM2 item embeddings "
                                              "(default: the bundled 128-d PCA of them)")
    text_tokens: bool = field(False, help="feed the connector the text modality's per-token SmolLM2 states "
                                          "(movielens texts, dbp15k-zh-en / ja-en names; routed per token, "
                                          "pooled before the heads, as in M3-JEPA's reference) instead of the "
                                          "pooled embedding; built once into the cache (minutes)")
    token_stats: bool = field(False, help="with text_tokens / structure_tokens: z-score the tokens with the "
                                          "training tokens' own statistics (the rows become their mean) "
                                          "instead of the pooled rows'")
    structure_tokens: int = field(0, help="dbp15k-zh-en / ja-en: feed the connector a token view of the "
                                          "structure side, one [entity | neighbour] token per KG1 neighbour "
                                          "(this many at most; 0: the entity's embedding alone)")
    model: str = field("altmoe", help="connector: altmoe (MoE), mlp (one MLP expert, k x wider), "
                                      "linear (CLIP-style projections)", choices=["altmoe", "mlp", "linear"])
    experts: int = field(12, help="number of experts E")
    top_k: int = field(4, help="experts per input k (gates renormalised over them)")
    latent: int = field(256, help="latent width d of the connector (independent of the encoders)")
    hidden: int = field(256, help="hidden width of each expert (the mlp baseline uses top_k x this)")
    dropout: float = field(0.1, help="dropout on the adapters and inside the experts")
    router_noise: float = field(0.0, help="std of noise added to router logits in training")
    multi_gate: bool = field(False, help="M3-JEPA's multi-gate MoE: the contrastive and regression objectives "
                                         "pass the experts separately (own task embedding, routing, norm)")
    tau: float = field(0.05, help="InfoNCE temperature (M3-JEPA's reference uses 0.03)")
    reg_weight: float = field(1.0, help="weight of the smooth-L1 regression of the frozen target embedding")
    balance_weight: float = field(0.01, help="weight of the Switch-Transformer load-balancing loss")
    schedule: str = field("round_robin", help="direction policy of the alternating alignment",
                          choices=["round_robin", "recall"])
    schedule_temperature: float = field(0.1, help="temperature of the recall-sampled policy")
    standardise: bool = field(True, help="z-score every modality with its training rows' statistics")
    split_seed: int = field(0, help="seed of the train/val/test split (and of the MF / spectral encoders)")
    eval_test: bool = field(True, help="evaluate retrieval on the test rows after training")


@dataclass
class AltMoETrainConfig(TrainConfig):
    """Training-loop options, with Alt-MoE's defaults (model selection by mean validation Recall@1)."""

    out_dir: str = field("runs/altmoe", help="folder for checkpoints (last.pt, best.pt) and metrics.jsonl")
    max_epochs: int = field(40, help="number of passes over the training data")
    batch_size: int = field(256, help="examples per batch and per process")
    lr: float = field(1e-3, help="learning rate of the default AdamW optimiser")
    weight_decay: float = field(1e-4, help="weight decay of the default AdamW optimiser")
    monitor: str = field("val_mean_recall@1", help="metric returned by the evaluation that selects the best model")
    mode: str = field("max", help="whether the monitored metric should be minimised or maximised",
                      choices=["min", "max"])
    patience: int | None = field(10, help="stop after this many evaluations without improvement (None: off)")
    eval_every: int = field(1, help="evaluate every this many epochs")
    resume: bool = field(False, help="continue from out_dir/last.pt when it exists")
    lr_schedule: str = field("constant", help="learning-rate schedule: constant, or cosine (annealed to ~0 over "
                                              "the budget, after warmup_epochs of linear warm-up)",
                             choices=["constant", "cosine"])
    warmup_epochs: float = field(0.0, help="cosine only: epochs of linear warm-up from ~0 to lr")
