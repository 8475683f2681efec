"""The job's results: a table of micro-F1, macro-F1 and rarest-third F1 (mean ± std over seeds),
paired tests over seeds of the meta-learner against BCE + 0.5 and per-label tuned thresholds, and
a plot of the learned thresholds and weights against label frequency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.runs import markdown_table
from multilabel.config import BASELINES

NAMES = {"bce_0.5": "BCE + 0.5", "global_threshold": "BCE + global threshold (dev)",
         "per_label_thresholds": "BCE + per-label thresholds (SCut, dev)", "pos_weight": "BCE with pos_weight + 0.5",
         "focal": "focal loss + 0.5"}


def method_name(key: str) -> str:
    return NAMES.get(key, f"meta-learner ({key.split(':', 1)[1]} reward)" if key.startswith("meta:") else key)


def by_method(results: list[dict]) -> dict[str, dict[int, dict]]:
    """{method: {seed: result}} from the trials' result.json contents."""
    out: dict[str, dict[int, dict]] = {}
    for r in results:
        for method, res in r["methods"].items():
            out.setdefault(method, {})[int(r["seed"])] = res
    order = [m for m in BASELINES if m in out] + sorted(m for m in out if m not in BASELINES)
    return {m: dict(sorted(out[m].items())) for m in order}


def mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"


def paired(a: dict[int, dict], b: dict[int, dict], metric: str) -> dict:
    """a - b over the seeds both have: mean difference, wins, paired t-test and Wilcoxon p-values."""
    seeds = sorted(set(a) & set(b))
    d = np.asarray([a[s][metric] - b[s][metric] for s in seeds])
    out = {"n": len(seeds), "mean_diff": float(d.mean()) if len(d) else float("nan"),
           "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "t_p": float("nan"), "wilcoxon_p": float("nan")}
    if len(d) >= 2 and np.ptp(d) > 0:  # identical differences: the t statistic is undefined
        from scipy import stats

        out["t_p"] = float(stats.ttest_rel([a[s][metric] for s in seeds], [b[s][metric] for s in seeds]).pvalue)
        out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
    return out


def results_table(table: dict[str, dict[int, dict]]) -> str:
    rows = [[method_name(m), mean_std([r["micro_f1"] for r in res.values()]),
             mean_std([r["macro_f1"] for r in res.values()]), mean_std([r["rare_f1"] for r in res.values()]),
             mean_std([r["dev_macro_f1"] for r in res.values()]), len(res)] for m, res in table.items()]
    return markdown_table(["method", "test micro-F1", "test macro-F1", "test F1, rarest third", "dev macro-F1",
                           "seeds"], rows)


def comparisons(table: dict[str, dict[int, dict]]) -> tuple[str, list[dict]]:
    """Each meta arm against BCE + 0.5 and SCut on macro- and micro-F1."""
    rows, records = [], []
    for m in (k for k in table if k.startswith("meta:")):
        for ref in ("bce_0.5", "per_label_thresholds"):
            if ref not in table:
                continue
            for metric in ("macro_f1", "micro_f1", "rare_f1"):
                p = paired(table[m], table[ref], metric)
                records.append({"meta": m, "reference": ref, "metric": metric, **p})
                rows.append([method_name(m), method_name(ref), metric, f"{p['mean_diff']:+.4f}",
                             f"{p['wins']}/{p['n']}", f"{p['t_p']:.3g}", f"{p['wilcoxon_p']:.3g}"])
    header = ["meta-learner", "against", "metric", "mean difference", "seeds won", "paired t p", "Wilcoxon p"]
    return markdown_table(header, rows), records


def targets(table: dict[str, dict[int, dict]]) -> list[str]:
    lines = []
    for m in (k for k in table if k.startswith("meta:")):
        if "bce_0.5" in table:
            meta = np.mean([r["macro_f1"] for r in table[m].values()])
            base = np.mean([r["macro_f1"] for r in table["bce_0.5"].values()])
            lines.append(f"- {method_name(m)} beats BCE + 0.5 on macro-F1: **{'met' if meta > base else 'missed'}** "
                         f"({meta:.4f} vs {base:.4f}, mean over {len(table[m])} seed(s)).")
        if "per_label_thresholds" in table:
            p = paired(table[m], table["per_label_thresholds"], "macro_f1")
            lines.append(f"- against per-label tuned thresholds (SCut), measured: macro-F1 difference "
                         f"{p['mean_diff']:+.4f}, better on {p['wins']} of {p['n']} seeds, paired t p = {p['t_p']:.3g}, "
                         f"Wilcoxon p = {p['wilcoxon_p']:.3g}.")
    return lines


def plot_policy(path: Path, table: dict[str, dict[int, dict]], train_counts: np.ndarray, title: str) -> Path | None:
    """Thresholds (meta-learner and SCut) and meta-learned weights against training frequency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metas = [m for m in table if m.startswith("meta:")]
    if not metas:
        return None
    x = np.asarray(train_counts, dtype=np.float64)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in metas:
        tau = np.mean([r["thresholds"] for r in table[m].values()], axis=0)
        w = np.mean([r["weights"] for r in table[m].values()], axis=0)
        axes[0].scatter(x, tau, s=14, label=method_name(m))
        axes[1].scatter(x, w, s=14, label=method_name(m))
    if "per_label_thresholds" in table:
        tau = np.mean([r["thresholds"] for r in table["per_label_thresholds"].values()], axis=0)
        axes[0].scatter(x, tau, s=14, marker="x", alpha=0.6, label=method_name("per_label_thresholds"))
    axes[0].axhline(0.5, ls="--", lw=1, color="gray")
    axes[1].axhline(1.0, ls="--", lw=1, color="gray")
    for ax, ylabel in zip(axes, ("threshold tau_l (mean over seeds)", "training weight w_l (mean over seeds)")):
        ax.set_xscale("log")
        ax.set_xlabel("label's training examples")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["by_method", "comparisons", "method_name", "paired", "plot_policy", "results_table", "targets"]
