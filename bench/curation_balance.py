"""The curation paper's effect in miniature, on real text: does the curated subset cover the
pool's concepts more evenly than a random one, and does a probe trained on it do better on a
balanced test set?

Pool: tweets (3 sentiments), Rotten Tomatoes snippets (fresh/rotten) and three small HaluEval
pools (QA knowledge passages, dialogue knowledge, CNN/DailyMail articles), embedded with
MiniLM-L6. A concept is source x label; concepts are used for scoring only. A balanced test
set (the same number per concept) is held out first. From the rest, N points are selected by
(a) random, (b) flat k-means + an equal quota per cluster, (c) hierarchical k-means without
resampling + balanced sampling, (d) hierarchical k-means with resampling + balanced sampling.
Writes the `curation-balance` section of BENCHMARKS.md.

    .venv/bin/python -m bench.curation_balance
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

POOLS = [("tweets", 20000), ("rotten_tomatoes", None), ("halueval_qa", 1500), ("halueval_dialogue", 800),
         ("halueval_summarization", 400)]


def load_pool() -> tuple[list[str], list[str]]:
    """Texts and their concept (source x label)."""
    from core.data import DataConfig, load_splits, load_texts

    texts, concepts = [], []
    for name, limit in POOLS:
        if name in ("tweets", "rotten_tomatoes"):
            train, test = load_splits(DataConfig(name=name))
            t = train.texts + test.texts
            lab = [f"{name}:{train.label_names[i]}" for i in np.concatenate([train.labels, test.labels])]
            if limit is not None:
                order = np.random.default_rng(0).permutation(len(t))[:limit]
                t, lab = [t[i] for i in order], [lab[i] for i in order]
        else:
            t = load_texts(name, limit=limit)
            lab = [name] * len(t)
        texts += t
        concepts += lab
    return texts, concepts


def embed(texts: list[str], cache: Path, batch_size: int = 128) -> np.ndarray:
    """MiniLM-L6 embeddings of the pool, cached (an embedding of 35k texts takes minutes on 2 cores)."""
    from core.encoders import Embedder
    from core.runs import atomic_write

    if cache.is_file():
        x = np.load(cache)
        if x.shape[0] == len(texts):
            return x
    x = Embedder("minilm", max_length=64, device="auto").embed_all(texts, batch_size, desc="embedding")
    atomic_write(cache, lambda f: np.save(f, x))  # a killed run leaves no half-written cache
    return x


def select(method: str, x: torch.Tensor, n_select: int, seed: int) -> torch.Tensor:
    from curation.hierarchical import LevelSpec, hierarchical_kmeans
    from curation.sampling import balanced_sample

    if method == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.sort(torch.randperm(x.shape[0], generator=g)[:n_select]).values
    shapes = {
        "flat k-means + equal quota": [LevelSpec(300)],
        "hierarchical, no resampling": [LevelSpec(600), LevelSpec(150), LevelSpec(30)],
        "hierarchical + resampling": [LevelSpec(600, 3), LevelSpec(150, 10), LevelSpec(30, 10)],
    }
    levels = hierarchical_kmeans(x, shapes[method], seed=seed, metric="cosine")
    return balanced_sample(levels, n_select, seed=seed)


def scores(concepts_sel: np.ndarray, pool_counts: dict, x_sel: np.ndarray, y_sel: np.ndarray,
           x_test: np.ndarray, y_test: np.ndarray, names: list[str]) -> dict:
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.array([(concepts_sel == c).sum() for c in names], dtype=float)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum() / np.log(len(names)))
    total = sum(pool_counts.values())
    rare = [c for c in names if pool_counts[c] < 0.05 * total]
    recall = float(np.mean([(concepts_sel == c).sum() / pool_counts[c] for c in rare]))
    knn = KNeighborsClassifier(n_neighbors=10, metric="cosine").fit(x_sel, y_sel)
    return {"entropy": entropy, "rare_recall": recall,
            "knn_bacc": float(balanced_accuracy_score(y_test, knn.predict(x_test))), "rare": rare}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--select", type=int, default=3000)
    ap.add_argument("--test-per-concept", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache", default="runs/bench-curation-balance/minilm.npy")
    ap.add_argument("--print", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = ap.parse_args()
    from bench.report import load_sentence, write_section
    from core.runs import markdown_table, setup_logging

    setup_logging()
    load_before = os.getloadavg()[0]
    texts, concepts = load_pool()
    start = time.perf_counter()
    x_all = embed(texts, Path(args.cache))
    print(f"{len(texts)} texts embedded in {time.perf_counter() - start:.0f} s")
    concepts = np.array(concepts)
    names = sorted(set(concepts))
    y_all = np.array([names.index(c) for c in concepts])
    rng = np.random.default_rng(1234)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(concepts == c))[: args.test_per_concept] for c in names])
    pool_idx = np.setdiff1d(np.arange(len(texts)), test_idx)
    pool_counts = {c: int((concepts[pool_idx] == c).sum()) for c in names}
    x_pool = torch.from_numpy(x_all[pool_idx])

    methods = ["random", "flat k-means + equal quota", "hierarchical, no resampling", "hierarchical + resampling"]
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in args.seeds:
        for m in methods:
            t = time.perf_counter()
            sel = pool_idx[select(m, x_pool, args.select, seed).numpy()]
            r = scores(concepts[sel], pool_counts, x_all[sel], y_all[sel], x_all[test_idx], y_all[test_idx], names)
            r["seconds"] = time.perf_counter() - t
            results[m].append(r)
            print(f"seed {seed} {m}: {r}", flush=True)

    def ms(m: str, key: str, fmt: str = "{:.3f}") -> str:
        v = np.array([r[key] for r in results[m]])
        return f"{fmt.format(v.mean())} ± {fmt.format(v.std())}"

    rows = [[m, ms(m, "entropy"), ms(m, "rare_recall"), ms(m, "knn_bacc"), ms(m, "seconds", "{:.1f}")] for m in methods]
    mean = {m: {k: np.mean([r[k] for r in results[m]]) for k in ("entropy", "rare_recall", "knn_bacc")} for m in methods}
    a, b, c, d = (mean[m] for m in methods)
    checks = [
        f"balance (concept entropy): d {d['entropy']:.3f} >= c {c['entropy']:.3f} > b {b['entropy']:.3f} > "
        f"a {a['entropy']:.3f} -> {'met' if d['entropy'] >= c['entropy'] > b['entropy'] > a['entropy'] else 'MISSED'}",
        f"kNN balanced accuracy, curated (d) vs random (a): {d['knn_bacc']:.3f} vs {a['knn_bacc']:.3f} -> "
        f"{'met' if d['knn_bacc'] > a['knn_bacc'] else 'MISSED'}",
    ]
    pool_rows = [[c, pool_counts[c], f"{pool_counts[c] / len(pool_idx):.1%}"] for c in names]
    body = f"""## curate: balance of a curated subset of real text

MiniLM-L6 embeddings, max length 64; cosine k-means; {args.select:,} of {len(pool_idx):,} points selected;
{args.test_per_concept} held-out points per concept for the balanced test set; mean ± std over seeds {args.seeds}.
{load_sentence(load_before)}

The pool, by concept (source x label, used for scoring only):

{markdown_table(["concept", "pool points", "share"], pool_rows)}

{markdown_table(["selection", "concept entropy / log(#concepts)", "rare-concept recall",
                 "kNN (k=10) balanced accuracy on the balanced test set", "seconds"], rows)}

Rare concepts are those under 5% of the pool ({', '.join(results[methods[0]][0]['rare'])}); their recall is the
fraction of their pool points selected (random selection gives about {args.select / len(pool_idx):.3f}).
Levels: flat 300 clusters; hierarchical 600 / 150 / 30 clusters, with 3 / 10 / 10 resampling steps in (d).

{chr(10).join("- " + x for x in checks)}
"""
    if args.print:
        print(body)
    else:
        write_section("curation-balance", body)


if __name__ == "__main__":
    main()
