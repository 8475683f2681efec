"""Cleaning generated samples: parse, drop invalid lengths and duplicates, and drop energy noise."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from distill.energy import noise_keep_mask
from distill.prompts import parse_sample
from distill.task import Sample, SampleKind


def dedup_key(text: str) -> str:
    """What two samples share when they are the same text up to case, punctuation and spacing."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def valid_length(text: str, min_chars: int, max_chars: int) -> bool:
    """min_chars < len < max_chars, the paper's 10 < len < 400 by default (strict on both ends)."""
    return min_chars < len(text) < max_chars


@dataclass
class CleanCounts:
    """What happened to a batch of raw generations (every output lands in exactly one bucket)."""

    raw: int = 0
    malformed: int = 0  # no sample could be parsed out of the output
    bad_length: int = 0
    duplicate: int = 0  # of the seeds, of an earlier sample, or of one earlier in this batch
    kept: int = 0

    def add(self, other: CleanCounts) -> CleanCounts:
        return CleanCounts(*(getattr(self, k) + getattr(other, k) for k in ("raw", "malformed", "bad_length",
                                                                              "duplicate", "kept")))


@dataclass
class Cleaned:
    samples: list[Sample]
    counts: CleanCounts
    keys: set[str] = field(default_factory=set)  # dedup keys of the kept samples


def clean_generations(raw: Sequence[str], labels: Sequence[int], *, kind: SampleKind, iteration: int,
                      min_chars: int, max_chars: int, seen: Iterable[str] = (), nouns: Sequence[str] = (),
                      label_names: Sequence[str] = ()) -> Cleaned:
    """Parse each raw output (asked for label labels[i]), keep those of valid length that are new.

    A malformed output is counted and skipped, never raised: one bad generation must not end a run.
    """
    if len(raw) != len(labels):
        raise ValueError(f"{len(raw)} outputs for {len(labels)} requested labels")
    seen = set(seen)
    counts = CleanCounts(raw=len(raw))
    out: list[Sample] = []
    keys: set[str] = set()
    for text, label in zip(raw, labels):
        parsed = parse_sample(text, nouns=nouns, labels=label_names) if isinstance(text, str) else None
        if parsed is None:
            counts.malformed += 1
            continue
        if not valid_length(parsed, min_chars, max_chars):
            counts.bad_length += 1
            continue
        key = dedup_key(parsed)
        if key in seen or key in keys:
            counts.duplicate += 1
            continue
        keys.add(key)
        out.append(Sample(parsed, int(label), kind=kind, iteration=iteration))
    counts.kept = len(out)
    return Cleaned(out, counts, keys)


def with_energies(samples: Sequence[Sample], energies: torch.Tensor) -> list[Sample]:
    if len(samples) != energies.numel():
        raise ValueError(f"{energies.numel()} energies for {len(samples)} samples")
    return [Sample(s.text, s.label, s.kind, s.iteration, float(e)) for s, e in zip(samples, energies.tolist())]


def drop_noise(samples: Sequence[Sample], energies: torch.Tensor, percentile: float) -> tuple[list[Sample], list[Sample]]:
    """(kept, dropped): the highest-energy (1 - percentile) of the batch is treated as noise.
    Both lists carry each sample's energy."""
    scored = with_energies(samples, energies)
    keep = noise_keep_mask(energies, percentile).tolist()
    return [s for s, k in zip(scored, keep) if k], [s for s, k in zip(scored, keep) if not k]
