"""GOLD against ZeroGen, the teacher's zero-shot accuracy and the real-data student, plus the
`hf` backend's generation throughput at batch 1 and at the configured batch.

Runs the GOLD job (configs/gold/laptop.yaml unless --config) as a fresh process, then times the
teacher on the job's own generation prompts, and writes the `gold` section of BENCHMARKS.md.

    .venv/bin/python -m bench.gold
    .venv/bin/python -m bench.gold --throughput-only   # just the tokens/s table
    .venv/bin/python -m bench.gold --from-run runs/bench-gold/<stamp>/gold/<run>   # rewrite from a finished run
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from bench.report import BENCHMARKS, run_job, section_for, write_section
from core.config import load
from core.runs import markdown_table


def section_name(job, config: str) -> str:
    """The BENCHMARKS.md section: the config's, with its own section for the control that keeps the
    energy noise in GOLD's pool (gold.filter.drop=false), and for a generation budget other than
    the config's (gold.iterations), so that neither ever overwrites the method's numbers."""
    from distill.experiment import GoldJobConfig

    name = section_for("gold", config) + ("" if job.gold.filter.drop else "_noise_in_pool")
    if job.gold.iterations != load(GoldJobConfig, config).gold.iterations:
        name += f"_{job.gold.iterations}_iterations"
    return name


# What makes a run belong to one section rather than another (see section_name).
SECTION_KEYS = ("gold.filter.drop", "gold.iterations")


def check_same_method(job, runs) -> None:
    """Exit with a clear message when a finished run was made with another gold.filter.drop or
    gold.iterations than the section being written: its numbers belong to another section."""
    from distill.experiment import GoldJobConfig

    def value(cfg, key):
        for part in key.split("."):
            cfg = getattr(cfg, part)
        return str(cfg).lower()

    for r in runs:
        ran = load(GoldJobConfig, Path(r) / "config.yaml")
        for key in SECTION_KEYS:
            if value(ran, key) != value(job, key):
                raise SystemExit(f"{r}: run with {key}={value(ran, key)}, but this section is for "
                                 f"{key}={value(job, key)}; pass --set {key}={value(ran, key)} to write "
                                 "that run's section")


def throughput(job, prompts: int = 16) -> list[list]:
    """New tokens per second of the job's teacher (hf or llamacpp), one request at a time and at
    its configured concurrency (hf: batch_size; llamacpp: parallel slots), on the job's own prompts."""
    import dataclasses

    import torch

    from core.llm.base import SamplingParams
    from distill.experiment import load_data
    from distill.prompts import generation_prompt

    teacher = job.gold.teacher
    if teacher.backend == "hf":
        from core.llm.hf import HFBackend

        sizes = sorted({1, teacher.hf.batch_size})
        def make(n):
            return HFBackend.from_config(teacher.hf.model, batch_size=n)
    elif teacher.backend == "llamacpp":
        from core.llm.llamacpp import LlamaCppBackend

        c = teacher.llamacpp
        sizes = sorted({1, c.parallel})
        def make(n):
            return LlamaCppBackend.from_config(dataclasses.replace(c, parallel=n, ctx=max(c.ctx, 512 * n)))
    else:
        raise SystemExit(f"gold.teacher.backend is {teacher.backend!r}; the throughput table is for hf and llamacpp")
    task = load_data(job).task
    chats = [generation_prompt(task, i % len(task.label_names)) for i in range(prompts)]
    g = job.gold.generation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_k=g.top_k, top_p=g.top_p)
    rows = []
    for n in sizes:
        start = time.perf_counter()
        backend = make(n)
        load_s = time.perf_counter() - start
        backend.generate(chats[:n], params, list(range(n)))  # warm-up: first-call allocations
        torch.manual_seed(0)
        start = time.perf_counter()
        out = backend.generate(chats, params, list(range(len(chats))))
        seconds = time.perf_counter() - start
        tokens = sum(len(backend.encode_continuation(t)) for t in out if t)
        rows.append([n, f"{load_s:.1f}", prompts, tokens, f"{seconds:.1f}", f"{tokens / seconds:.1f}",
                     f"{1000 * seconds / tokens:.0f}"])
        close = getattr(backend, "close", None)
        if close:
            close()
        del backend
    return rows


