"""UniTable's pretraining and fine-tuning on Ray Train: `TorchTrainer` workers, DDP (or a DeepSpeed
ZeRO engine with `train.zero_stage`), each running tables.train.run_training on its rank::world
share. Rank 0 reports a checkpoint every epoch (weights, optimizer, epoch); rerunning with the
same storage and name resumes from it (Ray Train V2 hands it back through get_checkpoint)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from core.train import TrainConfig, deepspeed_engine, fit_torch_trainer


def _resolve(data: dict) -> dict:
    import ray

    return {k: (ray.get(v) if isinstance(v, ray.ObjectRef) else v) for k, v in data.items()}


def worker_loop(config: dict) -> None:
    """What every Ray Train worker runs (picklable: it imports what it needs)."""
    import ray.train
    import ray.train.torch

    from tables.train import build_model, make_optimizer, run_training

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    spec = dict(config["spec"])
    spec["data"] = _resolve(spec["data"])
    model = build_model(spec).to(device)
    optimizer = make_optimizer(model, spec["hp"])
    start, history = 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:  # a rerun under the same name: continue after the last finished epoch
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]) + 1, list(state["history"])
    if config.get("zero_stage") is not None:
        wrapped, _ = deepspeed_engine(model, optimizer, config["zero_stage"], spec["hp"]["batch_size"],
                                      device=device, gradient_clipping=0.0)
    else:
        # some parameters get no gradient in a step (the encoder while frozen, the mask token
        # when fine-tuning): DDP must not wait for them
        wrapped = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})

    def on_epoch(epoch: int, rec: dict, opt) -> None:
        if not rec.get("restored"):
            history.append(rec)
        if rank != 0:
            ray.train.report(rec)
            return
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                        "history": history}, Path(tmp) / "state.pt")
            ray.train.report(rec, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    if start >= spec["hp"]["epochs"]:  # already finished: report the restored state again
        on_epoch(start - 1, {"name": spec["name"], "epoch": start, "loss": float("nan"), "restored": True}, optimizer)
        return
    run_training(spec, model, wrapped, rank=rank, world=world, device=device, start_epoch=start,
                 optimizer=optimizer, on_epoch=on_epoch)


def train_on_ray(spec: dict, train: TrainConfig, storage: str | Path, name: str, threads: int = 1) -> dict:
    """Run the spec on `train.num_workers` workers; returns the trained state_dict and the last
    metrics. Big arrays in spec['data'] go through the object store once."""
    import ray

    spec = dict(spec)
    spec["data"] = {k: ray.put(v) if hasattr(v, "nbytes") and v.nbytes > 1_000_000 else v
                    for k, v in spec["data"].items()}
    result = fit_torch_trainer(worker_loop, {"spec": spec, "zero_stage": train.zero_stage, "threads": threads},
                               train, storage, name)
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "state.pt", weights_only=False)
    return {"model": state["model"], "metrics": result.metrics, "epoch": state["epoch"], "history": state["history"]}


__all__ = ["train_on_ray", "worker_loop"]
