r"""Residual quantisation and the RQ-VAE of semantic IDs, from the
`"Recommender Systems with Generative Retrieval" (TIGER) <https://arxiv.org/abs/2305.05065>`_ paper
(after `"Autoregressive Image Generation using Residual Quantization" <https://arxiv.org/abs/2203.01941>`_).

An encoder maps a content embedding :math:`x` to a latent :math:`z = E(x)`; level :math:`l` picks the nearest code
of codebook :math:`C_l` to the residual :math:`r_l` (:math:`r_0 = z`, :math:`r_{l+1} = r_l - e_{c_l}`), and the
decoder reconstructs :math:`x` from :math:`\hat z = \sum_l e_{c_l}`:

.. math::
    \mathcal{L}_{\text{RQ-VAE}} = \lVert x - D(\hat z) \rVert^2 + \sum_{l=0}^{L-1}
    \lVert \mathrm{sg}[r_l] - e_{c_l} \rVert^2 + \beta \lVert r_l - \mathrm{sg}[e_{c_l}] \rVert^2

with the straight-through estimator :math:`\hat z \leftarrow z + \mathrm{sg}[\hat z - z]`. Codebooks are
initialised by k-means on the first latents (TIGER, Sec. 3.1); codes unused for a while are restarted on random
residuals of the current batch. Items that share a code tuple get an extra disambiguation level
(TIGER: "we append an extra token ... to make them unique"), numbered in item order or, with a priority such as
the training interactions, most popular first (:func:`add_disambiguation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def kmeans(x: Tensor, k: int, *, n_iter: int = 20, generator: torch.Generator | None = None) -> Tensor:
    """Lloyd's k-means with k-means++ seeding; empty clusters keep their centre. Returns centres :math:`(k, d)`.

    When :math:`n < k`, the points are repeated (with tiny noise) so every centre is defined.
    """
    x = x.detach().float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("kmeans: x is empty")
    if n < k:
        reps = (k + n - 1) // n
        x = x.repeat(reps, 1)[:k] + 1e-4 * torch.randn(k, x.shape[1], generator=generator, device=x.device)
        n = k
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
        j = int(torch.multinomial(p, 1, generator=generator))
        centres.append(x[j])
        d2 = torch.minimum(d2, ((x - x[j]) ** 2).sum(1))
    c = torch.stack(centres)
    for _ in range(n_iter):
        assign = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        cnt = torch.bincount(assign, minlength=k).to(x.dtype)
        nonempty = cnt > 0
        c = torch.where(nonempty[:, None], sums / cnt.clamp(min=1)[:, None], c)
    return c


@dataclass
class QuantizeOutput:
    """What :class:`ResidualQuantizer` returns.

    Attributes:
        quantized (Tensor): :math:`\\hat z` with straight-through gradients to the input, :math:`(N, d)`.
        codes (Tensor): code index per level, :math:`(N, L)`, long.
        loss (Tensor): codebook + :math:`\\beta` commitment loss summed over levels (scalar).
        residual_norms (Tensor): mean :math:`\\lVert r_l \\rVert` before each level and after the last,
            :math:`(L + 1,)` (a diagnostic: it decreases with the level).
    """

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    residual_norms: Tensor


class ResidualQuantizer(nn.Module):
    r"""Residual vector quantiser with :obj:`n_levels` codebooks of :obj:`n_codes` entries.

    Args:
        dim (int): latent dimension :math:`d`.
        n_levels (int): number of levels :math:`L`.
        n_codes (int): codes per level :math:`K`.
        beta (float, optional): commitment weight :math:`\beta` (TIGER uses 0.25). (default: :obj:`0.25`)
        restart_after (int, optional): a code unused for this many training forwards is restarted on a random
            residual of the current batch; :obj:`0` disables restarts. (default: :obj:`50`)

    Shapes:
        - input: :math:`(N, d)`; codes: :math:`(N, L)`.
    """

    def __init__(self, dim: int, n_levels: int, n_codes: int, *, beta: float = 0.25, restart_after: int = 50):
        super().__init__()
        if n_levels < 1 or n_codes < 1:
            raise ValueError(f"n_levels and n_codes must be >= 1, got {n_levels}, {n_codes}")
        self.dim, self.n_levels, self.n_codes, self.beta = dim, n_levels, n_codes, beta
        self.restart_after = restart_after
        self.codebooks = nn.Parameter(torch.randn(n_levels, n_codes, dim) * 0.1)
        self.register_buffer("idle", torch.zeros(n_levels, n_codes, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))
        self.n_restarts = 0

    @torch.no_grad()
    def init_kmeans(self, z: Tensor, *, n_iter: int = 20, seed: int = 0) -> None:
        """Initialise each level's codebook by k-means on that level's residuals of :obj:`z`."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        r = z.detach().float().cpu()
        for lvl in range(self.n_levels):
            c = kmeans(r, self.n_codes, n_iter=n_iter, generator=g)
            self.codebooks.data[lvl] = c.to(self.codebooks.device)
            r = r - c[torch.cdist(r, c).argmin(1)]
        self.initialised.fill_(True)

    def encode(self, z: Tensor) -> Tensor:
        """Codes only (no gradients), :math:`(N, L)`."""
        with torch.no_grad():
            return self.forward(z, update=False).codes

    def decode_codes(self, codes: Tensor) -> Tensor:
        """:math:`\\hat z = \\sum_l e_{c_l}` from codes :math:`(N, L)`."""
        return sum(self.codebooks[lvl][codes[:, lvl]] for lvl in range(self.n_levels))

    def forward(self, z: Tensor, *, update: bool = True) -> QuantizeOutput:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"ResidualQuantizer: input must have shape (N, {self.dim}), got {tuple(z.shape)}")
        if self.training and update and not bool(self.initialised):
            self.init_kmeans(z)
        r = z
        quant = torch.zeros_like(z)
        loss = z.new_zeros(())
        codes, norms = [], [z.detach().norm(dim=1).mean()]
        for lvl in range(self.n_levels):
            cb = self.codebooks[lvl]
            c = torch.cdist(r.detach(), cb.detach()).argmin(1)
            e = cb[c]
            # codebook term pulls codes to residuals; commitment term pulls residuals (encoder) to codes
            loss = loss + F.mse_loss(e, r.detach()) + self.beta * F.mse_loss(r, e.detach())
            quant = quant + e
            r = r - e.detach()
            codes.append(c)
            norms.append(r.detach().norm(dim=1).mean())
            if self.training and update and self.restart_after > 0:
                self._restart(lvl, c, (r + e.detach()).detach())
        codes_t = torch.stack(codes, 1)
        quantized = z + (quant - z).detach()  # straight-through estimator
        # the codebook gradient reaches codes through the loss; the decoder sees z + sg[zhat - z]
        return QuantizeOutput(quantized, codes_t, loss, torch.stack(norms))

    @torch.no_grad()
    def _restart(self, lvl: int, codes: Tensor, residual: Tensor) -> None:
        used = torch.bincount(codes, minlength=self.n_codes) > 0
        self.idle[lvl] = torch.where(used, torch.zeros_like(self.idle[lvl]), self.idle[lvl] + 1)
        dead = (self.idle[lvl] >= self.restart_after).nonzero().flatten()
        if dead.numel() == 0:
            return
        pick = torch.randint(residual.shape[0], (dead.numel(),), device=residual.device)
        self.codebooks.data[lvl, dead] = residual[pick] + 1e-3 * torch.randn_like(residual[pick])
        self.idle[lvl, dead] = 0
        self.n_restarts += int(dead.numel())


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


