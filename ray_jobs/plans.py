"""What each job will ask Ray for, checked against a cluster's resources: `--dry-run`.

`plan_<job>(cfg, resources)` takes the job's loaded config and a resource map such as
`ray.cluster_resources()` ({"CPU": 96.0, "GPU": 8.0, ...}) and returns the plan as printable
lines, or raises ConfigError naming the field whose request the cluster cannot meet. Pure
functions: a test can dry-run every cluster config against a made-up GPU cluster.
"""

from __future__ import annotations

import math
import os

from core.config import ConfigError


def local_resources() -> dict[str, float]:
    """What an embedded local Ray would have: this machine's cores and CUDA devices."""
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def cluster_resources() -> dict[str, float]:
    """The cluster named by RAY_ADDRESS (joined, then left), else this machine."""
    if not os.environ.get("RAY_ADDRESS"):
        return local_resources()
    import ray

    ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
    try:
        return dict(ray.cluster_resources())
    finally:
        ray.shutdown()


def fits(resources: dict[str, float], cpus: float, gpus: float, key_cpus: str, key_gpus: str) -> int:
    """How many actors of (cpus, gpus) the resources hold at once; ConfigError if not one."""
    have_cpu, have_gpu = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if gpus > have_gpu:
        raise ConfigError(key_gpus, f"asks for {gpus:g} GPU(s) per actor but the cluster has {have_gpu:g}; "
                                    f"allowed: 0 to {have_gpu:g}")
    if cpus > have_cpu:
        raise ConfigError(key_cpus, f"asks for {cpus:g} CPU(s) per actor but the cluster has {have_cpu:g}; "
                                    f"allowed: up to {have_cpu:g}")
    n = math.inf
    if cpus > 0:
        n = min(n, have_cpu // cpus)
    if gpus > 0:
        n = min(n, have_gpu // gpus)
    return int(n) if n != math.inf else 1_000_000


def _actor_line(what: str, count: int | str, cpus: float, gpus: float, concurrent: int) -> str:
    return f"{what}: {count} x ({cpus:g} CPU, {gpus:g} GPU); {min(concurrent, 10**6)} fit at once"


def plan_spry(cfg, resources: dict[str, float]) -> list[str]:
    r = cfg.resources
    n = fits(resources, r.num_cpus, r.num_gpus, "resources.num_cpus", "resources.num_gpus")
    return [_actor_line("Flower client actors", f"{cfg.fl.clients_per_round} per round", r.num_cpus, r.num_gpus, n),
            f"method {cfg.fl.method}: {cfg.fl.rounds} rounds, {cfg.partition.num_clients} clients"
            + (f", stop after {cfg.fl.time_budget_s:g} s of training" if cfg.fl.time_budget_s else "")]


def plan_curate(cfg, resources: dict[str, float]) -> list[str]:
    w, e = cfg.workers, cfg.embed
    n = fits(resources, w.num_cpus, w.num_gpus, "workers.num_cpus", "workers.num_gpus")
    lines = [_actor_line("shard workers", w.num_workers, w.num_cpus, w.num_gpus, n)]
    if w.num_workers > n:
        lines.append(f"  ({w.num_workers - n} of them wait until the autoscaler adds nodes)")
    if cfg.embeddings is None:
        m = fits(resources, e.num_cpus, e.num_gpus, "embed.num_cpus", "embed.num_gpus")
        lines.append(_actor_line(f"embedding actors ({e.model})", e.concurrency, e.num_cpus, e.num_gpus, m))
    lines.append("levels: " + ", ".join(f"k={s.k} x {s.resampling_steps} step(s)" for s in cfg.kmeans.levels)
                 + f"; sample {cfg.sample.target}")
    return lines


def _train_workers_line(what: str, t, resources: dict[str, float], key: str, beside: str = "") -> str:
    """A Ray Train request (core.train.TrainConfig at `key`): all its workers must fit at once, in
    `resources` (what is left `beside` the actors that stay up meanwhile)."""
    gpus = 1.0 if t.use_gpu else 0.0
    try:
        n = fits(resources, t.cpus_per_worker, gpus, f"{key}.cpus_per_worker", f"{key}.use_gpu")
    except ConfigError as err:
        raise ConfigError(err.key, str(err).split(": ", 1)[1] + (f" beside {beside}" if beside else "")) from None
    if t.num_workers > n:
        raise ConfigError(f"{key}.num_workers", f"{t.num_workers} Ray Train workers of ({t.cpus_per_worker:g} CPU, "
                                                f"{gpus:g} GPU) do not fit: the cluster holds {n}"
                                                + (f" beside {beside}" if beside else ""))
    return (_actor_line(f"Ray Train workers ({what})", t.num_workers, t.cpus_per_worker, gpus, n)
            + (f", DeepSpeed ZeRO-{t.zero_stage}" if t.zero_stage is not None else ", DDP"))


def plan_compress(cfg, resources: dict[str, float]) -> list[str]:
    return [_train_workers_line("Basel", cfg.train, resources, "train"),
            f"{len(cfg.keep_ratios)} keep ratio(s) x {len(cfg.methods)} method(s): {', '.join(cfg.methods)}"]


def plan_refusion(cfg, resources: dict[str, float]) -> list[str]:
    t = cfg.tune
    n = fits(resources, t.cpus_per_trial, t.gpus_per_trial, "tune.cpus_per_trial", "tune.gpus_per_trial")
    fixed = [a for a in cfg.arms if a != "tuned_choices"]
    trials = len(fixed) * len(cfg.seeds) * len(t.learning_rates)
    if "tuned_choices" in cfg.arms:
        trials += len(cfg.seeds) * t.choice_samples
    return [_actor_line("Ray Tune trials", trials, t.cpus_per_trial, t.gpus_per_trial, n),
            f"arms {', '.join(cfg.arms)}; seeds {cfg.seeds}; {cfg.fit.steps} weight updates per arm "
            f"({cfg.fit.search_steps} of them in ReFusion's search)"]


def plan_gold(cfg, resources: dict[str, float]) -> list[str]:
    p, s = cfg.gold.teacher.pool, cfg.search
    lines = []
    if p.actors:
        n = fits(resources, p.num_cpus, p.num_gpus, "gold.teacher.pool.num_cpus", "gold.teacher.pool.num_gpus")
        lines.append(_actor_line(f"teacher actors ({cfg.gold.teacher.backend})", p.actors, p.num_cpus, p.num_gpus, n))
    m = fits(resources, s.cpus_per_trial, 0.0, "search.cpus_per_trial", "search.cpus_per_trial")
    trials = s.num_samples * len(cfg.arms)  # the same number of trials per arm
    lines.append(_actor_line("Ray Tune trials", trials, s.cpus_per_trial, 0.0, min(m, s.max_concurrent)))
    lines.append(f"{cfg.gold.iterations} iterations each; arms {', '.join(cfg.arms)}")
    if cfg.gold.student.ray_train is not None:
        # after Tune, one Ray Train run per arm's final student, while the teacher actors (built
        # once per job) still hold their CPUs and GPUs
        held = {"CPU": p.actors * p.num_cpus, "GPU": p.actors * p.num_gpus}
        left = {k: resources.get(k, 0.0) - held[k] for k in held}
        lines.append(_train_workers_line("final student", cfg.gold.student.ray_train, left, "gold.student.ray_train",
                                         beside=f"the {p.actors} teacher actor(s)" if p.actors else ""))
    return lines


def print_plan(job: str, lines: list[str], resources: dict[str, float]) -> None:
    have = ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU", "memory"))
    print(f"dry run of {job} against {have or 'no resources'}:")
    for line in lines:
        print("  " + line)


def plan_multilabel(cfg, resources: dict[str, float]) -> list[str]:
    from multilabel.config import arms

    t = cfg.tune
    n = fits(resources, t.cpus_per_trial, t.gpus_per_trial, "tune.cpus_per_trial", "tune.gpus_per_trial")
    a = arms(cfg)
    trainings = len(cfg.seeds) * ((len(cfg.baselines.methods) and 3) + len(cfg.meta.rewards) * (cfg.meta.episodes + 2))
    return [_actor_line("Ray Tune trials", len(a) * len(cfg.seeds), t.cpus_per_trial, t.gpus_per_trial,
                        min(n, t.max_concurrent)),
            f"arms {', '.join(a)}; seeds {cfg.seeds}; {cfg.meta.episodes} meta episodes per meta trial; "
            f"about {trainings} classifier trainings in all"]


def plan_chatie(cfg, resources: dict[str, float]) -> list[str]:
    p = cfg.llm.pool
    lines = []
    if p.actors:
        n = fits(resources, p.num_cpus, p.num_gpus, "llm.pool.num_cpus", "llm.pool.num_gpus")
        lines.append(_actor_line(f"LLM actors ({cfg.llm.backend})", p.actors, p.num_cpus, p.num_gpus, n))
    else:
        lines.append(f"LLM backend {cfg.llm.backend} in the driver process (llm.pool.actors: 0)")
    for d in cfg.datasets:
        lines.append(f"dataset {d.name} ({d.task}, {d.source}, schema {d.schema}): methods "
                     f"{', '.join(d.methods or cfg.chat.methods)}" + ("; spaCy reference" if d.spacy else ""))
    return lines


def plan_soap(cfg, resources: dict[str, float]) -> list[str]:
    p, e, lp = cfg.llm.pool, cfg.execution, cfg.loop
    lines = []
    if p.actors:
        n = fits(resources, p.num_cpus, p.num_gpus, "llm.pool.num_cpus", "llm.pool.num_gpus")
        lines.append(_actor_line(f"LLM actors ({cfg.llm.backend})", p.actors, p.num_cpus, p.num_gpus, n))
    if e.ray:
        m = fits(resources, e.num_cpus, 0.0, "execution.num_cpus", "execution.num_cpus")
        lines.append(_actor_line("sandboxed executions (Ray tasks)", f"{e.concurrency} in flight", e.num_cpus, 0.0, m))
    lines.append(f"starts {', '.join(lp.starts)}; feedback {', '.join(lp.feedback)}; {lp.iterations} iterations; "
                 f"sandbox isolation {cfg.sandbox.isolation}")
    return lines


def plan_halueval(cfg, resources: dict[str, float]) -> list[str]:
    lines = []
    for i, m in enumerate(cfg.models):
        if m.judge != "llm":
            lines.append(f"{m.name}: scripted {m.judge} judge (test instrument), in the driver")
            continue
        p = m.llm.pool
        if p.actors:
            n = fits(resources, p.num_cpus, p.num_gpus, f"models[{i}].llm.pool.num_cpus",
                     f"models[{i}].llm.pool.num_gpus")
            lines.append(_actor_line(f"{m.name} actors ({m.llm.backend}, one model load each)", p.actors,
                                     p.num_cpus, p.num_gpus, n))
        else:
            lines.append(f"{m.name}: {m.llm.backend} backend in the driver (pool.actors 0)")
    for d in cfg.datasets:
        lines.append(f"dataset {d.name}: {d.items or 'all'} items; evaluators {', '.join(d.evaluators)}")
    lines.append("models run one after another (each pool is shut down before the next starts)")
    return lines


def plan_unitable(cfg, resources: dict[str, float]) -> list[str]:
    d = cfg.data
    stages = (["tokenizer + masked pretraining"] if d.unlabelled else []) + \
        ["fine-tune pretrained", "fine-tune from scratch"] + (["content reader"] if cfg.content.enabled else [])
    return [_train_workers_line("each of: " + ", ".join(stages), cfg.train, resources, "train"),
            f"render {d.unlabelled} unlabelled + {d.labelled} labelled + {d.test} test tables (Ray Data, "
            f"{d.render_blocks} blocks); image {d.image_size} px; fine-tune {cfg.finetune.epochs} epochs per arm",
            "evaluate on the synthetic test set" + (" and PubTabNet" if d.pubtabnet_path else "")
            + (f"; rapid_table on {cfg.eval.peer_synthetic} synthetic tables" if cfg.eval.peer else "")]


# every plan_<job> above, found by name, so a new job's plan is exported without editing a list
__all__ = ["cluster_resources", "fits", "local_resources", "print_plan",
           *sorted(n for n in dir() if n.startswith("plan_"))]


def plan_specialize(cfg, resources: dict[str, float]) -> list[str]:
    """Every stage's own plan (plan_<job> above, for the job whose library code the stage calls),
    after the recipe's wiring is checked; a stage's request the cluster cannot meet names it."""
    from specialize.recipe import build_recipe, plan_recipe

    return plan_recipe(build_recipe(cfg), resources)[0]


__all__.append("plan_specialize")