def distribution(job, run: Path, seed: int = 0, judge_examples: int = 2000) -> tuple[list[list], float, float, list[list]]:
    """The method spec's two spread measures in MiniLM space, per arm's final pool (subsampled to
    the smallest pool's size, so counts do not decide coverage), against a real training sample
    of the same size: mean distance from the seed examples' centroid, and coverage of the real
    test items. The radius is the median distance from a test item to its nearest neighbour in
    that real sample, so the real sample covers about half of the test set by construction.

    Two more columns measure label noise: how often a logistic regression on the MiniLM embeddings
    of `judge_examples` real training reviews (the judge) gives a pool sample the label the teacher
    was asked to write, and the test accuracy of a logistic regression trained on the pool itself.
    Returns (rows, radius, the judge's own test accuracy, judge_by_source's table over the whole
    of each final pool)."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from core.encoders import Embedder
    from distill.distribution import centroid_distance, coverage, nearest_distance
    from distill.experiment import load_data

    data = load_data(job)
    rows = [json.loads(x) for x in (run / "generated.jsonl").read_text().splitlines() if x.strip()]
    pools = {arm: [(r["text"], r["label"]) for r in rows if r["arm"] == arm] for arm in dict.fromkeys(r["arm"] for r in rows)}
    n = min(len(p) for p in pools.values())
    rng = np.random.default_rng(seed)
    seen = {e.text for e in data.task.examples} | set(data.dev[0])
    real_pool = [(t, int(y)) for t, y in zip(data.train.texts, data.train.labels) if t not in seen]
    pools = {arm: [p[i] for i in sorted(rng.choice(len(p), n, replace=False))] for arm, p in pools.items()}
    order = rng.permutation(len(real_pool))
    pools["real training sample"] = [real_pool[i] for i in order[:n]]
    judge_set = [real_pool[i] for i in order[n:n + judge_examples]]
    emb = Embedder("minilm", job.gold.student.model.max_length)

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([emb.embed(texts[lo:lo + 64]) for lo in range(0, len(texts), 64)]))

    seeds, test = embed([e.text for e in data.task.examples]), embed(data.test[0])
    def probe(x: torch.Tensor, y: list[int]) -> LogisticRegression:
        return LogisticRegression(C=10.0, max_iter=2000).fit(x.numpy(), y)

    judge = probe(embed([t for t, _ in judge_set]), [y for _, y in judge_set])
    judge_acc = float((judge.predict(test.numpy()) == np.asarray(data.test[1])).mean())
    vectors = {arm: embed([t for t, _ in p]) for arm, p in pools.items()}
    radius = float(nearest_distance(test, vectors["real training sample"]).median())

    def learnt(arm: str) -> float:
        """Test accuracy of a probe trained on the pool itself: how much label the pool carries."""
        own = probe(vectors[arm], [y for _, y in pools[arm]])
        return float((own.predict(test.numpy()) == np.asarray(data.test[1])).mean())

    table = [[arm, n, f"{centroid_distance(v, seeds):.3f}", f"{coverage(test, v, radius):.3f}",
              f"{(judge.predict(v.numpy()) == np.asarray([y for _, y in pools[arm]])).mean():.3f}", f"{learnt(arm):.3f}"]
             for arm, v in vectors.items()]
    said = judge.predict(embed([r["text"] for r in rows]).numpy())
    by_source = judge_by_source(rows, [bool(a == r["label"]) for a, r in zip(said, rows)], job.gold.iterations,
                                job.gold.filter.noise, frozenset({"gold"} if job.gold.filter.drop else ()))
    return table, radius, judge_acc, by_source


def judge_by_source(rows: list[dict], agrees: list[bool], iterations: int, noise: float,
                    already_cut: frozenset[str] = frozenset()) -> list[list]:
    """Where a pool's label noise comes from: the share of samples the judge gives the label the
    teacher was asked for, per arm, by source. Plain samples by thirds of the iterations (does
    feedback make later samples noisier?), OOD probes, and, over every batch that has energies,
    the ranks the noise cut takes (energy.noise_keep_mask, the top `noise` share of the batch)
    against the rest (is what the cut drops the mislabelled part?). `rows` are generated.jsonl's
    (arm, kind, iteration, energy); `agrees[i]` is the judge's verdict on rows[i]. Arms in
    `already_cut` lost those ranks before their pool was saved, so they get no such split."""
    import torch

    from distill.energy import noise_keep_mask

    thirds = [[i for i in range(iterations) if i * 3 // iterations == b] for b in range(3)]
    thirds = [t for t in thirds if t]
    sources = [f"plain samples, iterations {t[0]}-{t[-1]}" for t in thirds]
    cut, rest = f"top {noise:.0%} energy of its batch (what the cut drops)", "the rest of its batch"
    sources += ["OOD probes", cut, rest]
    groups: dict[tuple[str, str], list[bool]] = {}
    batches: dict[tuple[str, int, str], list[tuple[float, bool]]] = {}
    for r, ok in zip(rows, agrees):
        arm, it = r["arm"], int(r["iteration"])
        if r["kind"] == "probe":
            groups.setdefault((arm, "OOD probes"), []).append(ok)
        else:
            third = next(i for i, t in enumerate(thirds) if it in t)
            groups.setdefault((arm, sources[third]), []).append(ok)
        if r.get("energy") is not None and arm not in already_cut:
            batches.setdefault((arm, it, r["kind"]), []).append((float(r["energy"]), ok))
    for (arm, _, _), batch in batches.items():
        keep = noise_keep_mask(torch.tensor([e for e, _ in batch]), noise).tolist()
        for (_, ok), k in zip(batch, keep):
            groups.setdefault((arm, rest if k else cut), []).append(ok)
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    return [[arm, src, len(groups[arm, src]), sum(groups[arm, src])]
            for arm in arms for src in sources if groups.get((arm, src))]


def by_source_table(per_run: list[list[list]]) -> str:
    """judge_by_source's rows of one or more runs (seeds) as one table: per seed and pooled."""
    keys = list(dict.fromkeys((arm, src) for rows in per_run for arm, src, *_ in rows))
    found = [{(arm, src): (n, ok) for arm, src, n, ok in rows} for rows in per_run]
    table = []
    for k in keys:
        cells = [f.get(k) for f in found]
        n, ok = sum(c[0] for c in cells if c), sum(c[1] for c in cells if c)
        table.append([*k, " / ".join(str(c[0]) if c else "-" for c in cells),
                      " / ".join(f"{c[1] / c[0]:.3f}" if c else "-" for c in cells), f"{ok / n:.3f}"])
    return markdown_table(["arm", "source", "samples", "labels the judge agrees with", "all runs together"], table)


