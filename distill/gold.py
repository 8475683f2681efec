"""One GOLD iteration as a plain function: generate -> clean -> drop energy noise -> train the
student -> probe for out-of-distribution samples -> pick feedback for the next prompts.

The state between iterations is data (GoldState: the pool, the feedback, the dedup keys), so the
Ray Tune layer can checkpoint it next to the student's weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.llm import Backend, SamplingParams
from core.seeding import derive_seed, generator
from distill.config import GenerationConfig, GoldConfig, StudentConfig
from distill.energy import pick_feedback
from distill.filters import Cleaned, CleanCounts, clean_generations, dedup_key, drop_noise, with_energies
from distill.prompts import ANSWER_PREFIX, generation_prompt
from distill.student import Student
from distill.task import Sample, SampleKind, TaskSpec


class EmptyGenerationError(RuntimeError):
    """A generation round left no usable sample: the teacher or the prompt is broken."""


@dataclass
class GoldState:
    iteration: int = 0
    pool: list[Sample] = field(default_factory=list)  # every sample kept so far: what the student trains on
    feedback: list[Sample] = field(default_factory=list)  # shown in the next feedback iteration's prompts
    seen: set[str] = field(default_factory=set)  # dedup keys of the seeds and of every parsed generation
    student_trained: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "pool": [s.to_dict() for s in self.pool],
                "feedback": [s.to_dict() for s in self.feedback], "seen": sorted(self.seen),
                "student_trained": self.student_trained}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GoldState:
        return cls(int(d["iteration"]), [Sample.from_dict(s) for s in d["pool"]],
                   [Sample.from_dict(s) for s in d["feedback"]], set(d["seen"]), bool(d["student_trained"]))


def initial_state(task: TaskSpec) -> GoldState:
    # a copy of a seed example is no new data
    return GoldState(seen={dedup_key(e.text) for e in task.examples})


def sampling_params(g: GenerationConfig) -> SamplingParams:
    return SamplingParams(g.max_new_tokens, g.temperature, g.top_k, g.top_p)


def generate_samples(backend: Backend, task: TaskSpec, labels: Sequence[int], feedback: Sequence[Sample], *,
                     novel: bool, kind: SampleKind, iteration: int, cfg: GoldConfig, seen: set[str]) -> Cleaned:
    """One prompt per requested label, sampled from seed (run seed, iteration, kind, j), then cleaned."""
    g = cfg.generation
    prompts = [generation_prompt(task, y, feedback, novel=novel, prefill=g.prefill) for y in labels]
    seeds = [derive_seed(cfg.seed, "generate", iteration, kind, j) for j in range(len(labels))]
    raw = backend.generate(prompts, sampling_params(g), seeds)
    if g.prefill:  # the reply continues "Text:": put the marker back so the parser finds the sample's start
        raw = [ANSWER_PREFIX + r if isinstance(r, str) else r for r in raw]
    return clean_generations(raw, labels, kind=kind, iteration=iteration, min_chars=g.min_chars,
                             max_chars=g.max_chars, seen=seen, nouns=[task.sample_noun], label_names=task.label_names,
                             max_overlap=g.max_overlap)


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else math.nan


def gold_iteration(state: GoldState, task: TaskSpec, backend: Backend, student: Student, cfg: GoldConfig,
                   dev: tuple[Sequence[str], Sequence[int]] | None = None) -> tuple[GoldState, dict[str, float]]:
    """Run iteration state.iteration; returns the next state and this iteration's metrics.

    1. Generate samples_per_label samples per label, with the seed examples and, on feedback
       iterations (i % feedback.every == 0), the current feedback as extra examples.
    2. Parse, drop invalid lengths and duplicates. None left is an error.
    3. Once the student has been trained, drop as noise the new samples in the top filter.noise
       of energy (an untrained student's energy says nothing yet), unless filter.drop is false.
    4. Train the student (same weights, not re-initialised) on the whole pool.
    5. Probes (unless the strategy is none): the same prompts plus the novelty instruction. The
       trained student, which has not seen them, scores them; the feedback is picked by energy
       (GOLD: the rank band, which ends at the same noise cut), the noise is dropped, and the
       rest joins the pool.
    The student is trained in place.
    """
    i = state.iteration
    task_labels = range(task.num_labels)
    feedback_in_prompt = state.feedback if i % cfg.feedback.every == 0 else []
    temp, noise = cfg.feedback.temperature, cfg.filter.noise

    labels = [y for y in task_labels for _ in range(cfg.samples_per_label())]
    gen = generate_samples(backend, task, labels, feedback_in_prompt, novel=False, kind="generated",
                           iteration=i, cfg=cfg, seen=state.seen)
    if not gen.samples:
        c = gen.counts
        raise EmptyGenerationError(
            f"iteration {i}: none of {c.raw} generations was usable ({c.malformed} malformed, {c.bad_length} outside "
            f"{cfg.generation.min_chars} < length < {cfg.generation.max_chars} characters, {c.duplicate} duplicates); "
            "check the teacher model, generation.max_new_tokens and the length bounds")
    seen = state.seen | gen.keys
    if state.student_trained:
        kept, dropped = drop_noise(gen.samples, student.energies([s.text for s in gen.samples], temp),
                                   noise if cfg.filter.drop else 0.0)
    else:
        kept, dropped = list(gen.samples), []
    pool = state.pool + kept
    train = student.train([s.text for s in pool], [s.label for s in pool], cfg.student.epochs_per_iteration,
                          seed=derive_seed(cfg.seed, "train", i))

    new_feedback: list[Sample] = []
    probe_energies: list[float] = []
    pcounts = CleanCounts()
    probes_dropped = 0
    n_probes = cfg.probes_per_label()
    if n_probes:
        plabels = [y for y in task_labels for _ in range(n_probes)]
        probes = generate_samples(backend, task, plabels, feedback_in_prompt, novel=True, kind="probe",
                                  iteration=i, cfg=cfg, seen=seen)
        seen = seen | probes.keys
        pcounts = probes.counts
        if probes.samples:
            energies = student.energies([s.text for s in probes.samples], temp)
            scored = with_energies(probes.samples, energies)
            pick = pick_feedback(energies, cfg.feedback.strategy, cfg.feedback.band_low, noise,
                                 generator("cpu", cfg.seed, "feedback", i))
            new_feedback = [scored[j] for j in pick.tolist()]
            pkept, pdropped = drop_noise(probes.samples, energies, noise if cfg.filter.drop else 0.0)
            pool = pool + pkept
            probes_dropped = len(pdropped)
            probe_energies = energies.tolist()
        else:
            new_feedback = list(state.feedback)  # a probe round with nothing usable keeps the old feedback

    c = gen.counts.add(pcounts)
    metrics: dict[str, float] = {
        "iteration": float(i),
        "feedback_in_prompt": float(len(feedback_in_prompt)),
        "generated": float(c.raw),
        "malformed": float(c.malformed),
        "bad_length": float(c.bad_length),
        "duplicate": float(c.duplicate),
        "kept": float(len(pool) - len(state.pool)),
        "filtered": float(len(dropped) + probes_dropped),
        "probes": float(pcounts.kept),
        "pool_size": float(len(pool)),
        "feedback_size": float(len(new_feedback)),
        "feedback_mean_energy": _mean([s.energy for s in new_feedback if s.energy is not None]),
        "probe_mean_energy": _mean(probe_energies),
        "train_loss": train["train_loss"],
    }
    if dev is not None:
        ev = student.evaluate(dev[0], dev[1])
        metrics["dev_accuracy"], metrics["dev_loss"] = ev["accuracy"], ev["loss"]
    return GoldState(i + 1, pool, new_feedback, seen, True), metrics


def train_student(cfg: StudentConfig, label_names: Sequence[str], texts: Sequence[str], labels, epochs: int, *,
                  build_seed: int, train_seed: int, storage: str | Path | None = None,
                  name: str = "student") -> Student:
    """A fresh student trained for `epochs` on (texts, labels): in-process, or on Ray Train
    workers with cfg.ray_train set (`storage`, `name`: where Ray Train keeps that run)."""
    if cfg.ray_train is not None:
        from distill.ray_train import train_student_on_ray

        return train_student_on_ray(cfg, label_names, texts, labels, epochs, build_seed=build_seed,
                                    train_seed=train_seed, storage=storage, name=name)
    student = Student.build(cfg, label_names, seed=build_seed)
    student.train(texts, labels, epochs, seed=train_seed)
    return student


def train_final_student(pool: Sequence[Sample], task: TaskSpec, cfg: GoldConfig, *, storage: str | Path | None = None,
                        name: str = "student") -> Student:
    """The final distillation: a fresh student trained on the whole pool for final_epochs, with
    student.final_loss (the paper: SCE)."""
    if not pool:
        raise EmptyGenerationError("the pool is empty: nothing to distil")
    return train_student(cfg.final_student(), task.label_names, [s.text for s in pool], [s.label for s in pool],
                         cfg.student.final_epochs, build_seed=derive_seed(cfg.seed, "final"),
                         train_seed=derive_seed(cfg.seed, "final-train"), storage=storage, name=name)
