"""Basel's relearning on Ray Train: `TorchTrainer` workers (DDP, or a DeepSpeed ZeRO engine).

Each worker loads the model itself, builds the same basis layers (the SVD is deterministic),
trains on its share of the blocks, and rank 0 reports the trained basis state as the run's
checkpoint. CPU workers use gloo; with `use_gpu` every worker gets a GPU and NCCL, unchanged.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.config import require
from core.models import ModelConfig


@dataclass
class TrainConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    # null: DDP (torch). 0, 1 or 2: a DeepSpeed engine with that ZeRO stage (gloo on CPU). Not 3:
    # it partitions the parameters, and pruning reads every coefficient on every worker.
    zero_stage: int | None = None

    def validate(self) -> None:
        require(self.num_workers >= 1, "num_workers", f"must be >= 1, got {self.num_workers}")
        require(self.cpus_per_worker > 0, "cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")
        require(self.zero_stage in (None, 0, 1, 2), "zero_stage",
                f"{self.zero_stage!r} is not allowed; allowed values: null, 0, 1, 2")


def _deepspeed_stepper(model, layers, basel, total_steps: int, stage: int):
    import deepspeed

    from compression.train import make_optimizer

    optimizer, scheduler = make_optimizer(layers, basel, total_steps)
    config = {
        "train_micro_batch_size_per_gpu": basel.batch_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,
    }
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config,
                                           dist_init_required=False)

    def step(loss: torch.Tensor) -> None:
        engine.backward(loss)
        engine.step()

    return engine, step


def worker_loop(config: dict) -> None:
    """The function every Ray Train worker runs (picklable: it imports what it needs)."""
    import ray.train
    import ray.train.torch

    from compression.bases import to_basis_model
    from compression.train import BaselConfig, basis_state, relearn, steps_for
    from core.models import load_causal_lm

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    basel = BaselConfig(**config["basel"])
    model = load_causal_lm(ModelConfig(**config["model"]), seed=config["seed"])
    layers = to_basis_model(model, config["targets"], basel.new_bases, seed=config["seed"])
    blocks = config["blocks"]
    if config["zero_stage"] is not None:
        if device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        model.to(device)
        engine, step_fn = _deepspeed_stepper(model, layers, basel, steps_for(blocks.shape[0], basel, world),
                                             config["zero_stage"])
        wrapped = engine
    else:
        wrapped, step_fn = ray.train.torch.prepare_model(model), None
    history = relearn(wrapped, layers, blocks, basel, config["final_budget"], seed=config["seed"], rank=rank,
                      world=world, device=device, step_fn=step_fn)
    metrics = {"loss": history[-1]["loss"] if history else float("nan"), "steps": history[-1]["step"] if history else 0}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(basis_state(layers), Path(tmp) / "basis.pt")
            (Path(tmp) / "history.json").write_text(json.dumps(history))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def relearn_on_ray(
    model_cfg: ModelConfig,
    targets: list[str],
    blocks: torch.Tensor,
    basel,
    final_budget: int,
    train: TrainConfig,
    storage: str | Path,
    seed: int = 0,
    name: str = "basel",
) -> tuple[dict, list[dict]]:
    """Run worker_loop on `train.num_workers` Ray Train workers; return (basis state, history)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": train.cpus_per_worker}
    if train.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"model": asdict(model_cfg), "targets": list(targets), "blocks": blocks,
                           "basel": asdict(basel), "final_budget": final_budget, "seed": seed,
                           "zero_stage": train.zero_stage},
        scaling_config=ScalingConfig(num_workers=train.num_workers, use_gpu=train.use_gpu,
                                     resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if train.use_gpu else "gloo"),
        run_config=RunConfig(storage_path=str(Path(storage).resolve()), name=name),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "basis.pt")
        history = json.loads((Path(d) / "history.json").read_text())
    return state, history


__all__ = ["TrainConfig", "relearn_on_ray", "worker_loop"]