def cleaning(run: Path) -> list[list]:
    """What the cleaning did to every generation of each arm, summed over its Tune trials'
    per-iteration metrics: malformed (no sample, or a reply about the request), duplicates
    (exact or near copies), bad lengths, and dropped as energy noise."""
    import csv

    rows = []
    for arm_dir in sorted(p for p in (run / "tune").iterdir() if p.is_dir()):
        total = dict.fromkeys(("generated", "malformed", "duplicate", "bad_length", "filtered"), 0.0)
        trials = sorted(arm_dir.glob("*/progress.csv"))
        for f in trials:
            with f.open() as fh:
                for r in csv.DictReader(fh):
                    for k in total:
                        total[k] += float(r[k])
        g = max(total["generated"], 1.0)
        rows.append([arm_dir.name, len(trials), int(total["generated"]),
                     *(f"{int(total[k])} ({total[k] / g:.0%})" for k in ("malformed", "duplicate", "bad_length", "filtered"))])
    return rows


def _accuracies(run: Path) -> dict[str, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["model"]: float(r["test_accuracy"]) for r in rows if "test_accuracy" in r and "model" in r}


def with_teacher(acc: dict[str, float], teacher_run: Path) -> str:
    """Fill acc's teacher_zero_shot, when its run skipped it, from another run of the same config
    (the zero-shot prompt has no examples and the test items are the same). Returns the sentence
    that says where the number came from."""
    measured = _accuracies(teacher_run).get("teacher_zero_shot")
    if measured is None:
        raise SystemExit(f"--teacher-run {teacher_run}: its metrics.jsonl has no teacher_zero_shot row")
    if "teacher_zero_shot" in acc:
        return ""
    acc["teacher_zero_shot"] = measured
    return f"The teacher's zero-shot accuracy ({measured:.4f}) is from run `{teacher_run}`.\n"


