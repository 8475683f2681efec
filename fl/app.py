"""Flower apps for Spry, and the simulation entry point.

`python -m ray_jobs.spry` calls `run_spry`, which runs Flower's Ray simulation backend
in-process. `flwr run .` (pyproject's [tool.flwr.app]) loads `server_app` and `client_app`
from here and reads the config path and overrides from the run config.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from core.config import load
from core.runs import RunDir, upload_run
from fl.checkpoint import Checkpoint
from fl.client import client_app
from fl import dispatch, ray_backend
from fl.config import SpryConfig
from fl.evaluation import generalized_accuracy, per_example, personalize
from fl.runtime import Runtime
from fl.strategy import SpryStrategy

log = logging.getLogger(__name__)

__all__ = ["client_app", "server_app", "run_spry", "SpryResult"]


@dataclass
class SpryResult:
    history: list[dict]
    final_state: dict
    runtime: Runtime
    # Rounds after which this run was resumed from a checkpoint (empty: it ran in one go).
    resumed_from: list[int] = field(default_factory=list)
    # fl.evaluation.personalize's numbers (fl.personalize_clients > 0), else None.
    personalization: dict | None = None


def run_server(
    grid: Grid, cfg: SpryConfig, runtime: Runtime, run: RunDir | None, resume: Checkpoint | None = None
) -> SpryStrategy:
    def evaluate_fn(state):
        runtime.load_state(state)
        pe = per_example(runtime.model, runtime.test_data)
        return {"accuracy": float(pe["correct"].mean()), "loss": float(pe["loss"].mean()),
                "generalized_accuracy": generalized_accuracy(pe["correct"], runtime.client_tests),
                "per_example": pe}

    strategy = SpryStrategy(cfg, runtime.trainable_names, evaluate_fn, run=run, resume=resume)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(runtime.state()),
        num_rounds=cfg.fl.rounds,
        timeout=cfg.fl.round_timeout,
    )
    strategy.personalization = None
    if cfg.fl.personalize_clients:
        last = strategy.history[-1]["round"]
        assigned = dict(list(strategy.assigned_names(last).items())[: cfg.fl.personalize_clients])
        log.info("personalizing %d clients for %d local epochs", len(assigned), cfg.fl.personalize_epochs)
        strategy.personalization = personalize(cfg, runtime, strategy.final_state, runtime.client_tests,
                                               assigned, cfg.fl.personalize_epochs)
        if run is not None:
            run.write_json("personalization.json", strategy.personalization)
    return strategy


def run_spry(
    cfg: SpryConfig, runtime: Runtime, run: RunDir | None = None, resume: Checkpoint | None = None
) -> SpryResult:
    """Run a Spry simulation on Flower's Ray backend (Ray must already be initialized); with
    `resume`, continue after that checkpoint's round (rounds resume.round+1 .. cfg.fl.rounds)."""
    from flwr.simulation import run_simulation

    # Flower's dispatch loop costs nodes x messages per 0.1 s tick in this process (fl.dispatch)
    dispatch.install()
    ray_backend.install()  # the Ray this runs on is the caller's: Flower must not shut it down
    holder: dict = {}
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        holder["strategy"] = run_server(grid, cfg, runtime, run, resume)

    run_simulation(
        server_app=app,
        client_app=client_app,
        num_supernodes=cfg.partition.num_clients,
        backend_config={
            # Flower passes client_resources to the actors' .options(): max_restarts makes Ray
            # restart a client actor whose process died, where Flower alone would keep the dead
            # actor in its pool. Flower hands that actor its next message at once, while Ray is
            # still restarting it: max_task_retries=1 makes that message wait for the restarted
            # actor instead of failing, so only the message the worker died on fails (a rerun
            # of it fails rather than dying again: fl.client.died_before).
            "client_resources": {"num_cpus": cfg.resources.num_cpus, "num_gpus": cfg.resources.num_gpus,
                                 "max_restarts": -1, "max_task_retries": 1},
        },
    )
    if "strategy" not in holder:
        raise RuntimeError("the Spry server app did not finish; see the log above")
    strategy: SpryStrategy = holder["strategy"]
    return SpryResult(strategy.history, strategy.final_state, runtime, strategy.resumed_from,
                      strategy.personalization)


server_app = ServerApp()


@server_app.main()
def _flwr_run_main(grid: Grid, context: Context) -> None:
    """Entry point for `flwr run .`: config path and overrides come from the run config."""
    from fl.report import write_report

    path = str(context.run_config.get("config-path", "configs/spry/laptop.yaml"))
    # Space-separated key=value pairs, as --set takes them: overrides="fl.rounds=5 partition.alpha=0.1"
    overrides = shlex.split(str(context.run_config.get("overrides", "")))
    cfg = load(SpryConfig, path, overrides)
    runtime = Runtime(cfg)
    run = RunDir.create("spry", cfg.run.root)
    run.write_config(cfg)
    try:
        strategy = run_server(grid, cfg, runtime, run)
        write_report(cfg, run, strategy.history, runtime, memory=None)
    finally:
        # Flower unpacks the app under $FLWR_HOME/apps, where a user would not look for the run
        upload_run(run, cfg.run.storage_path)
