"""Data-parallel training on Ray Train, shared by the methods that use it (compression, distill).

`TrainConfig` says how many `TorchTrainer` workers and with what (CPU with gloo, or a GPU each
with NCCL; DDP or a DeepSpeed ZeRO engine). The method supplies the worker loop; this module
wraps its model for DeepSpeed, runs the trainer and lets rank 0 write the checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.config import require

StepFn = Callable[[torch.Tensor], None]  # backward + optimizer step for one loss


@dataclass
class TrainConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    # null: DDP (torch). 0, 1 or 2: a DeepSpeed engine with that ZeRO stage (gloo on CPU). Not 3:
    # it partitions the parameters, and both users read every trained tensor on one worker
    # (Basel prunes from all the coefficients on every worker; GOLD's rank 0 saves the student).
    zero_stage: int | None = None

    def validate(self) -> None:
        require(self.num_workers >= 1, "num_workers", f"must be >= 1, got {self.num_workers}")
        require(self.cpus_per_worker > 0, "cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")
        require(self.zero_stage in (None, 0, 1, 2), "zero_stage",
                f"{self.zero_stage!r} is not allowed; allowed values: null, 0, 1, 2")


def optimizer_step_fn(optimizer: torch.optim.Optimizer, scheduler: Any = None) -> StepFn:
    """The plain-torch step (also right under DDP, whose backward all-reduces the gradients)."""

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    return step


def deepspeed_engine(model: torch.nn.Module, optimizer: torch.optim.Optimizer, stage: int, micro_batch_size: int,
                     scheduler: Any = None, device: torch.device | None = None,
                     gradient_clipping: float | None = None) -> tuple[Any, StepFn]:
    """Wrap model and optimizer (and scheduler) in a DeepSpeed ZeRO-`stage` engine; returns (engine,
    step_fn). The engine is the model to call forward on. Needs torch.distributed up (Ray Train's
    process group: the engine joins it rather than starting its own).

    gradient_clipping: None leaves DeepSpeed's default, which clips the gradient norm at 1.0
    (DDP does not); 0.0 turns clipping off, so the engine steps exactly as the plain optimizer.
    """
    if device is not None and device.type == "cpu":
        # before deepspeed is imported: it picks its accelerator once, and would look for CUDA
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    config = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,  # the method's own torch optimizer, not DeepSpeed's
    }
    if gradient_clipping is not None:
        config["gradient_clipping"] = gradient_clipping
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config,
                                           dist_init_required=False)

    def step(loss: torch.Tensor) -> None:
        engine.backward(loss)
        engine.step()

    return engine, step


def report_from_rank0(metrics: dict[str, Any], rank: int, write: Callable[[Path], None]) -> None:
    """Every worker reports its metrics (Ray Train waits for all of them); rank 0 alone writes the
    checkpoint's files into a directory (`write(dir)`) that becomes the run's checkpoint."""
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def fit_torch_trainer(loop: Callable[[dict], None], loop_config: dict[str, Any], train: TrainConfig,
                      storage: str | Path, name: str):
    """Run `loop(loop_config)` on `train.num_workers` Ray Train workers (gloo on CPU, NCCL with a
    GPU each) and return the trainer's Result; its checkpoint is what rank 0 reported last."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": train.cpus_per_worker}
    if train.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=train.num_workers, use_gpu=train.use_gpu,
                                     resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if train.use_gpu else "gloo"),
        run_config=RunConfig(storage_path=str(Path(storage).resolve()), name=name),
    )
    return trainer.fit()


__all__ = ["StepFn", "TrainConfig", "deepspeed_engine", "fit_torch_trainer", "optimizer_step_fn",
           "report_from_rank0"]