def _pools(run: Path) -> dict[str, int]:
    """Each final student's training-pool size, by model key (as _accuracies)."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["model"]: int(r["pool"]) for r in rows if "pool" in r and "model" in r}


def cut_comparison(kept: list[Path], cut: list[Path], students: list[str]) -> str:
    """The equal-sample control beside the method: per student encoder, GOLD with the noise cut
    (runs `cut`), GOLD with the noise kept in its pool and ZeroGen (runs `kept`), seed by seed
    (the runs are paired by gold.seed) and on average, with each pool's size."""
    from distill.experiment import GoldJobConfig

    def by_seed(runs):
        return {load(GoldJobConfig, r / "config.yaml").gold.seed: r for r in runs}

    k, c = by_seed(kept), by_seed(cut)
    if sorted(k) != sorted(c):
        raise SystemExit(f"--cut-run: seeds {sorted(c)} do not match the runs' seeds {sorted(k)}")
    seeds = sorted(k)
    rows = []
    for i, enc in enumerate(students):
        tag = "" if i == 0 else f"@{enc}"
        for name, runs, key in (("GOLD, noise cut (the method)", c, "gold"), ("GOLD, noise kept in the pool", k, "gold"),
                                ("ZeroGen", k, "zerogen")):
            acc = [_accuracies(runs[s]).get(key + tag) for s in seeds]
            pool = [_pools(runs[s]).get(key + tag) for s in seeds]
            if None in acc:
                raise SystemExit(f"--cut-run: no {key + tag} student in {[str(runs[s]) for s in seeds]}")
            rows.append([enc, name, " / ".join(f"{a:.3f}" for a in acc), f"{sum(acc) / len(acc):.4f}",
                         " / ".join(str(p) for p in pool)])
    return (f"GOLD with and without the noise cut, against ZeroGen (seeds {', '.join(map(str, seeds))}; ZeroGen's "
            "arm does not depend on gold.filter.drop, so the cut runs may run GOLD alone, `--set arms=[gold]`; "
            "cut runs: " + ", ".join(f"`{c[s]}`" for s in seeds) + "):\n\n"
            + markdown_table(["student encoder", "arm", "test accuracy per seed", "mean", "training samples"], rows) + "\n\n")


def student_gaps(per_run: list[dict[str, float]], main_student: str, also: list[str]) -> str:
    """Per student encoder, the mean (over runs) of each arm's student and the real-data student,
    each beside its gap to the teacher's zero-shot accuracy: how much of the teacher a student of
    that size can take, from generated and from real data."""
    def mean(key: str) -> float | None:
        vals = [a[key] for a in per_run if key in a]
        return sum(vals) / len(vals) if vals else None

    teacher = mean("teacher_zero_shot")
    rows = []
    for enc in [None, *also]:
        tag = "" if enc is None else f"@{enc}"
        cells = []
        for key in ("gold", "zerogen", "real_data"):
            v = mean(key + tag)
            gap = f" ({100 * (v - teacher):+.1f})" if v is not None and teacher is not None else ""
            cells.append("-" if v is None else f"{v:.4f}{gap}")
        rows.append([enc or main_student, *cells])
    head = (f"Each student against the teacher (zero-shot {teacher:.4f}; in brackets, points from it), mean "
            f"over {len(per_run)} run(s):\n\n") if teacher is not None else ""
    return head + markdown_table(["student encoder", "GOLD student", "ZeroGen student",
                                  "student on real data (upper bound)"], rows) + "\n"


def verdict(a: float | None, b: float | None, name: str, key: str, per_run: list[dict[str, float]]) -> str:
    """One target line: GOLD's mean `a` against `b` (the mean of `key`), with each run's gap."""
    if a is None or b is None:
        why = ("the runs skipped the teacher (zero_shot_examples: 0) and no --teacher-run was given"
               if key == "teacher_zero_shot" and a is not None else "arm missing from the config (`arms`)")
        return f"- GOLD student beats {name}: not measured ({why})"
    gaps = [100 * (r["gold"] - r[key]) for r in per_run]
    each = f"; per run: {', '.join(f'{g:+.1f}' for g in gaps)}" if gaps else ""
    mixed = " (the runs disagree in sign: not a robust result)" if gaps and min(gaps) < 0 < max(gaps) else ""
    return (f"- GOLD student beats {name}: **{'met' if a > b else 'missed'}**{mixed} "
            f"({a:.4f} vs {b:.4f}, {100 * (a - b):+.1f} points{each})")


