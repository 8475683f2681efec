"""The student's energy score E(x) = -T * logsumexp(f(x)/T) and GOLD's choice of feedback by energy.

Low energy: the student is confident (the sample is in-distribution for it); high energy: out
of distribution, or noise. Selections rank samples by energy, ascending, ties by index.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from core.config import require

FeedbackPick = Literal["band", "highest", "random", "none"]


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """E = -T * logsumexp(logits / T) over the last dim (the class or vocabulary dim)."""
    require(temperature > 0, "feedback.temperature", f"must be > 0, got {temperature}")
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=-1)


def sequence_energy(token_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The paper's per-sample energy for a text-to-text student: the mean over target tokens of the
    per-token energy, shape (batch, steps, vocab) -> (batch,).

    The mean runs over real tokens only: the released code averaged over padding too, which made
    the score depend on how long the label happens to be.
    """
    per_token = energy_score(token_logits, temperature)
    m = mask.to(per_token.dtype)
    return (per_token * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def floor_fraction(fraction: float, n: int) -> int:
    """floor(fraction * n), robust to float error ((1 - 0.8) * 10 must give 2, not 1)."""
    return math.floor(fraction * n + 1e-9)


def energy_ranks(energies: torch.Tensor) -> torch.Tensor:
    """Indices in ascending energy, ties by index; NaN (a broken sample) counts as +inf energy."""
    e = torch.nan_to_num(energies.detach().double().cpu(), nan=math.inf)
    return torch.sort(e, stable=True).indices


def noise_cut(n: int, noise: float) -> int:
    """The energy rank where noise begins in a batch of n: ranks [cut, n) are noise.

    cut = floor((1 - noise) * n), the paper's band edge (floor(0.8 * 8) = 6: ranks 6 and 7 of 8 are
    noise), but at least 1, so a batch is never emptied; noise 0 marks nothing.
    """
    require(0.0 <= noise < 1.0, "filter.noise", f"must be in [0, 1), got {noise}")
    return n if noise == 0 else min(n, max(1, floor_fraction(1.0 - noise, n)))


def band_indices(energies: torch.Tensor, low: float, noise: float) -> torch.Tensor:
    """Indices of the samples whose energy rank is in [floor(low*n), noise_cut(n, noise)).

    GOLD's feedback: with low 0.5, noise 0.2 and 8 probes, ranks 4 and 5. The lower half counts
    as already learned, the ranks from the noise cut up as noise.
    """
    n = energies.numel()
    cut = noise_cut(n, noise)
    require(0.0 <= low < 1.0 - noise, "feedback.band_low", f"need 0 <= band_low < 1 - filter.noise, got {low}, {noise}")
    return energy_ranks(energies)[floor_fraction(low, n):cut]


def pick_feedback(energies: torch.Tensor, strategy: FeedbackPick, low: float, noise: float,
                  g: torch.Generator | None = None) -> torch.Tensor:
    """Which probes become feedback, as indices into `energies`.

    `band` is GOLD. `highest` (the same count of top-energy probes) and `random` (the same count
    uniformly, from `g`) are the controls of the method spec; `none` is ZeroGen.
    """
    if strategy == "none":
        return torch.empty(0, dtype=torch.long)
    band = band_indices(energies, low, noise)
    count = band.numel()
    if strategy == "band":
        return band
    if strategy == "highest":
        return energy_ranks(energies)[energies.numel() - count:]
    if strategy == "random":
        require(g is not None, "feedback.strategy", "'random' needs a generator")
        return torch.randperm(energies.numel(), generator=g)[:count]
    raise ValueError(f"unknown feedback strategy {strategy!r}")


def noise_keep_mask(energies: torch.Tensor, noise: float) -> torch.Tensor:
    """True for the samples kept: energy ranks [noise_cut(n, noise), n) are noise, the same ranks the
    feedback band stops short of, so one setting (filter.noise) governs both."""
    n = energies.numel()
    cut = noise_cut(n, noise)
    keep = torch.ones(n, dtype=torch.bool)
    if cut < n:
        keep[energy_ranks(energies)[cut:]] = False
    return keep
