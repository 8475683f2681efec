"""The SOAP job's arms and their run: the 'generated' start on each dataset, the 'slow' start on the
slow rewrites; LLM calls through a core.llm backend (an LLMPool under Ray), executions through an
executor (Ray CPU tasks or threads)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from core.llm import Backend, SamplingParams
from core.runs import RunDir
from codeopt.config import SoapJobConfig
from codeopt.loop import ExecuteFn, SoapCache, run_soap
from codeopt.slow import SLOW_BODIES, slow_solution
from codeopt.tasks import DataConfig, Task, load_tasks

log = logging.getLogger("tailor.codeopt")


@dataclass
class Arm:
    name: str
    tasks: list[Task]
    start: str


def plan_arms(job: SoapJobConfig) -> list[Arm]:
    """Load every arm's tasks (ConfigError on a bad file: before Ray starts)."""
    arms = []
    if "generated" in job.loop.starts:
        for d in job.data:
            name = d.source if d.source != "jsonl" else d.path.rsplit("/", 1)[-1].split(".")[0]
            arms.append(Arm(name, load_tasks(d), "generated"))
    if "slow" in job.loop.starts:
        he = {t.task_id: t for t in load_tasks(DataConfig(source="humaneval"))}
        ids = list(SLOW_BODIES)[: job.slow_limit]
        arms.append(Arm("humaneval-slow-start", [he[i] for i in ids], "slow"))
    return arms


def generate_fn(backend: Backend, job: SoapJobConfig):
    params = SamplingParams(max_new_tokens=job.loop.max_new_tokens, temperature=job.loop.temperature, top_p=job.loop.top_p)
    return lambda prompts, seeds: backend.generate(prompts, params, seeds)


def run_arms(job: SoapJobConfig, run: RunDir, arms: list[Arm], backend: Backend, execute: ExecuteFn) -> list[dict]:
    cache = SoapCache(run.file("cache"))
    out = []
    for arm in arms:
        log.info("arm %s: %d tasks, start %s", arm.name, len(arm.tasks), arm.start)

        def log_row(row: dict, name: str = arm.name) -> None:
            run.log_metrics({"arm": name, **row})
            log.info("%s %s iteration %d: pass@1 %.3f NET %.3f NTMU %.3f (%d profiled)", name, row["feedback"],
                     row["iteration"], row["pass@1"], row["NET"], row["NTMU"], row["tasks"])

        res = run_soap(arm.tasks, dataclasses.replace(job.loop, starts=[arm.start]), generate_fn(backend, job), execute,
                       cache, slow=slow_solution, on_iteration=log_row)
        out.append({"name": arm.name, "curves": res.curves, "excluded": res.excluded, "slow_failed": res.slow_failed,
                    "tasks": arm.tasks})
    return out
