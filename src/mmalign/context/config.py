"""Configuration of ``python -m mmalign.context.train`` (one dataclass; the loop's options are TrainConfig's)."""

from __future__ import annotations

from dataclasses import dataclass

from aligncore.config import field
from aligncore.training import TrainConfig

__all__ = ["ContextConfig", "ContextTrainConfig", "PAPER"]

PAPER = "https://arxiv.org/abs/2501.03747"
_PROMPT = "Predict future sequences using previous data:"


@dataclass
class ContextConfig:
    """Data, model and backbone options of context-alignment forecasting."""

    data: str = field("ETTh1", help="ETT file to train on", choices=["ETTh1", "ETTh2", "ETTm1", "ETTm2"])
    root: str | None = field(None, help="folder holding ett/ (default: $ALIGNKIT_DATA, then the project's data/)")
    seq_len: int = field(512, help="input window length L (the paper's long-term setting: 512; few-shot script: "
                                   "192)")
    pred_len: int = field(96, help="forecast horizon H")
    few_shot: float = field(0.0, help="keep the first fraction of training windows (0.05 = the paper's 5 percent "
                                      "few-shot); 0 keeps all")
    zero_shot_target: str | None = field(None, help="also test on this ETT file's test split (zero-shot transfer)")
    eval_stride: int = field(1, help="use every k-th validation/test window (1 = all, the published protocol)")
    model: str = field("dsca", help="dsca (context alignment), ofa (same backbone, no graph: the ablation), "
                                    "dlinear, patchtst", choices=["dsca", "ofa", "dlinear", "patchtst"])
    backbone: str = field("smollm2", help="'smollm2' (SmolLM2-135M-Instruct, offline), 'tiny-llama' / 'tiny-gpt2' "
                                          "(random, for tests), or a local transformers folder")
    n_layers: int = field(4, help="backbone blocks kept from the bottom (authors' few-shot ETTh1: 4 of GPT-2's 12)")
    learned_positions: bool = field(False, help="rotary backbones (smollm2): add a trainable, zero-initialised "
                                                "absolute position table, the counterpart of GPT-2's wpe that the "
                                                "OFA rule trains")
    patch_len: int = field(8, help=f"patch length P (authors' scripts: 8; {PAPER})")
    stride: int = field(8, help="patch stride S")
    n_segments: int = field(2, help="patch segments of the demonstration layout (authors' split_len: 2)")
    gnn: str = field("gcn", help="graph layer", choices=["gcn", "gat"])
    gnn_layers: str = field("0", help="insert graph layers before these blocks, '_'-separated "
                                      "(n_layers = after the last); authors: 0")
    coarse_weight: float = field(1e-4, help="lambda of the coarse-to-fine feedback (authors' w_l2s: 1e-4)")
    coarse_dim: int = field(512, help="coarse features fed back to the fine tokens (authors' d_l_comp: 512)")
    d_ff: int | None = field(None, help="hidden features read by the head (None: all; authors with GPT-2: 512)")
    head_dropout: float = field(0.3, help="dropout of the output head (authors' out_dropout: 0.3)")
    head_dropout_on: str = field("features", help="dsca/ofa: head dropout on the flattened features before the "
                                 "output map (this library's runs) or on the predicted values after it (the FSCA "
                                 "reference's out_dropout)", choices=["features", "outputs"])
    demo_prompt: str = field(_PROMPT, help="text of the demonstration prompt between patch segments")
    task_prompt: str = field(_PROMPT, help="text of the task prompt at the end")
    moving_avg: int = field(25, help="DLinear moving-average window")
    patchtst_d_model: int = field(64, help="PatchTST width")
    patchtst_layers: int = field(2, help="PatchTST encoder layers")
    patchtst_patch_len: int = field(16, help="PatchTST patch length")
    patchtst_stride: int = field(8, help="PatchTST patch stride")
    eval_batch_size: int = field(64, help="windows per batch in validation and test (last partial batch kept)")

    def gnn_layer_tuple(self) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in str(self.gnn_layers).split("_") if x != "")
        except ValueError as e:
            raise ValueError(f"--gnn-layers must be '_'-separated integers, got {self.gnn_layers!r}") from e


@dataclass
class ContextTrainConfig(TrainConfig):
    """TrainConfig with this method's defaults (early stopping on validation MSE)."""

    out_dir: str = field("runs/context", help="folder for checkpoints, metrics.jsonl and test_metrics.json")
    max_epochs: int = field(10, help="number of passes over the training data")
    batch_size: int = field(32, help="windows per batch")
    lr: float | None = field(None, help="AdamW learning rate (None: 1e-4 for dsca and ofa, as in the FSCA and GPT4TS "
                                        "scripts; 1e-3 for dlinear and patchtst)")
    patience: int | None = field(3, help="stop after this many evaluations without a lower validation MSE")
    lr_schedule: str = field("constant", help="learning-rate schedule: constant, or cosine (annealed to ~0 over "
                                              "max_epochs or max_steps; the authors' scripts anneal with "
                                              "lradj=COS; a resumed run keeps the schedule it started with)",
                             choices=["constant", "cosine"])
    lr_tmax: int | None = field(None, help="cosine only: epochs from the initial rate down to ~0, after which it "
                                           "rises again (the FSCA scripts' tmax: 20); None: the whole budget")
