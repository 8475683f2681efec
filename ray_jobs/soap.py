"""SOAP / EffiLearner: make LLM-written code faster from its own execution profiles, in a sandbox.

`python -m ray_jobs.soap --config configs/soap/laptop.yaml [--set k=v] [--resume runs/soap/<run>]`

An LLM (core.llm; an LLMPool of Ray actors) writes code for HumanEval / MBPP / JSONL tasks; each
version runs in a sandbox (codeopt.sandbox: new network, mount and PID namespaces, a private uid,
rlimits) as a Ray task on a CPU worker, is tested and profiled (ET, MU, TMU, line profiles); the
overhead analysis goes back into the next prompt, and a new version is kept only if it passes and
is faster beyond the measured noise. Ablations: feedback modes full / summary / time / memory /
none. A second start optimises correct-but-slow rewrites of canonical solutions. Every step is
cached in the run directory, so `--resume` continues where a run stopped.
"""

from __future__ import annotations

import logging
import sys

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.codeopt")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("soap", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.llm import check_backend
    from codeopt.config import SoapJobConfig
    from codeopt.experiment import plan_arms
    from codeopt.sandbox import check_sandbox

    try:
        job = load_job_config(SoapJobConfig, args, "SOAP")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("soap", job)
        check_sandbox(job.sandbox)  # untrusted code never runs without the isolation the config asks for
        check_backend(job.llm)
        arms = plan_arms(job)
    except ConfigError as err:
        print_config_error(err)
        return 2

    if job.execution.ray or job.llm.pool.actors > 0:
        init_ray(num_cpus=job.ray_num_cpus, verbose=args.verbose)
    else:
        log.info("execution.ray is false and llm.pool.actors is 0: running without Ray")
    from core.llm import build_backend
    from codeopt.execute import LocalExecutor, RayExecutor
    from codeopt.experiment import run_arms
    from codeopt.report import write_report

    run = RunDir(args.resume) if args.resume else RunDir.create("soap", job.run.root)
    if args.resume:
        run.file("metrics.jsonl").unlink(missing_ok=True)  # rebuilt from the cache, step by step
    run.write_config(job)
    log.info("run directory: %s", run.path)
    try:
        backend = build_backend(job.llm)
        e = job.execution
        execute = (RayExecutor(job.sandbox, job.profile, e.concurrency, e.num_cpus) if e.ray
                   else LocalExecutor(job.sandbox, job.profile, e.concurrency))
        results = run_arms(job, run, arms, backend, execute)
        summary = write_report(job, run, results)
        print("\n" + summary.split("## Config")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, job.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())
