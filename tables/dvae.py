"""The discrete visual tokenizer: a DALL-E style dVAE (three stride-2 convolutions to a grid of
codebook logits, Gumbel-softmax relaxation, a transposed-convolution decoder). Its grid matches
the encoder's patch grid (it sees the image at half resolution, as UniTable's 224 vs 448)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DVAE(nn.Module):
    def __init__(self, codebook: int, hidden: int = 64, patch: int = 16):
        super().__init__()
        self.codebook = codebook
        self.pool = patch // 8  # three stride-2 convolutions: one code per patch
        self.ink_weight = 10.0
        self.enc = nn.Sequential(
            nn.Conv2d(1, hidden, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(hidden, codebook, 1))
        self.embed = nn.Parameter(torch.randn(codebook, hidden))
        self.dec = nn.Sequential(
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, 1, 4, 2, 1))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[B, S, S] uint8 -> [B, 1, S/pool, S/pool] ink in [0, 1] (pool 2 for 16-pixel patches)."""
        x = 1.0 - images.float()[:, None] / 255.0
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x

    def loss(self, images: torch.Tensor, tau: float, kl_weight: float, generator: torch.Generator) -> torch.Tensor:
        x = self.prepare(images)
        logits = self.enc(x)
        # drawn on the generator's device, then moved: a CPU generator keeps a GPU run's noise
        # equal to a CPU run's
        u = torch.rand(logits.shape, generator=generator, device=generator.device).to(logits.device)
        u = u.clamp(1e-9, 1 - 1e-9)
        soft = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=1)  # Gumbel-softmax
        z = torch.einsum("bkhw,kd->bdhw", soft, self.embed)
        recon = self.dec(z)
        # ink is a few percent of a table's pixels: without weighting it, the decoder's best
        # guess is a blank page whatever the codes say, and every patch collapses onto one code
        weight = 1.0 + self.ink_weight * x
        rec = F.binary_cross_entropy_with_logits(recon, x, weight=weight)
        q = torch.softmax(logits, dim=1)
        kl = (q * (torch.log(q + 1e-10) + torch.log(torch.tensor(float(self.codebook))))).sum(1).mean()
        return rec + kl_weight * kl

    @torch.no_grad()
    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """[B, S, S] -> [B, (S/patch)^2] code ids, row-major like the patches."""
        return self.enc(self.prepare(images)).argmax(1).flatten(1)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        codes = self.enc(self.prepare(images)).argmax(1)
        z = self.embed[codes].permute(0, 3, 1, 2)
        return torch.sigmoid(self.dec(z))[:, 0]


__all__ = ["DVAE"]
