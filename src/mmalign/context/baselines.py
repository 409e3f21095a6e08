r"""Baselines in the same harness and splits as :class:`~mmalign.context.dsca.DSCAModel`.

- :class:`DLinear` from `"Are Transformers Effective for Time Series Forecasting?"
  <https://arxiv.org/abs/2205.13504>`_ (Zeng et al., AAAI 2023): moving-average decomposition, one linear
  map per component, shared across channels.
- :class:`PatchTST` (small) from `"A Time Series is Worth 64 Words" <https://arxiv.org/abs/2211.14730>`_
  (Nie et al., ICLR 2023): instance normalisation, patches, a small transformer encoder, flatten head.
- :class:`OFAModel`, GPT4TS / One-Fits-All from `"One Fits All: Power General Time Series Analysis by
  Pretrained LM" <https://arxiv.org/abs/2302.11939>`_ (Zhou et al., NeurIPS 2023): the patch tokens alone
  through the same frozen backbone blocks as DSCA, without prompts or graph layers. This is the ablation
  that shows what context alignment adds.

Shapes (all models):
    - input :math:`(B, L, C)`; output :math:`(B, H, C)`
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dsca import CausalLMBackbone, FlattenHead, InstanceNorm, n_patches, patchify

__all__ = ["moving_average", "DLinear", "PatchTST", "OFAModel"]


def moving_average(x: Tensor, kernel: int) -> Tensor:
    r"""Moving average over time with edge replication (DLinear's trend): the series is padded with
    :math:`\lfloor (k-1)/2 \rfloor` copies of its first value in front and :math:`k - 1 - \lfloor (k-1)/2
    \rfloor` copies of its last value behind (equal for odd :math:`k`, as in DLinear), then averaged over
    windows of :math:`k`.

    Shapes:
        - x: :math:`(B, L, C)`; returns :math:`(B, L, C)`
    """
    front = (kernel - 1) // 2
    back = kernel - 1 - front
    xp = torch.cat([x[:, :1].expand(-1, front, -1), x, x[:, -1:].expand(-1, back, -1)], dim=1)
    return F.avg_pool1d(xp.permute(0, 2, 1), kernel_size=kernel, stride=1).permute(0, 2, 1)


class DLinear(nn.Module):
    r"""DLinear: :math:`\hat y = W_s (x - \mathrm{MA}_k(x)) + W_t \mathrm{MA}_k(x)` per channel.

    Args:
        seq_len (int): :math:`L`.
        pred_len (int): :math:`H`.
        kernel (int, optional): moving-average window :math:`k`. (default: :obj:`25`)
    """

    def __init__(self, seq_len: int, pred_len: int, kernel: int = 25) -> None:
        super().__init__()
        self.kernel = kernel
        self.seasonal = nn.Linear(seq_len, pred_len)
        self.trend = nn.Linear(seq_len, pred_len)
        # DLinear initialises both maps to the mean over the window
        for lin in (self.seasonal, self.trend):
            nn.init.constant_(lin.weight, 1.0 / seq_len)

    def forward(self, x: Tensor) -> Tensor:
        trend = moving_average(x, self.kernel)
        seasonal = x - trend
        y = self.seasonal(seasonal.permute(0, 2, 1)) + self.trend(trend.permute(0, 2, 1))
        return y.permute(0, 2, 1)


class PatchTST(nn.Module):
    r"""A small PatchTST (channel independent, instance normalised, pre-norm transformer encoder with
    LayerNorm, learned position embeddings, flatten head).

    Args:
        seq_len (int): :math:`L`.
        pred_len (int): :math:`H`.
        patch_len (int, optional): :math:`P`. (default: :obj:`16`)
        stride (int, optional): :math:`S`. (default: :obj:`8`)
        d_model (int, optional): width. (default: :obj:`64`)
        n_heads (int, optional): attention heads. (default: :obj:`4`)
        n_layers (int, optional): encoder layers. (default: :obj:`2`)
        d_ff (int, optional): feed-forward width. (default: :obj:`128`)
        dropout (float, optional): dropout in the encoder and the head. (default: :obj:`0.2`)
    """

    def __init__(self, seq_len: int, pred_len: int, *, patch_len: int = 16, stride: int = 8, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, d_ff: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.seq_len, self.pred_len, self.patch_len, self.stride = seq_len, pred_len, patch_len, stride
        self.n_patch = n_patches(seq_len, patch_len, stride)
        self.norm = InstanceNorm()
        self.embed = nn.Linear(patch_len, d_model)
        self.pos = nn.Parameter(torch.randn(self.n_patch, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Flatten(-2), nn.Dropout(dropout), nn.Linear(self.n_patch * d_model, pred_len))

    def forward(self, x: Tensor) -> Tensor:
        bsz, _, n_ch = x.shape
        xn, mu, sigma = self.norm.normalise(x)
        series = xn.permute(0, 2, 1).reshape(bsz * n_ch, self.seq_len)
        h = self.embed(patchify(series, self.patch_len, self.stride)) + self.pos
        y = self.head(self.encoder(h)).reshape(bsz, n_ch, self.pred_len).permute(0, 2, 1)
        return self.norm.denormalise(y, mu, sigma)


class OFAModel(nn.Module):
    r"""GPT4TS / OFA: patch tokens through frozen LM blocks (norms and position embeddings trainable), linear
    head on the last hidden states; the same backbone, patching and head as :class:`DSCAModel` minus prompts and
    graph layers.

    Args:
        backbone (CausalLMBackbone): the frozen blocks.
        seq_len (int): :math:`L`.
        pred_len (int): :math:`H`.
        patch_len (int, optional): :math:`P`. (default: :obj:`8`)
        stride (int, optional): :math:`S`. (default: :obj:`8`)
        d_ff (int, optional): hidden features read by the head (:obj:`None`: all). (default: :obj:`None`)
        head_dropout (float, optional): dropout of the output head. (default: :obj:`0.3`)
        head_dropout_on (str, optional): ``"features"`` or ``"outputs"`` (:class:`~mmalign.context.dsca.FlattenHead`).
            (default: :obj:`"features"`)
    """

    def __init__(self, backbone: CausalLMBackbone, *, seq_len: int, pred_len: int, patch_len: int = 8,
                 stride: int = 8, d_ff: int | None = None, head_dropout: float = 0.3,
                 head_dropout_on: str = "features") -> None:
        super().__init__()
        self.backbone = backbone
        d = backbone.hidden_size
        self.seq_len, self.pred_len, self.patch_len, self.stride = seq_len, pred_len, patch_len, stride
        self.n_patch = n_patches(seq_len, patch_len, stride)
        self.d_ff = d if d_ff is None else min(d_ff, d)
        self.norm = InstanceNorm()
        self.patch_embed = nn.Linear(patch_len, d)
        self.head = FlattenHead(self.n_patch * self.d_ff, pred_len, head_dropout, head_dropout_on)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1] != self.seq_len:
            raise ValueError(f"x must be (B, {self.seq_len}, C), got {tuple(x.shape)}")
        bsz, _, n_ch = x.shape
        xn, mu, sigma = self.norm.normalise(x)
        series = xn.permute(0, 2, 1).reshape(bsz * n_ch, self.seq_len)
        h = self.backbone(self.patch_embed(patchify(series, self.patch_len, self.stride)))[..., : self.d_ff]
        y = self.head(h).reshape(bsz, n_ch, self.pred_len).permute(0, 2, 1)
        return self.norm.denormalise(y, mu, sigma)
