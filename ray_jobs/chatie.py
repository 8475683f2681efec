"""ChatIE zero-shot information extraction (NER, relations, events) as a two-stage chat with any core.llm backend.

`python -m ray_jobs.chatie --config configs/chatie/laptop.yaml [--set k=v]` runs ChatIE (Wei et al.,
2023) and the single-turn baseline on the same LLM over each configured dataset (WNUT-17 NER,
FewRel relations, WikiEvents events, or a user's JSONL with a user's schema), plus spaCy's
supervised NER for reference; the backend's calls spread over a core.llm Ray actor pool.
Schemas and data are checked before Ray starts. Every answer is cached in the run directory:
`--resume runs/chatie/<run>` continues a killed run without asking again. Writes summary.md,
f1.png, metrics.jsonl and predictions/*.jsonl (with each input's full dialogue).
"""

from __future__ import annotations

import logging
import sys

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, progress, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.ie")


def _bar(total: int, desc: str):
    return progress(range(total), total=total, desc=desc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args("chatie", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.llm import check_backend
    from ie.config import ChatIEJobConfig
    from ie.experiment import load_datasets

    try:
        cfg = load_job_config(ChatIEJobConfig, args, "chatie")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("chatie", cfg)
        datasets = load_datasets(cfg)  # bad schemas and data lines fail here, naming file and line
        check_backend(cfg.llm)  # an unreachable server fails here, before Ray and before any work
    except ConfigError as err:
        print_config_error(err)
        return 2

    uses_llm = any(d.methods is None or d.methods for d in cfg.datasets)
    if uses_llm and cfg.llm.pool.actors > 0:  # with no actors the backend runs here: no Ray to start
        init_ray(num_cpus=cfg.ray_num_cpus, verbose=args.verbose)
    from core.llm import build_backend
    from ie.config import tokenizer_name
    from ie.experiment import check_scoring, run_experiment
    from ie.report import plot_f1, summary_markdown
    from ie.tokens import TokenCounter

    backend = build_backend(cfg.llm) if uses_llm else None  # only the spaCy reference: no LLM to start
    try:
        if cfg.uses("chatie_loglik"):
            check_scoring(backend)
    except ConfigError as err:
        print_config_error(err)
        return 2
    run = RunDir(args.resume) if args.resume else RunDir.create("chatie", cfg.run.root)
    run.write_config(cfg)
    log.info("run directory: %s", run.path)
    try:
        counter = TokenCounter.from_name(tokenizer_name(cfg))
        results = run_experiment(cfg, datasets, backend, run, counter, progress=_bar)
        plot_f1(run.file("f1.png"), results)
        skipped = {r.dataset: r.stats["skipped_empty"] for r in results
                   if r.method != "spacy" and r.stats.get("skipped_empty")}
        model = _model_name(cfg)
        run.write_json("results.json", [r.__dict__ for r in results])
        summary = summary_markdown(cfg, results, model, counter.exact, skipped)
        run.write_summary(summary)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


def _model_name(cfg) -> str:
    return f"{cfg.llm.backend} {cfg.llm.model_name()}"


if __name__ == "__main__":
    sys.exit(main())
