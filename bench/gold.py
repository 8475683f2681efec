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

from bench.report import BENCHMARKS, run_job, write_section
from core.config import load
from core.runs import markdown_table


def throughput(job, prompts: int = 16) -> list[list]:
    """New tokens per second of the job's hf teacher, one prompt at a time and batched."""
    import torch

    from core.llm.base import SamplingParams
    from core.llm.hf import HFBackend
    from distill.experiment import load_data
    from distill.prompts import generation_prompt

    teacher = job.gold.teacher
    if teacher.backend != "hf":
        raise SystemExit(f"gold.teacher.backend is {teacher.backend!r}; the throughput table is for 'hf'")
    task = load_data(job).task
    chats = [generation_prompt(task, i % len(task.label_names)) for i in range(prompts)]
    g = job.gold.generation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_k=g.top_k, top_p=g.top_p)
    rows = []
    for batch in sorted({1, teacher.hf.batch_size}):
        backend = HFBackend.from_config(teacher.hf.model, batch_size=batch)
        ids = [backend.encode_prompt(c) for c in chats]
        backend.generate_ids(ids[:batch], params, list(range(batch)))  # warm-up: first-call allocations
        torch.manual_seed(0)
        start = time.perf_counter()
        out = backend.generate_ids(ids, params, list(range(len(ids))))
        seconds = time.perf_counter() - start
        tokens = sum(len(r) for r in out)
        rows.append([batch, prompts, tokens, f"{seconds:.1f}", f"{tokens / seconds:.1f}",
                     f"{1000 * seconds / tokens:.0f}"])
        del backend
    return rows


def distribution(job, run: Path, seed: int = 0, judge_examples: int = 2000) -> tuple[list[list], float, float]:
    """The method spec's two spread measures in MiniLM space, per arm's final pool (subsampled to
    the smallest pool's size, so counts do not decide coverage), against a real training sample
    of the same size: mean distance from the seed examples' centroid, and coverage of the real
    test items. The radius is the median distance from a test item to its nearest neighbour in
    that real sample, so the real sample covers about half of the test set by construction.

    Two more columns measure label noise: how often a logistic regression on the MiniLM embeddings
    of `judge_examples` real training reviews (the judge) gives a pool sample the label the teacher
    was asked to write, and the test accuracy of a logistic regression trained on the pool itself.
    Returns (rows, radius, the judge's own test accuracy)."""
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
    return table, radius, judge_acc


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


def main() -> None:
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
    args = ap.parse_args()
    job = load(GoldJobConfig, args.config, args.set)
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    command = f"`.venv/bin/python -m bench.gold --config {args.config}{' ' + overrides if overrides else ''}`"

    tput = throughput(job)
    tput_table = markdown_table(["batch", "prompts", "new tokens", "seconds", "tokens/s", "ms/token"], tput)
    from core.models import resolve_device

    model = job.gold.teacher.hf.model
    tput_text = (f"Generation throughput of the `hf` backend ({model.name} on {resolve_device(model.device)}, "
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
    from distill.experiment import load_data

    test_labels = load_data(job).test[1]
    majority = max(test_labels.count(y) for y in set(test_labels)) / len(test_labels)
    png = BENCHMARKS.parent / "bench_gold.png"
    shutil.copyfile(run / "accuracy_vs_iteration.png", png)
    table = (run / "summary.md").read_text().split("\n\n", 2)[-1].split("![")[0].strip()
    gold, zerogen, teacher = acc.get("gold"), acc.get("zerogen"), acc.get("teacher_zero_shot")
    replicates, per_run = "", []
    if args.also_run:
        rows = []
        for r in [run, *map(Path, args.also_run)]:
            a = _accuracies(r)
            per_run.append(a)
            seed = load(GoldJobConfig, r / "config.yaml").gold.seed
            rows.append([seed, f"`{r}`", *(f"{a[m]:.4f}" if m in a else "-" for m in
                                           ("teacher_zero_shot", "gold", "zerogen", "real_data"))])
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
                      f"samples; each run by `python -m ray_jobs.gold --config {args.config} --set gold.seed=N`, this section by "
                      "`python -m bench.gold --from-run RUN --also-run RUN`; the targets below are judged on the mean "
                      "over these runs):\n\n"
                      + markdown_table(["gold.seed", "run", "teacher zero-shot", "GOLD", "ZeroGen", "upper bound"], rows)
                      + "\n")

    def verdict(a, b, name, key):
        if a is None or b is None:
            return f"- GOLD student beats {name}: not measured (arm missing from the config)"
        gaps = [100 * (r["gold"] - r[key]) for r in per_run]
        each = f"; per run: {', '.join(f'{g:+.1f}' for g in gaps)}" if gaps else ""
        mixed = " (the runs disagree in sign: not a robust result)" if gaps and min(gaps) < 0 < max(gaps) else ""
        return (f"- GOLD student beats {name}: **{'met' if a > b else 'missed'}**{mixed} "
                f"({a:.4f} vs {b:.4f}, {100 * (a - b):+.1f} points{each})")

    spread, radius, judge_acc = distribution(job, run)
    spread_table = markdown_table(["pool", "samples", "distance from the seed examples' centroid",
                                   "coverage of the real test items", "labels the judge agrees with",
                                   "test accuracy of a probe trained on the pool"], spread)
    clean_table = markdown_table(["arm", "trials", "generations", "malformed or echoing the request",
                                  "duplicates and near copies", "bad length", "dropped as energy noise"], cleaning(run))
    body = f"""## gold, `{args.config}`: OOD-guided generation and distillation

Command: {command} ({minutes:.0f} minutes on this machine for the job; run directory `{run}`).
Test accuracy on the first {job.data.max_test} examples of the real Rotten Tomatoes test split
(majority class: {majority:.4f}, so a student that predicts one label scores {majority:.4f} or {1 - majority:.4f}).

{table}

{replicates}
Targets, in the paper's direction (same generation budget for GOLD and ZeroGen):

{verdict(gold, zerogen, "ZeroGen", "zerogen")}
{verdict(gold, teacher, "the teacher's zero-shot accuracy", "teacher_zero_shot")}

![dev accuracy against iteration]({png.name})

How the generated data spreads, in MiniLM embedding space (the method spec's measures; each
pool subsampled to the same size; coverage radius {radius:.3f}, the median distance from a test
item to its nearest neighbour in the real training sample). The fifth column is a label-noise
measure: the share of samples to which a judge, a logistic regression on the embeddings of 2,000
real training reviews ({judge_acc:.3f} on the test set), gives the label the teacher was asked for;
the sixth, the test accuracy of a logistic regression trained on the pool's own samples and labels:

{spread_table}

What the cleaning did to the teacher's generations (all trials of each arm, run `{run.name}`):

{clean_table}

{tput_text}"""
    write_section("gold", body)
    print(body)


if __name__ == "__main__":
    main()
