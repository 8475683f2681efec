"""Run a recipe: compute each stage's key, skip stages whose artifact is complete, run the rest
as soon as their inputs are ready (several at once while their CPUs fit), commit each artifact.

Stages that run at once run in their own processes, not threads: torch's, numpy's and Python's
global random states are per process, and two stages seeding and drawing from one shared state
made an artifact depend on the other stage's timing (the same key, other weights). A process
joins the driver's Ray cluster when the driver has one.

A stage that fails leaves every committed artifact as it is; the error is raised once the stages
already running have finished, and a rerun (or --resume) starts again from the failed stage.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import to_dict
from core.runs import RunDir
from specialize.artifacts import Artifact, ArtifactStore, artifact_key
from specialize.recipe import Recipe, SpecializeConfig, Stage, build_recipe
from specialize.stages import StageContext

log = logging.getLogger("tailor.specialize")


class StageFailed(RuntimeError):
    def __init__(self, stage: str, err: BaseException):
        self.stage = stage
        super().__init__(f"stage {stage!r} failed: {_type_name(err)}: {err}")


class StageError(Exception):
    """A stage's error as it crosses back from the stage's process: its type's name and message
    (the exception itself need not pickle; its traceback was logged where it happened)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name

    def __reduce__(self):
        return StageError, (self.type_name, str(self))


def _type_name(err: BaseException) -> str:
    return getattr(err, "type_name", type(err).__name__)


@dataclass
class StageRecord:
    stage: str
    kind: str
    key: str
    status: str  # ran, skipped (a complete artifact existed), failed, not run
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: Path | None = None
    error: str | None = None


def stage_keys(recipe: Recipe) -> dict[str, str]:
    """Each stage's artifact key: its kind, config and recipe context, and its producers' keys."""
    keys: dict[str, str] = {}
    for s in recipe.stages:
        inputs = {port: f"{keys[p]}/{out}" for port, (p, out) in s.inputs.items()}
        keys[s.name] = artifact_key(s.kind.name, to_dict(s.cfg), inputs, recipe.context(s))
    return keys


def run_recipe(recipe: Recipe, run: RunDir, store: ArtifactStore, stage_cpus: dict[str, float],
               cluster_cpus: float, recompute: set[str] = frozenset(), on_record=None) -> list[StageRecord]:
    """Run what is not done yet. `recompute`: stages to run even when their artifact is complete
    (--from). `stage_cpus`: what each stage holds while it runs (from its plan). Returns one
    record per stage, in recipe order; raises StageFailed after the running stages finish."""
    keys = stage_keys(recipe)
    store.clean_temporaries()
    records = {s.name: StageRecord(s.name, s.kind.name, keys[s.name], "not run") for s in recipe.stages}
    done: dict[str, Artifact] = {}
    pending = [s for s in recipe.stages]
    running: dict[cf.Future, Stage] = {}
    failure: StageFailed | None = None
    limit = recipe.config.max_concurrent_stages

    def finish(s: Stage, art: Artifact | None, status: str, seconds: float, err: BaseException | None = None) -> None:
        rec = records[s.name]
        rec.status, rec.seconds = status, seconds
        if art is not None:
            rec.metrics, rec.artifact = art.metrics, art.path
            done[s.name] = art
        if err is not None:
            rec.error = f"{type(err).__name__}: {err}"
        if on_record is not None:
            on_record(rec)

    with _stage_processes(limit) as pool:
        while pending or running:
            progressed = False
            for s in list(pending):
                if failure is not None:
                    break
                if not all(p in done for p in recipe.producers(s)):
                    continue
                if s.name not in recompute:
                    art = store.get(s.name, keys[s.name])
                    if art is not None:
                        pending.remove(s)
                        log.info("%s: complete artifact %s, skipped", s.name, art.path.name)
                        finish(s, art, "skipped", art.seconds)
                        progressed = True
                        continue
                busy = sum(stage_cpus.get(r.name, 1.0) for r in running.values())
                exclusive_running = any(r.kind.exclusive for r in running.values())
                if exclusive_running or len(running) >= limit:
                    break
                if running and (s.kind.exclusive or busy + stage_cpus.get(s.name, 1.0) > cluster_cpus):
                    continue
                pending.remove(s)
                inputs = {port: done[p].output(out) for port, (p, out) in s.inputs.items()}
                if s.kind.exclusive or limit == 1:
                    # in the main thread (Flower's simulation needs it); nothing else starts meanwhile
                    art, secs, err = _execute(s, recipe, inputs, store, run, keys[s.name])
                    if err is None:
                        finish(s, art, "ran", secs)
                    else:
                        finish(s, None, "failed", secs, err)
                        failure = failure or StageFailed(s.name, err)
                else:
                    running[pool.submit(_execute_in_process, recipe.config, s.name, inputs, store, run,
                                        keys[s.name])] = s
                progressed = True
            if failure is not None:
                pending.clear()
            if running and not progressed:
                finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    s = running.pop(fut)
                    try:
                        art, secs, err = fut.result()
                    except Exception as crash:  # noqa: BLE001 - the stage's process died (killed, out of memory)
                        art, secs, err = None, 0.0, crash
                    if err is None:
                        finish(s, art, "ran", secs)
                    else:
                        finish(s, None, "failed", secs, err)
                        failure = failure or StageFailed(s.name, err)
            elif not running and not progressed and pending:
                raise RuntimeError(f"no stage can start: {[s.name for s in pending]}")  # a bug: the recipe is ordered
    out = [records[s.name] for s in recipe.stages]
    if failure is not None:
        failure.records = out
        raise failure
    return out


