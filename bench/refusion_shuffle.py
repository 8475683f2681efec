"""Does a trained ReFusion model use what it retrieves? Each seed's ReFusion arm is trained as the
job trains it, then scored on the test set three ways: with each example's own neighbours, with
another test example's neighbours (a seeded derangement), and with no retrieval at all (the same
weights, fusion off). If the three agree, the fused neighbours' content does not decide a prediction.

    .venv/bin/python -m bench.refusion_shuffle --config configs/refusion/in_domain.yaml
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.report import section_for, write_section
from core.config import load
from core.runs import markdown_table


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation of range(n) with no fixed point: every example gets another's neighbours."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    cycle = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[cycle] = np.roll(cycle, -1)  # each item -> the one after it on a random cycle through all n
    return out


def main() -> None:
    from tqdm import tqdm

    from retrieval.experiment import RefusionConfig, prepare, train_model
    from retrieval.train import predict

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/refusion/in_domain.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--section", help="the BENCHMARKS.md section to write (default: refusion_shuffle, or "
                                      "refusion_shuffle_<config stem>)")
    args = ap.parse_args()
    cfg = load(RefusionConfig, args.config, args.set)
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(cfg, Path(tmp))
    scores: dict[str, list[float]] = {"own neighbours": [], "another example's neighbours": [], "no retrieval": []}
    changed, chosen = [], Counter()
    for seed in tqdm(cfg.seeds, desc="refusion_shuffle"):
        model, _, test = train_model(cfg, prep, "refusion", seed, cfg.fit.lr)
        chosen.update(model.integrator.choices().values())
        shuffled = replace(test, z=test.z[torch.from_numpy(derangement(len(test), seed))])
        unfused = replace(test, z=None)
        preds = [predict(model, data) for data in (test, shuffled, unfused)]  # eval is deterministic
        for name, p in zip(scores, preds):
            scores[name].append(float((p == test.labels).float().mean()))
        changed.append(float((preds[0] != preds[1]).float().mean()))
    rows = [[name, f"{statistics.mean(s):.3f} ± {statistics.pstdev(s):.3f}", " ".join(f"{v:.3f}" for v in s)]
            for name, s in scores.items()]
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    body = f"""## refusion, `{args.config}`: does the trained model use its neighbours?

Command: `.venv/bin/python -m bench.refusion_shuffle --config {args.config}{' ' + overrides if overrides else ''}{' --section ' + args.section if args.section else ''}`.
Each seed's ReFusion arm ({cfg.fit.steps} weight updates, {cfg.fit.search_steps} of them in the search; corpus
{', '.join(s.name for s in cfg.corpus.sources)}, k = {cfg.k}), scored on the {len(prep.test.labels)} test examples with the
same weights and different retrievals. Shuffling changes {statistics.mean(changed):.1%} of the predictions
(mean over seeds). The searches kept: {', '.join(f'{c} at {n}' for c, n in chosen.most_common())} of the
{sum(chosen.values())} module-seed slots.

{markdown_table(["retrievals at test time", "test accuracy (mean ± std)", "per seed " + " ".join(map(str, cfg.seeds))], rows)}
"""
    write_section(args.section or section_for("refusion_shuffle", args.config), body)
    print(body)


if __name__ == "__main__":
    main()