@dataclass
class RQVAEOutput:
    """What :class:`RQVAE` returns: the latent, its quantisation and the losses."""

    latent: Tensor
    quantized: Tensor
    codes: Tensor
    recon: Tensor
    recon_loss: Tensor
    quant_loss: Tensor

    @property
    def loss(self) -> Tensor:
        return self.recon_loss + self.quant_loss


class RQVAE(nn.Module):
    r"""RQ-VAE: MLP encoder, :class:`ResidualQuantizer`, MLP decoder (TIGER, Sec. 3.1).

    Args:
        in_dim (int): content embedding dimension.
        latent_dim (int): latent dimension :math:`d`.
        n_levels (int): quantisation levels :math:`L`.
        n_codes (int): codes per level :math:`K`.
        hidden (list[int], optional): encoder hidden sizes (the decoder mirrors them). (default: :obj:`[128]`)
        beta (float, optional): commitment weight. (default: :obj:`0.25`)
        restart_after (int, optional): dead-code restart patience in training forwards. (default: :obj:`50`)
        quantize (bool, optional): :obj:`False` bypasses the quantiser (an autoencoder; used by the two-stage
            baseline's alignment stage). (default: :obj:`True`)
        normalize (bool, optional): L2-normalise the latent before quantising. The k-means-initialised codebooks
            then stay on the latents' scale while the encoder trains (otherwise the latent norm drifts away from
            the codes and the commitment loss grows); DAS's cosine InfoNCE ignores the scale anyway.
            (default: :obj:`True`)
    """

    def __init__(self, in_dim: int, latent_dim: int, n_levels: int, n_codes: int, *, hidden: list[int] | None = None,
                 beta: float = 0.25, restart_after: int = 50, quantize: bool = True, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        hidden = [128] if hidden is None else list(hidden)
        self.encoder = mlp([in_dim, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *hidden[::-1], in_dim])
        self.quantizer = ResidualQuantizer(latent_dim, n_levels, n_codes, beta=beta, restart_after=restart_after)
        self.quantize = quantize

    @torch.no_grad()
    def init_codebooks(self, x: Tensor, *, seed: int = 0) -> None:
        """k-means initialisation of the codebooks on the encoded :obj:`x`."""
        self.quantizer.init_kmeans(self.latent(x), seed=seed)

    def latent(self, x: Tensor) -> Tensor:
        """Encoder output, L2-normalised when :obj:`normalize`."""
        z = self.encoder(x)
        return F.normalize(z, dim=-1) if self.normalize else z

    def forward(self, x: Tensor) -> RQVAEOutput:
        z = self.latent(x)
        if self.quantize:
            q = self.quantizer(z)
            zq, codes, qloss = q.quantized, q.codes, q.loss
        else:
            zq, codes, qloss = z, z.new_zeros((z.shape[0], 0), dtype=torch.long), z.new_zeros(())
        recon = self.decoder(zq)
        return RQVAEOutput(z, zq, codes, recon, F.mse_loss(recon, x), qloss)

    @torch.no_grad()
    def semantic_codes(self, x: Tensor, *, batch_size: int = 4096) -> Tensor:
        """Codes of every row of :obj:`x` (eval mode, no restarts), :math:`(N, L)`."""
        out = [self.quantizer.encode(self.latent(x[s:s + batch_size])) for s in range(0, x.shape[0], batch_size)]
        return torch.cat(out)


# --------------------------------------------------------------------------------------- ID statistics

def add_disambiguation(codes: Tensor | np.ndarray, priority: Tensor | np.ndarray | None = None) -> np.ndarray:
    """Append a level that numbers the items sharing a code tuple ``0, 1, 2, ...``, so every item gets a unique ID
    (TIGER, Sec. 3.1). Within a tuple the items are numbered in item order, or, with :obj:`priority` (one score per
    item, e.g. its training interactions), highest priority first, ties in item order: the last token then means
    the same thing in every tuple (``0`` = the tuple's most popular item), which a retriever can learn once.
    Shapes: :math:`(N, L) \\to (N, L + 1)`."""
    c = np.asarray(codes.cpu() if isinstance(codes, Tensor) else codes, dtype=np.int64)
    order = np.arange(len(c))
    if priority is not None:
        p = np.asarray(priority.cpu() if isinstance(priority, Tensor) else priority, dtype=np.float64)
        if p.shape != (len(c),):
            raise ValueError(f"priority must have one value per item, shape ({len(c)},), got {p.shape}")
        if not np.isfinite(p).all():
            raise ValueError("priority must be finite")
        order = np.argsort(-p, kind="stable")
    seen: dict[tuple[int, ...], int] = {}
    extra = np.zeros(len(c), dtype=np.int64)
    for i in order:
        row = tuple(c[i])
        extra[i] = seen.get(row, 0)
        seen[row] = extra[i] + 1
    return np.concatenate([c, extra[:, None]], axis=1)


def collision_rate(codes: Tensor | np.ndarray) -> float:
    """Share of items whose code tuple is also some other item's: :math:`1 - |\\text{unique tuples}| / N` counts
    every item but the first of each shared tuple."""
    c = np.asarray(codes.cpu() if isinstance(codes, Tensor) else codes)
    if len(c) == 0:
        raise ValueError("collision_rate: no codes")
    return 1.0 - len(np.unique(c, axis=0)) / len(c)


def utilisation(codes: Tensor | np.ndarray, n_codes: int) -> float:
    """Mean over levels of the share of the :obj:`n_codes` codes that at least one item uses."""
    c = np.asarray(codes.cpu() if isinstance(codes, Tensor) else codes)
    if c.ndim != 2:
        raise ValueError(f"codes must have shape (N, L), got {c.shape}")
    return float(np.mean([len(np.unique(c[:, lvl])) / n_codes for lvl in range(c.shape[1])]))
