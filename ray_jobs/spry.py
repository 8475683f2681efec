"""Spry federated fine-tuning: `python -m ray_jobs.spry --config configs/spry/laptop.yaml [--set k=v]`.

With RAY_ADDRESS set (as under `ray job submit`), joins that cluster; else starts Ray locally.

`--resume runs/spry/<run>` continues that run after a crash, in the same run directory, from
its newest checkpoint (<run>/checkpoints/, written every fl.checkpoint_every rounds and after the
last): with the run's saved config.yaml, the checkpoint's weights, server-optimizer moments
and metrics (metrics.jsonl is cut back to the checkpoint's round), it runs rounds r+1..fl.rounds.
The client nodes are asked for their partition ids again (Flower numbers nodes anew each run);
round 0's prototypes are not recomputed (the head is in the checkpoint).
`--set` with `--resume` may only change keys that leave every round's arithmetic alone
(fl.checkpoint.RESUME_SAFE_KEYS: fl.rounds to extend the run, fl.checkpoint_every,
fl.eval_every, fl.round_timeout, resources.ray_num_cpus, memory_report); any other key exits 2
naming it, as does `--config`. A missing run directory, no checkpoint, or a damaged one exits 2
before Ray starts; resuming a finished run says so and exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from core.config import ConfigError
from core.ray import check_gpus, init_ray, local_gpu_count
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import parse_args, print_config_error

log = logging.getLogger("tailor.spry")


class ResumeError(Exception):
    """--resume cannot continue this run: the message says why."""


def _load_resume(args):
    """(config, newest checkpoint) of the run `args.resume` names, checked against each other."""
    from core.config import load, to_yaml
    from fl.checkpoint import RESUME_SAFE_KEYS, config_differences, load_latest, refused_overrides
    from fl.config import SpryConfig

    run_dir = Path(args.resume)
    if args.config:
        raise ResumeError("--resume continues with the run's saved config.yaml; drop --config")
    if not run_dir.is_dir():
        raise ResumeError(f"--resume: no run directory {run_dir}")
    if not (run_dir / "config.yaml").is_file():
        raise ResumeError(f"--resume: {run_dir} has no config.yaml, so it is not a Spry run directory")
    refused = refused_overrides(args.set)
    if refused:
        raise ResumeError(
            f"--resume refuses --set {', '.join(refused)}: a resumed run keeps its config, so that its "
            f"rounds compute what the uninterrupted run would. Allowed: {', '.join(RESUME_SAFE_KEYS)}"
        )
    cfg = load(SpryConfig, run_dir / "config.yaml", args.set)
    ckpt = load_latest(run_dir / "checkpoints")
    differ = config_differences(ckpt.config, to_yaml(cfg))
    if differ:
        raise ResumeError(f"{run_dir / 'config.yaml'} differs from the config its checkpoint (round {ckpt.round}) "
                          f"was written under, at: {', '.join(differ)}")
    if ckpt.round > cfg.fl.rounds:
        raise ConfigError("fl.rounds", f"{cfg.fl.rounds} is below the checkpoint's round {ckpt.round}; "
                                       "a resume can extend a run, not shorten it")
    return cfg, ckpt


def _finished(run_dir: Path, cfg, ckpt) -> int:
    """A resume of a run whose last round is checkpointed: nothing to train; rewrite a missing summary."""
    print(f"run {run_dir} already finished: its checkpoint is after round {ckpt.round} of {cfg.fl.rounds}. "
          f"To train more rounds: --resume {run_dir} --set fl.rounds=N (N > {ckpt.round}).")
    run = RunDir(run_dir)
    if not run.file("summary.md").exists():  # it stopped between the last round and the report
        from fl.report import write_report
        from fl.runtime import Runtime

        memory = json.loads(run.file("memory.json").read_text()) if run.file("memory.json").exists() else None
        write_report(cfg, run, ckpt.history, Runtime(cfg), memory, ckpt.resumed_from)
        print(f"wrote the missing {run.file('summary.md')}")
        upload_run(run, cfg.run.storage_path)  # the copy made when it stopped had no summary
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args("spry", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.config import load
    from fl.checkpoint import CheckpointError, check_weights
    from fl.config import SpryConfig

    ckpt = None
    try:
        if args.resume:
            cfg, ckpt = _load_resume(args)
            if ckpt.round == cfg.fl.rounds:
                return _finished(Path(args.resume), cfg, ckpt)
        else:
            cfg = load(SpryConfig, args.config, args.set)

        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("spry", cfg)
        if not os.environ.get("RAY_ADDRESS"):
            check_gpus(cfg.resources.num_gpus, local_gpu_count(), "resources.num_gpus")
        from fl.runtime import Runtime

        # Builds the model and data once in the driver: checks the model name, the adapter's
        # target modules, the dataset and the partition before Ray starts or a run dir exists.
        runtime = Runtime(cfg)
        if ckpt is not None:
            check_weights(ckpt, runtime.state())
    except ConfigError as err:
        print_config_error(err)
        return 2
    except (CheckpointError, ResumeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    resources = init_ray(num_cpus=cfg.resources.ray_num_cpus, verbose=args.verbose)
    try:
        check_gpus(cfg.resources.num_gpus, resources.get("GPU", 0.0), "resources.num_gpus")
    except ConfigError as err:
        print_config_error(err)
        return 2

    from core.partition import summarize
    from fl.app import run_spry
    from fl.memory import measure_in_subprocess
    from fl.report import write_report

    if ckpt is None:
        run = RunDir.create("spry", cfg.run.root)
        run.write_config(cfg)
        run.write_json("partition.json", summarize(runtime.partitions, runtime.train_labels, runtime.label_names))
    else:
        run = RunDir(args.resume)
        run.write_config(cfg)  # an extended fl.rounds is what the next resume must read
        log.info("resuming after round %d of %d", ckpt.round, cfg.fl.rounds)
    log.info("run directory: %s", run.path)
    try:
        result = run_spry(cfg, runtime, run, resume=ckpt)
        memory = None
        if cfg.memory_report:
            log.info("measuring one Spry step against one backprop step (fresh processes)")
            kw = dict(batch=cfg.fl.batch_size, seq=cfg.model.max_length, r=cfg.adapter.r,
                      targets=cfg.adapter.target_modules, device=cfg.model.device)
            memory = {mode: measure_in_subprocess(cfg.model.name, mode, **kw) for mode in ("jvp", "backprop")}
            run.write_json("memory.json", memory)
        summary = write_report(cfg, run, result.history, runtime, memory, result.resumed_from,
                               result.personalization)
        print("\n" + summary.split("## Config")[0].rstrip() + "\n")
        log.info("run directory: %s", run.path)
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())
