"""PNG plots (matplotlib, Agg backend) for run directories and benchmarks."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(
    path: str | Path,
    panels: list[dict],
    title: str | None = None,
) -> Path:
    """One PNG with side-by-side panels.

    Each panel: {"x": [...], "series": {label: [...]}, "xlabel": str, "ylabel": str,
    optional "hlines": {label: y}, optional "yscale": "log" for values spanning orders of magnitude}.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, ys in panel["series"].items():
            xs = panel["x"][label] if isinstance(panel["x"], dict) else panel["x"]
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label)
        for label, y in panel.get("hlines", {}).items():
            ax.axhline(y, ls="--", lw=1, color="gray")
            ax.annotate(label, (0.01, y), xycoords=("axes fraction", "data"), fontsize=8, color="gray",
                        va="bottom")
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.set_yscale(panel.get("yscale", "linear"))
        ax.grid(alpha=0.3)
        if panel["series"]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