def main(argv: list[str] | None = None) -> None:
    from distill.experiment import GoldJobConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/gold/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench-gold")
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--from-run", metavar="DIR", help="a finished run of the job: rebuild the section from it")
    ap.add_argument("--also-run", action="append", default=[], metavar="DIR",
                    help="finished runs of the same config with another gold.seed: a replicate table, "
                         "and the targets judged on the mean over all runs")
    ap.add_argument("--teacher-run", metavar="DIR",
                    help="a run of the same config whose teacher_zero_shot to use, when the runs above skipped it "
                         "(zero_shot_examples=0): the zero-shot prompt has no examples and the test items are the same")
    ap.add_argument("--cut-run", action="append", default=[], metavar="DIR",
                    help="with --set gold.filter.drop=false: runs of the same seeds with the noise cut "
                         "(gold.filter.drop=true), shown beside the runs above")
    ap.add_argument("--note", default="", help="a line for the section, e.g. that the cores were shared")
    args = ap.parse_args(argv)
    job = load(GoldJobConfig, args.config, args.set)
    # runs of the other setting belong to the other section: refuse them before any teacher is timed
    if args.cut_run:
        if job.gold.filter.drop or not args.from_run:
            raise SystemExit("--cut-run compares finished runs made with --set gold.filter.drop=false "
                             "(--from-run, --also-run) against runs with the cut: give both, and that --set")
        check_same_method(load(GoldJobConfig, args.config, [*args.set, "gold.filter.drop=true"]), args.cut_run)
    if args.from_run:
        check_same_method(job, [args.from_run, *args.also_run])
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    command = f"`.venv/bin/python -m bench.gold --config {args.config}{' ' + overrides if overrides else ''}`"
    if args.from_run:  # the section was written from finished runs: say how, not how bench.gold runs the job
        import sys

        shown = list(sys.argv[1:] if argv is None else argv)
        if "--note" in shown:  # printed below the command
            del shown[shown.index("--note"):shown.index("--note") + 2]
        command = "`.venv/bin/python -m bench.gold " + " ".join(shown) + "`"

    tput = throughput(job)
    t = job.gold.teacher
    tput_table = markdown_table([("batch" if t.backend == "hf" else "parallel requests (slots)"), "load s", "prompts",
                                 "new tokens", "seconds", "tokens/s", "ms/token"], tput)
    where = (f"{t.llamacpp.threads} thread(s) per server" if t.backend == "llamacpp"
             else f"device {t.hf.model.device}")
    tput_text = (f"Generation throughput of the teacher ({t.model_name()}, `{t.backend}` backend, {where}, "
                 f"{job.gold.generation.max_new_tokens} new tokens at most, temperature "
                 f"{job.gold.generation.temperature}, the job's own generation prompts):\n\n{tput_table}\n")
    if args.throughput_only:
        print(tput_text)
        return

    if args.from_run:
        run = Path(args.from_run)
        first = (run / "config.yaml").stat().st_mtime
        minutes = ((run / "summary.md").stat().st_mtime - first) / 60
    else:
        run, minutes = run_job("gold", args.config, args.set, args.out)
    acc = _accuracies(run)
    teacher_from = with_teacher(acc, Path(args.teacher_run)) if args.teacher_run else ""
    from distill.experiment import load_data

    test_labels = load_data(job).test[1]
    majority = max(test_labels.count(y) for y in set(test_labels)) / len(test_labels)
    png = BENCHMARKS.parent / f"bench_{section_name(job, args.config)}.png"  # bench_gold.png for the laptop config
    shutil.copyfile(run / "accuracy_vs_iteration.png", png)
    table = (run / "summary.md").read_text().split("\n\n", 2)[-1].split("![")[0].strip()
    gold, zerogen, teacher = acc.get("gold"), acc.get("zerogen"), acc.get("teacher_zero_shot")
    replicates, per_run = "", [acc]
    tags = ["", *(f"@{e}" for e in job.also_students)]
    metric_keys = ["teacher_zero_shot", *(f"{m}{t}" for t in tags for m in ("gold", "zerogen", "real_data"))]
    if args.also_run:
        per_run = []
        rows = []
        for r in [run, *map(Path, args.also_run)]:
            a = acc if r == run else _accuracies(r)
            per_run.append(a)
            seed = load(GoldJobConfig, r / "config.yaml").gold.seed
            rows.append([seed, f"`{r}`", *(f"{a[m]:.4f}" if m in a else "-" for m in metric_keys)])
        mean = {m: sum(a[m] for a in per_run) / len(per_run) for m in ("gold", "zerogen")
                if all(m in a for a in per_run)}
        # The teacher's zero-shot prompt has no examples and the test items are the same, so it does
        # not depend on gold.seed: replicates may skip it (zero_shot_examples=0) and use the others'.
        zs = [a["teacher_zero_shot"] for a in per_run if "teacher_zero_shot" in a]
        if zs:
            mean["teacher_zero_shot"] = sum(zs) / len(zs)
            for a in per_run:
                a.setdefault("teacher_zero_shot", mean["teacher_zero_shot"])
        gold, zerogen, teacher = mean.get("gold"), mean.get("zerogen"), mean.get("teacher_zero_shot")
        replicates = ("Replicates (the same config with another `gold.seed`: other seed examples, dev split and "
                      f"samples; each run by `python -m ray_jobs.gold --config {args.config} --set gold.seed=N"
                      f"{''.join(' --set ' + kv for kv in args.set)}`, this section by "
                      "`python -m bench.gold --from-run RUN --also-run RUN` with the same `--set`s; the targets below "
                      "are judged on the mean "
                      "over these runs):\n\n"
                      + markdown_table(["gold.seed", "run", *metric_keys], rows)
                      + "\n")

    spread, radius, judge_acc, by_source = distribution(job, run)
    by_source = [by_source, *(distribution(load(GoldJobConfig, Path(r) / "config.yaml"), Path(r))[3]
                              for r in args.also_run)]
    spread_table = markdown_table(["pool", "samples", "distance from the seed examples' centroid",
                                   "coverage of the real test items", "labels the judge agrees with",
                                   "test accuracy of a probe trained on the pool"], spread)
    clean_table = markdown_table(["arm", "trials", "generations", "malformed or echoing the request",
                                  "duplicates and near copies", "bad length", "dropped as energy noise"], cleaning(run))
    cut_text = (cut_comparison([run, *map(Path, args.also_run)], list(map(Path, args.cut_run)),
                               [job.gold.student.model.name, *job.also_students]) if args.cut_run else "")
    control = "" if job.gold.filter.drop else ", energy noise kept in GOLD's pool (`gold.filter.drop=false`)"
    if section_name(job, args.config).endswith("_iterations"):
        control += f", {job.gold.iterations} iterations (`gold.iterations={job.gold.iterations}`)"
    body = f"""## gold, `{args.config}`: OOD-guided generation and distillation (teacher {job.gold.teacher.model_name()} on `{job.gold.teacher.backend}`{control})

Command: {command} ({minutes:.0f} minutes on this machine for the job; run directory `{run}`).
{args.note}
{teacher_from}Test accuracy on the first {job.data.max_test} examples of the real Rotten Tomatoes test split
(majority class: {majority:.4f}, so a student that predicts one label scores {majority:.4f} or {1 - majority:.4f}).

{table}

{replicates}
{student_gaps(per_run, job.gold.student.model.name, job.also_students)}
{cut_text}Targets, in the paper's direction (same generation budget for GOLD and ZeroGen):

{verdict(gold, zerogen, "ZeroGen", "zerogen", per_run)}
{verdict(gold, teacher, "the teacher's zero-shot accuracy", "teacher_zero_shot", per_run)}

![dev accuracy against iteration]({png.name})

How the generated data spreads, in MiniLM embedding space (the method spec's measures; each
pool subsampled to the same size; coverage radius {radius:.3f}, the median distance from a test
item to its nearest neighbour in the real training sample). The fifth column is a label-noise
measure: the share of samples to which a judge, a logistic regression on the embeddings of 2,000
real training reviews ({judge_acc:.3f} on the test set), gives the label the teacher was asked for;
the sixth, the test accuracy of a logistic regression trained on the pool's own samples and labels:

{spread_table}

The same kind of judge over the whole of each final pool, by where the samples came from (per
run, in the order of the replicate table, each run's judge from its own config; noise cut
{job.gold.filter.noise:.0%}; `gold.filter.drop={str(job.gold.filter.drop).lower()}`, so
{"the cut's ranks are not in GOLD's pool, which gets no such rows" if job.gold.filter.drop else "the cut's ranks are in GOLD's pool"}; ZeroGen's arm
never cuts, and its row shows what the cut would take):

{by_source_table(by_source)}

What the cleaning did to the teacher's generations (all trials of each arm, run `{run.name}`):

{clean_table}

{tput_text}"""
    write_section(section_name(job, args.config), body, command=command.strip("`"))
    print(body)


if __name__ == "__main__":
    main()
