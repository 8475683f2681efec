"""Do the retrieved neighbours carry the label? Logistic regressions on frozen MiniLM embeddings
of each seed's few-shot training split, scored on the test split: the text alone, the mean of
its k neighbours alone, and the two joined (concatenated, summed).

If the neighbours alone sit at the majority rate and joining them does not raise the probe,
fusing them into the encoder has nothing to add, whatever the fusion module.

    .venv/bin/python -m bench.refusion_probe   # corpus and neighbours from the ReFusion config's caches
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.report import section_for, write_section
from core.config import load
from core.runs import markdown_table


def probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=10.0, max_iter=2000).fit(x_train, y_train)
    return float((clf.predict(x_test) == y_test).mean())


def main() -> None:
    from core.data import few_shot
    from core.encoders import Embedder
    from retrieval.experiment import RefusionConfig, prepare

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/refusion/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--section", help="the BENCHMARKS.md section to write (default: refusion_probe, or "
                                      "refusion_probe_<config stem>); name one when --set changes the data")
    args = ap.parse_args()
    cfg = load(RefusionConfig, args.config, args.set)
    with tempfile.TemporaryDirectory() as cache:
        prep = prepare(cfg, Path(cache))
    emb = Embedder(cfg.corpus.encoder, cfg.model.max_length)
    x_test = emb.embed(prep.test.texts)
    z_test = prep.corpus_embeddings[prep.test_neighbours].mean(1)
    where = {t: i for i, t in enumerate(prep.train_pool.texts)}
    features = {"text": lambda x, z: x, "neighbours": lambda x, z: z,
                "text and neighbours, concatenated": lambda x, z: np.hstack([x, z]),
                "text + neighbours, summed": lambda x, z: x + z}
    scores: dict[str, list[float]] = {name: [] for name in features}
    for seed in cfg.seeds:
        train, _ = few_shot(prep.train_full, cfg.per_class, seed)
        x = emb.embed(train.texts)
        z = prep.corpus_embeddings[prep.train_neighbours[[where[t] for t in train.texts]]].mean(1)
        for name, f in features.items():
            scores[name].append(probe_accuracy(f(x, z), train.labels, f(x_test, z_test), prep.test.labels))
    majority = float(np.bincount(prep.test.labels).max() / len(prep.test.labels))
    rows = [[name, f"{np.mean(s):.3f} ± {np.std(s):.3f}", " ".join(f"{v:.3f}" for v in s)] for name, s in scores.items()]
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    body = f"""## refusion, `{args.config}`: do the retrieved neighbours carry the label?

Command: `.venv/bin/python -m bench.refusion_probe --config {args.config}{' ' + overrides if overrides else ''}{' --section ' + args.section if args.section else ''}`.
Data {cfg.data.name}. Logistic regression (C = 10) on frozen {cfg.corpus.encoder} embeddings of each seed's {cfg.per_class}-per-class
training split, scored on the {len(prep.test.labels)} test examples (majority rate {majority:.3f}); "neighbours" is
the mean embedding of the k = {cfg.k} retrieved corpus sentences.

{markdown_table(["features", "test accuracy (mean ± std over seeds)", "per seed " + " ".join(map(str, cfg.seeds))], rows)}
"""
    write_section(args.section or section_for("refusion_probe", args.config), body)
    print(body)


if __name__ == "__main__":
    main()
