"""The curation run's summary.md, metrics and cluster-size histograms (before/after sampling)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from core.config import to_yaml
from core.runs import RunDir, markdown_table


def entropy_ratio(counts: torch.Tensor) -> float:
    """Entropy of the distribution over clusters divided by log(#non-empty clusters): 1 = uniform."""
    c = counts[counts > 0].to(torch.float64)
    if c.numel() <= 1:
        return 1.0
    p = c / c.sum()
    return float(-(p * p.log()).sum() / np.log(c.numel()))


def plot_histograms(path: Path, before: list[torch.Tensor], after: list[torch.Tensor]) -> Path:
    """Per level, cluster sizes (largest first) before and after sampling, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(before), figsize=(5 * len(before), 3.8), squeeze=False)
    for t, (ax, b, a) in enumerate(zip(axes[0], before, after)):
        order = torch.argsort(b, descending=True)
        x = np.arange(1, b.numel() + 1)
        ax.bar(x, b[order].numpy(), width=1.0, alpha=0.45, label="pool")
        ax.bar(x, a[order].numpy(), width=1.0, alpha=0.8, label="selected")
        ax.set_yscale("log")
        ax.set_xlabel(f"level {t + 1} cluster (largest pool cluster first)")
        ax.set_ylabel("points")
        ax.set_title(f"level {t + 1}: k={b.numel()}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(cfg, run: RunDir, pool, records, before, after, sel, out: Path, memory: list[dict],
                 seconds: float) -> dict:
    png = plot_histograms(run.file("cluster_sizes.png"), before, after)
    level_rows = []
    for t, (rec, b, a) in enumerate(zip(records, before, after)):
        spec = cfg.kmeans.levels[t]
        level_rows.append([t + 1, spec.k, spec.resampling_steps, f"{rec.inertia:.5g}",
                           f"{rec.seconds:.1f}" + (" (resumed)" if rec.resumed else ""),
                           int(b.max()), int((b > 0).sum()), f"{entropy_ratio(b):.3f}",
                           int(a.max()), f"{entropy_ratio(a):.3f}"])
    numbers = {
        "n": int(before[0].sum()), "selected": int(sel["ids"].numel()), "seconds": seconds,
        "levels": [{"k": cfg.kmeans.levels[t].k, "inertia": r.inertia, "seconds": r.seconds, "largest_before": int(b.max()),
                    "largest_after": int(a.max()), "entropy_before": entropy_ratio(b),
                    "entropy_after": entropy_ratio(a)} for t, (r, b, a) in enumerate(zip(records, before, after))],
        "worker_memory": memory,
    }
    source_rows = []
    if pool.sources is not None:
        pool_mix = Counter(pool.sources)
        sel_mix = Counter(pool.sources[i] for i in sel["ids"].tolist())
        for name, count in pool_mix.items():
            source_rows.append([name, count, f"{count / pool.n:.1%}", sel_mix.get(name, 0),
                                f"{sel_mix.get(name, 0) / max(1, numbers['selected']):.1%}"])
        numbers["sources"] = {name: {"pool": c, "selected": sel_mix.get(name, 0)} for name, c in pool_mix.items()}
    run.write_json("metrics.json", numbers)
    mem_rows = [[i, f"{m['shard_mb']:.1f}", f"{m.get('baseline_rss_mb', float('nan')):.0f}", f"{m['peak_rss_mb']:.0f}"]
                for i, m in enumerate(memory)]
    text = f"""# Curation run

{numbers['selected']} of {numbers['n']} points selected by balanced hierarchical sampling
({cfg.sample.strategy} within leaf clusters) in {seconds:.1f} s after embedding: `{out.name}`.

{markdown_table(["level", "k", "resampling steps", "inertia", "seconds", "largest cluster (pool)",
                 "non-empty clusters", "size entropy / log k (pool)", "largest cluster (selected)",
                 "size entropy / log k (selected)"], level_rows)}

![cluster sizes]({png.name})
"""
    if source_rows:
        text += "\n" + markdown_table(["source", "pool", "pool share", "selected", "selected share"], source_rows) + "\n"
    text += f"""
Worker memory (shard held in the run's dtype; resident set of the worker process when it
started, before its shard, and at its peak):

{markdown_table(["worker", "shard MB", "baseline RSS MB", "peak RSS MB"], mem_rows)}

## Config

```yaml
{to_yaml(cfg)}```
"""
    run.write_summary(text)
    return numbers


__all__ = ["entropy_ratio", "plot_histograms", "write_report"]