def _stage_processes(limit: int) -> cf.ProcessPoolExecutor:
    """One fresh process per stage (spawned: safe with CUDA and Ray's threads). When the driver
    has Ray, each joins that cluster with the driver's runtime env (its PYTHONPATH, or the
    working_dir of `ray job submit`), so its tasks and actors import what the driver's do."""
    ray_args = None
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            ray_args = (ctx.gcs_address, dict(ctx.runtime_env or {}))
    except ImportError:
        pass
    return cf.ProcessPoolExecutor(max_workers=max(limit, 1), mp_context=multiprocessing.get_context("spawn"),
                                  max_tasks_per_child=1, initializer=_init_stage_process,
                                  initargs=(ray_args, logging.getLogger().getEffectiveLevel()))


def _init_stage_process(ray_args: tuple[str, dict] | None, log_level: int) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if ray_args is not None:
        import ray

        address, runtime_env = ray_args
        os.environ["RAY_ADDRESS"] = address  # core.ray.init_ray and Ray's auto-init find the same cluster
        ray.init(address=address, runtime_env=runtime_env or None, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=False)


def _execute_in_process(cfg: SpecializeConfig, name: str, inputs: dict[str, Path], store: ArtifactStore,
                        run: RunDir, key: str) -> tuple[Artifact | None, float, BaseException | None]:
    """_execute in a stage's own process; the recipe is parsed again there (its stage kinds hold
    functions that do not pickle), and an error comes back as a StageError."""
    recipe = build_recipe(cfg)
    art, seconds, err = _execute(recipe.by_name[name], recipe, inputs, store, run, key)
    return art, seconds, None if err is None else StageError(type(err).__name__, str(err))


def _execute(s: Stage, recipe: Recipe, inputs: dict[str, Path], store: ArtifactStore, run: RunDir,
             key: str) -> tuple[Artifact | None, float, BaseException | None]:
    """Run one stage into a temporary folder and commit it; errors are returned, not raised, so
    that the scheduler can let the other running stages finish."""
    work = run.file(f"work/{s.name}-{key}")
    shutil.rmtree(work, ignore_errors=True)  # what a killed run left: start the stage afresh
    work.mkdir(parents=True)
    tmp = store.begin(s.name, key)
    start = time.perf_counter()
    log.info("%s (%s): running", s.name, s.kind.name)
    try:
        metrics = s.kind.run(StageContext(s, recipe.config, inputs, tmp, work))
        seconds = time.perf_counter() - start
        art = store.commit(s.name, key, tmp, s.kind.outputs, metrics, seconds,
                           {"kind": s.kind.name, "inputs": {p: f"{a}.{o}" for p, (a, o) in s.inputs.items()}})
        log.info("%s: done in %.1f s -> %s", s.name, seconds, art.path.name)
        return art, seconds, None
    except BaseException as err:  # noqa: BLE001 - reported with the stage's name; KeyboardInterrupt too
        store.abort(tmp)
        log.error("%s failed:\n%s", s.name, traceback.format_exc())
        if isinstance(err, KeyboardInterrupt):
            raise
        return None, time.perf_counter() - start, err


__all__ = ["StageError", "StageFailed", "StageRecord", "run_recipe", "stage_keys"]
