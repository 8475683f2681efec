"""How much label a GOLD teacher carries, before any GOLD run: its zero-shot accuracy on real test
reviews (label log-likelihood, `score`), and how often a judge agrees with the label it was asked
to write in reviews it generates (`generate`), on the job's own prompts.

The judge is a logistic regression on MiniLM embeddings of 2,000 real training reviews. The teacher
is any `gold.teacher` (hf, llamacpp or openai); results print as they come, so a run cut short by
--budget-s still reports what it measured.

    .venv/bin/python -m bench.teacher_labels --config configs/gold/laptop.yaml --examples 60 --samples 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.report import section_for, write_section
from core.config import load
from core.runs import markdown_table


def main() -> None:
    from core.encoders import Embedder
    from core.llm import local_backend
    from core.llm.base import SamplingParams
    from distill.experiment import GoldJobConfig, load_data
    from distill.generate import zero_shot_predict
    from distill.prompts import generation_prompt, parse_sample

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/gold/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--examples", type=int, default=100, help="test reviews the teacher labels zero-shot")
    ap.add_argument("--samples", type=int, default=20, help="reviews generated (half per label)")
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting new chunks after this long")
    ap.add_argument("--judge-examples", type=int, default=2000, help="real training reviews the judge learns from")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    job = load(GoldJobConfig, args.config, args.set)
    t = job.gold.teacher
    data = load_data(job)
    task = data.task
    start = time.perf_counter()
    backend = local_backend(t, "gold.teacher")
    load_s = time.perf_counter() - start

    texts, labels = data.test[0][: args.examples], data.test[1][: args.examples]
    right, seen, zs_s = 0, 0, 0.0
    for lo in range(0, len(texts), args.chunk):
        if time.perf_counter() - start > args.budget_s:
            break
        t0 = time.perf_counter()
        pred = zero_shot_predict(backend, task, texts[lo:lo + args.chunk]).tolist()
        zs_s += time.perf_counter() - t0
        right += sum(int(p == y) for p, y in zip(pred, labels[lo:lo + args.chunk]))
        seen += len(pred)
        print(f"zero-shot {right}/{seen} = {right / seen:.3f} ({zs_s:.0f} s)", flush=True)

    g = job.gold.generation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_k=g.top_k, top_p=g.top_p)
    asked, samples, gen_s = [], [], 0.0
    for lo in range(0, args.samples, args.chunk):
        if time.perf_counter() - start > args.budget_s:
            break
        want = [i % task.num_labels for i in range(lo, min(lo + args.chunk, args.samples))]
        t0 = time.perf_counter()
        raw = backend.generate([generation_prompt(task, y) for y in want], params,
                               [job.gold.seed * 100_003 + lo + i for i in range(len(want))])
        gen_s += time.perf_counter() - t0
        for y, r in zip(want, raw):
            s = parse_sample(r, [task.sample_noun], task.label_names)
            if s:
                asked.append(y)
                samples.append(s)
        print(f"generated {lo + len(want)} ({len(samples)} usable, {gen_s:.0f} s)", flush=True)
    close = getattr(backend, "close", None)
    if close:
        close()

    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    seen_texts = {e.text for e in task.examples} | set(data.dev[0])
    pool = [i for i in rng.permutation(len(data.train)) if data.train.texts[i] not in seen_texts][:args.judge_examples]
    emb = Embedder("minilm", job.gold.student.model.max_length)
    x = np.concatenate([emb.embed([data.train.texts[i] for i in pool[lo:lo + 64]]) for lo in range(0, len(pool), 64)])
    judge = LogisticRegression(C=10.0, max_iter=2000).fit(x, [int(data.train.labels[i]) for i in pool])
    n_test = min(500, args.judge_examples)
    judge_test = float((judge.predict(emb.embed(data.test[0][:n_test])) == np.asarray(data.test[1][:n_test])).mean())
    agree = float((judge.predict(emb.embed(samples)) == np.asarray(asked)).mean()) if samples else float("nan")

    rows = [["zero-shot accuracy on real test reviews", f"{right / seen:.3f}" if seen else "not run", f"{seen} reviews",
             f"{zs_s:.0f} s"],
            ["judge agrees with the asked label, generated reviews", f"{agree:.3f}",
             f"{len(samples)} usable of {len(asked) if samples else 0}", f"{gen_s:.0f} s"]]
    body = f"""## teacher labels, `{args.config}`: {t.model_name()} on `{t.backend}`

{args.note}
Server/model load {load_s:.0f} s. The judge: logistic regression on MiniLM embeddings of {len(pool):,} real training
reviews ({judge_test:.3f} on {n_test} test reviews). Labels named {", ".join(task.label_names)}.

{markdown_table(["measure", "value", "on", "time"], rows)}

Examples of what it wrote: {" | ".join(f"[{task.label_names[y]}] {s[:120]}" for y, s in list(zip(asked, samples))[:4])}
"""
    tag = t.model_name().replace("/", "_")
    write_section(section_for(f"teacher_labels_{tag}", args.config), body)
    print(body)


if __name__ == "__main__":
    main()
