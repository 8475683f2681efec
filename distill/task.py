"""The task GOLD distils: label names, a description, real seed examples, and the Sample record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from core.config import ConfigError, require
from core.data import TextDataset
from core.seeding import derive_seed
from distill.config import TaskConfig

SampleKind = Literal["seed", "generated", "probe"]


@dataclass(frozen=True)
class Sample:
    """One labelled text. `label` indexes TaskSpec.label_names; generated ones carry the label
    the teacher was asked to write (the LLM is told the label, it does not label)."""

    text: str
    label: int
    kind: SampleKind = "generated"
    iteration: int = -1
    energy: float | None = None  # the student's energy when it was scored, if it was

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        return cls(**d)


@dataclass(frozen=True)
class TaskSpec:
    label_names: tuple[str, ...]
    description: str
    sample_noun: str
    examples: tuple[Sample, ...]  # the real seed examples shown in every prompt

    def __post_init__(self) -> None:
        require(len(self.label_names) >= 2, "task.label_names", f"needs at least 2 labels, got {list(self.label_names)}")
        for ex in self.examples:
            self.check_label(ex.label)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def check_label(self, label: int) -> None:
        if not 0 <= label < self.num_labels:
            raise ConfigError("task.label_names", f"label {label} is not in the task's labels "
                                                  f"{list(self.label_names)} (indices 0..{self.num_labels - 1})")

    def label_index(self, name: str) -> int:
        """The index of a label name, ignoring case; a name the task lacks is an error naming the labels."""
        folded = [n.casefold() for n in self.label_names]
        if name.strip().casefold() not in folded:
            raise ConfigError("task.label_names", f"{name!r} is not one of the task's labels: {list(self.label_names)}")
        return folded.index(name.strip().casefold())


def pick_seed_examples(texts: Sequence[str], labels: Sequence[int] | np.ndarray, num_labels: int, k: int,
                       seed: int) -> list[Sample]:
    """k real examples, labels taken in turn (0, 1, ..., 0, ...) so every label shows up when
    k >= num_labels; which example of a label is random from `seed`."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(derive_seed(seed, "seed-examples"))
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in range(num_labels)]
    out: list[Sample] = []
    turn = 0
    while len(out) < k and any(pools):
        c = turn % num_labels
        if pools[c]:
            i = pools[c].pop(0)
            out.append(Sample(texts[i], c, kind="seed"))
        turn += 1
    return out


def build_task(description: str, sample_noun: str, dataset_label_names: Sequence[str],
               train_texts: Sequence[str], train_labels: Sequence[int] | np.ndarray, num_seed_examples: int,
               seed: int, label_names: Sequence[str] | None = None) -> TaskSpec:
    """The task from the real training split. `label_names` renames the dataset's labels for the
    teacher (in the dataset's order), so their count must match."""
    names = list(dataset_label_names) if label_names is None else list(label_names)
    if len(names) != len(dataset_label_names):
        raise ConfigError("task.label_names", f"gives {len(names)} names {names} but the dataset has "
                                              f"{len(dataset_label_names)} labels {list(dataset_label_names)}; "
                                              "give one name per dataset label, in its order")
    examples = pick_seed_examples(train_texts, train_labels, len(names), num_seed_examples, seed)
    return TaskSpec(tuple(names), description, sample_noun, tuple(examples))


def task_from_data(cfg: TaskConfig, train: TextDataset, seed: int) -> TaskSpec:
    """The task for a config and a real training split (core.data.load_splits' train)."""
    return build_task(cfg.description, cfg.sample_noun, train.label_names, train.texts, train.labels,
                      cfg.seed_examples, seed, label_names=cfg.label_names)
