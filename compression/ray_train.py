"""Basel's relearning on Ray Train: `TorchTrainer` workers (DDP, or a DeepSpeed ZeRO engine).

Each worker loads the model itself, builds the same basis layers (the SVD is deterministic),
trains on its share of the blocks, and rank 0 reports the trained basis state and the low-rank
factors it converts to as the run's checkpoint, so the driver never decomposes the model itself
(on Qwen2.5-1.5B that SVD takes 11 minutes on 2 cores, and the basis model 7 GB). CPU workers
use gloo; with `use_gpu` every worker gets a GPU and NCCL, unchanged.
The Ray Train plumbing (TrainConfig, the DeepSpeed engine, the trainer) is core.train's.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from core.models import ModelConfig
from core.train import TrainConfig, deepspeed_engine, fit_torch_trainer, report_from_rank0


FACTORS = "factors.pt"


def worker_loop(config: dict) -> None:
    """The function every Ray Train worker runs (picklable: it imports what it needs)."""
    import ray.train
    import ray.train.torch

    from compression.bases import to_basis_model
    from compression.train import BaselConfig, basis_state, make_optimizer, relearn, steps_for
    from core.models import load_causal_lm

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    basel = BaselConfig(**config["basel"])
    model = load_causal_lm(ModelConfig(**config["model"]), seed=config["seed"])
    layers = to_basis_model(model, config["targets"], basel.new_bases, seed=config["seed"])
    blocks = config["blocks"]
    if config["zero_stage"] is not None:
        model.to(device)
        optimizer, scheduler = make_optimizer(layers, basel, steps_for(blocks.shape[0], basel, world))
        # no clipping: DeepSpeed's default clips at 1.0, where the DDP and in-process loops do not
        wrapped, step_fn = deepspeed_engine(model, optimizer, config["zero_stage"], basel.batch_size,
                                            scheduler=scheduler, device=device, gradient_clipping=0.0)
    else:
        wrapped, step_fn = ray.train.torch.prepare_model(model), None
    history = relearn(wrapped, layers, blocks, basel, config["final_budget"], seed=config["seed"], rank=rank,
                      world=world, device=device, step_fn=step_fn)
    metrics = {"loss": history[-1]["loss"] if history else float("nan"), "steps": history[-1]["step"] if history else 0}

    def write(d: Path) -> None:
        from compression.lowrank import refactor_factors

        torch.save(basis_state(layers), d / "basis.pt")
        dtype = next(iter(layers.values())).w.dtype
        torch.save({n: tuple(f.to(dtype).cpu() for f in refactor_factors(l)) for n, l in layers.items()},
                   d / FACTORS)
        (d / "history.json").write_text(json.dumps(history))

    report_from_rank0(metrics, rank, write)


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
) -> tuple[dict, list[dict], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Run worker_loop on `train.num_workers` Ray Train workers; return (basis state, history,
    {layer: (up, down)} low-rank factors)."""
    result = fit_torch_trainer(
        worker_loop,
        {"model": asdict(model_cfg), "targets": list(targets), "blocks": blocks, "basel": asdict(basel),
         "final_budget": final_budget, "seed": seed, "zero_stage": train.zero_stage},
        train, storage, name)
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "basis.pt")
        history = json.loads((Path(d) / "history.json").read_text())
        factors = torch.load(Path(d) / FACTORS)
        # the saved model folder holds the same factors: keep only the small basis state
        (Path(d) / FACTORS).unlink()
    return state, history, factors


__all__ = ["TrainConfig", "relearn_on_ray", "worker_loop"]
