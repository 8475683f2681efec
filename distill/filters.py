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


def shingles(key: str, n: int = 3) -> set[tuple[str, ...]]:
    """The word n-grams of a dedup key (a text with fewer than n words has none)."""
    words = key.split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def overlap(new: set, old: set) -> float:
    """|new & old| / |new|: the share of a new text's word trigrams found in an old one, so a
    truncated or lightly edited copy scores as high as a full one, while a new text that merely
    quotes a title from the old one scores low (0.0 when either has none)."""
    if not new or not old:
        return 0.0
    return len(new & old) / len(new)


def echoes_prompt(text: str, nouns: Sequence[str] = ()) -> bool:
    """True when the 'sample' talks about the request instead of being a sample: it names the
    task's sample noun ("a new movie review snippet ...") or the label, or holds a format marker.
    A small teacher writes these often ("I wrote a new movie review snippet. Please paste it here.")."""
    folded = " ".join(text.casefold().split())
    if any(" ".join(n.casefold().split()) in folded for n in nouns if n.strip()):
        return True
    return re.search(r"\blabel(?:s|ed)?\b|\btext\s*:", folded) is not None


def valid_length(text: str, min_chars: int, max_chars: int) -> bool:
    """min_chars < len < max_chars, the paper's 10 < len < 400 by default (strict on both ends)."""
    return min_chars < len(text) < max_chars


@dataclass
class CleanCounts:
    """What happened to a batch of raw generations (every output lands in exactly one bucket)."""

    raw: int = 0
    malformed: int = 0  # no sample could be parsed out of the output, or it only echoes the request
    bad_length: int = 0
    duplicate: int = 0  # (a near copy) of the seeds, of an earlier sample, or of one earlier in this batch
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
                      label_names: Sequence[str] = (), max_overlap: float = 1.0) -> Cleaned:
    """Parse each raw output (asked for label labels[i]), keep those of valid length that are new.

    New means no seen text (the seed examples and every earlier generation, by dedup key) and no
    sample kept earlier in the batch is the same text or, with max_overlap < 1, shares more than
    that fraction of its word trigrams with it (`overlap`). A small teacher copies its prompt's
    examples, whole or in part and often under the other label, which exact matching misses.
    A malformed output is counted and skipped, never raised: one bad generation must not end a run.
    """
    if len(raw) != len(labels):
        raise ValueError(f"{len(raw)} outputs for {len(labels)} requested labels")
    seen = set(seen)
    near = [sh for sh in map(shingles, seen) if sh] if max_overlap < 1.0 else []
    counts = CleanCounts(raw=len(raw))
    out: list[Sample] = []
    keys: set[str] = set()
    for text, label in zip(raw, labels):
        parsed = parse_sample(text, nouns=nouns, labels=label_names) if isinstance(text, str) else None
        if parsed is None or echoes_prompt(parsed, nouns):
            counts.malformed += 1
            continue
        if not valid_length(parsed, min_chars, max_chars):
            counts.bad_length += 1
            continue
        key = dedup_key(parsed)
        sh = shingles(key) if max_overlap < 1.0 else set()
        if key in seen or key in keys or any(overlap(sh, other) > max_overlap for other in near):
            counts.duplicate += 1
            continue
        keys.add(key)
        if sh:
            near.append(sh)
        out.append(Sample(parsed, int(label), kind=kind, iteration=iteration))
    counts.kept = len(out)
    return Cleaned(out, counts, keys)


def with_energies(samples: Sequence[Sample], energies: torch.Tensor) -> list[Sample]:
    if len(samples) != energies.numel():
        raise ValueError(f"{energies.numel()} energies for {len(samples)} samples")
    return [Sample(s.text, s.label, s.kind, s.iteration, float(e)) for s, e in zip(samples, energies.tolist())]


def drop_noise(samples: Sequence[Sample], energies: torch.Tensor, noise: float) -> tuple[list[Sample], list[Sample]]:
    """(kept, dropped): the highest-energy ranks from the noise cut up (energy.noise_cut, the top
    `noise` fraction) are treated as noise. Both lists carry each sample's energy."""
    scored = with_energies(samples, energies)
    keep = noise_keep_mask(energies, noise).tolist()
    return [s for s, k in zip(scored, keep) if k], [s for s, k in zip(scored, keep) if not k]
