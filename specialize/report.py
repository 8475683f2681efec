"""summary.md (one row per stage: the metric after it, its time, its artifact) and the plot of
each metric against stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import to_yaml
from core.runs import RunDir, atomic_write, markdown_table

SECONDARY = ("off_domain_ppl", "none_test_accuracy")  # shown beside the primary metric when present


def metric_of(metrics: dict[str, Any]) -> tuple[str, float | None]:
    name = metrics.get("metric")
    return (name, metrics.get(name)) if name else ("-", None)


def stage_rows(records, root: Path | None = None) -> list[list[Any]]:
    rows = []
    for r in records:
        name, value = metric_of(r.metrics)
        extra = ", ".join(f"{k} {r.metrics[k]:.4g}" for k in SECONDARY if isinstance(r.metrics.get(k), (int, float)))
        art = "-" if r.artifact is None else (str(r.artifact.relative_to(root)) if root and r.artifact.is_relative_to(root)
                                              else str(r.artifact))
        rows.append([r.stage, r.kind, name, "-" if value is None else f"{value:.4f}", extra or "-",
                     f"{r.seconds:.1f}", r.status, art])
    return rows


HEADER = ["stage", "kind", "metric", "value", "also", "time (s)", "status", "artifact"]


def detail_rows(records) -> list[list[Any]]:
    """Every other number a stage reported (halueval's scores, counts), one row per (stage, key)."""
    out = []
    for r in records:
        for k, v in r.metrics.items():
            if k in ("metric", r.metrics.get("metric")) or isinstance(v, (dict, list)):
                continue
            out.append([r.stage, k, f"{v:.4g}" if isinstance(v, float) else v])
    return out


def plot_metrics(records, path: Path) -> bool:
    """One panel per metric name: its value after each stage that reports it, in recipe order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_metric: dict[str, list[tuple[str, float]]] = {}
    for r in records:
        name, value = metric_of(r.metrics)
        if value is not None:
            by_metric.setdefault(name, []).append((r.stage, float(value)))
    if not by_metric:
        return False
    fig, axes = plt.subplots(1, len(by_metric), figsize=(5 * len(by_metric), 3.6), squeeze=False)
    for ax, (name, pts) in zip(axes[0], by_metric.items()):
        xs = list(range(len(pts)))
        ax.plot(xs, [v for _, v in pts], marker="o")
        ax.set_xticks(xs, [s for s, _ in pts], rotation=30, ha="right")
        ax.set_ylabel(name)
        ax.set_title(f"{name} after each stage")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return True


def write_report(cfg, run: RunDir, records, failure: str | None = None) -> str:
    plotted = plot_metrics(records, run.file("metrics.png"))
    lines = [f"# specialize: {len(records)} stages", ""]
    if failure:
        lines += [f"**Stopped:** {failure}. Rerun with `--resume {run.path}` to continue from that stage.", ""]
    lines += [markdown_table(HEADER, stage_rows(records, run.path)), ""]
    lines += ["`skipped`: the stage's artifact (same key: same config and same inputs) was complete and was "
              "reused; its time is the time it took when it ran.", ""]
    if plotted:
        lines += ["![metric after each stage](metrics.png)", ""]
    details = detail_rows(records)
    if details:
        lines += ["## Every number", "", markdown_table(["stage", "key", "value"], details), ""]
    lines += ["## Config", "", "```yaml", to_yaml(cfg).rstrip(), "```", ""]
    text = "\n".join(lines)
    run.write_summary(text)
    return text


__all__ = ["detail_rows", "plot_metrics", "stage_rows", "write_report"]
