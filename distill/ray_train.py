"""GOLD's student on Ray Train: `TorchTrainer` workers, data-parallel over the pool (DDP, or a
DeepSpeed ZeRO engine with `ray_train.zero_stage`), running Student.train's own loop and loss.

Every worker builds the same seeded student and takes its rank::world share of each epoch's
seeded order (distill.student.epoch_order), so the result depends on the seeds and the worker
count only; one worker gives the in-process student. Rank 0 reports the trainable tensors as
the checkpoint and the driver loads them into a Student. The plumbing is core.train's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from core.train import deepspeed_engine, fit_torch_trainer, report_from_rank0
from distill.config import StudentConfig
from distill.student import Student


def worker_loop(config: dict) -> None:
    """The function every Ray Train worker runs (picklable: it imports what it needs)."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    cfg: StudentConfig = config["student"]
    student = Student.build(cfg, config["label_names"], seed=config["build_seed"])
    student.model.to(device)
    if cfg.head_init == "prototype":  # before any wrapper copies the weights; every rank computes the same head
        student.init_head(config["texts"], config["labels"])
    if config["zero_stage"] is not None:
        # no clipping: the engine takes Student.train's plain AdamW step, as in-process and DDP do
        wrapped, step_fn = deepspeed_engine(student.model, student.optimizer(), config["zero_stage"], cfg.batch_size,
                                            device=device, gradient_clipping=0.0)
    else:
        # DDP from 2 workers on (Ray leaves a single worker's model unwrapped)
        wrapped, step_fn = ray.train.torch.prepare_model(student.model), None
    out = student.train(config["texts"], config["labels"], config["epochs"], config["train_seed"], rank=rank,
                        world=world, model=wrapped, step_fn=step_fn)
    # the parameters are the wrapped module's own, so rank 0's student holds the trained weights
    metrics = {"train_loss": out["train_loss"], "steps": student.steps}
    report_from_rank0(metrics, rank, lambda d: torch.save(student.trainable_state(), d / "student.pt"))


def train_student_on_ray(cfg: StudentConfig, label_names: Sequence[str], texts: Sequence[str],
                         labels: Sequence[int] | np.ndarray, epochs: int, *, build_seed: int, train_seed: int,
                         storage: str | Path | None = None, name: str = "student") -> Student:
    """Student.build(cfg, label_names, build_seed).train(texts, labels, epochs, train_seed) on
    `cfg.ray_train` workers. `storage` holds Ray Train's run (on a multi-node cluster, a path
    every node sees); None: a temporary directory, gone once the weights are loaded."""
    if cfg.ray_train is None:
        raise ValueError("student.ray_train is null: train the student in-process")
    loop_config = {"student": cfg, "label_names": list(label_names), "texts": list(texts),
                   "labels": [int(y) for y in np.asarray(labels)], "epochs": epochs, "build_seed": build_seed,
                   "train_seed": train_seed, "zero_stage": cfg.ray_train.zero_stage}
    with tempfile.TemporaryDirectory(prefix="tailor-student-") as tmp:
        result = fit_torch_trainer(worker_loop, loop_config, cfg.ray_train, tmp if storage is None else storage, name)
        with result.checkpoint.as_directory() as d:
            state = torch.load(Path(d) / "student.pt")
    student = Student.build(cfg, label_names, seed=build_seed)
    student.load_trainable_state(state)
    student.steps = int(result.metrics["steps"])
    return student


__all__ = ["train_student_on_ray", "worker_loop"]
