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
from fl.config import SpryConfig
from fl.local import evaluate
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


def run_server(
    grid: Grid, cfg: SpryConfig, runtime: Runtime, run: RunDir | None, resume: Checkpoint | None = None
) -> SpryStrategy:
    def evaluate_fn(state):
        runtime.load_state(state)
        return evaluate(runtime.model, runtime.test_data)

    strategy = SpryStrategy(cfg, runtime.trainable_names, evaluate_fn, run=run, resume=resume)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(runtime.state()),
        num_rounds=cfg.fl.rounds,
        timeout=cfg.fl.round_timeout,
    )
    return strategy


def run_spry(
    cfg: SpryConfig, runtime: Runtime, run: RunDir | None = None, resume: Checkpoint | None = None
) -> SpryResult:
    """Run a Spry simulation on Flower's Ray backend (Ray must already be initialized); with
    `resume`, continue after that checkpoint's round (rounds resume.round+1 .. cfg.fl.rounds)."""
    from flwr.simulation import run_simulation

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
            # restart a client actor whose process died (its message fails and is counted;
            # later ones run), where Flower alone would keep the dead actor in its pool.
            "client_resources": {"num_cpus": cfg.resources.num_cpus, "num_gpus": cfg.resources.num_gpus,
                                 "max_restarts": -1},
        },
    )
    if "strategy" not in holder:
        raise RuntimeError("the Spry server app did not finish; see the log above")
    strategy: SpryStrategy = holder["strategy"]
    return SpryResult(strategy.history, strategy.final_state, runtime, strategy.resumed_from)


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
