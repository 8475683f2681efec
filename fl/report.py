"""The Spry run's summary.md, its accuracy/loss plot, and the table the demo prints."""

from __future__ import annotations

import numpy as np

from core.config import to_yaml
from core.plots import plot_curves
from core.runs import RunDir, markdown_table
from fl.config import SpryConfig


def results_table(history: list[dict], majority: float, prototype_head: bool = True, method: str = "spry") -> str:
    rows = [["majority class (test)", "-", f"{majority:.4f}", "-"]]
    start = "prototype head (round 0)" if prototype_head else "initial model (round 0)"
    for r in history:
        if "accuracy" not in r:
            continue
        what = start if r["round"] == 0 else f"{method} round {r['round']}"
        rows.append([what, f"{r.get('train_loss', float('nan')):.4f}" if "train_loss" in r else "-",
                     f"{r['accuracy']:.4f}", f"{r['loss']:.4f}"])
    return markdown_table(["model", "client train loss", "test accuracy", "test loss"], rows)


def memory_table(memory: dict) -> str:
    jvp, bp = memory["jvp"], memory["backprop"]
    rows = [
        ["backprop", f"{bp['peak_rss_mb']:.0f}", f"{bp['step_added_mb']:.0f}", f"{bp['step_s']:.2f}"],
        ["spry (jvp)", f"{jvp['peak_rss_mb']:.0f}", f"{jvp['step_added_mb']:.0f}", f"{jvp['step_s']:.2f}"],
    ]
    ratio = bp["peak_rss_mb"] / jvp["peak_rss_mb"]
    step_ratio = bp["step_added_mb"] / max(jvp["step_added_mb"], 1.0)
    return (
        markdown_table(["one client step", "peak RSS (MB)", "added by the step (MB)", "step time (s)"], rows)
        + f"\n\nBackprop's peak is {ratio:.2f}x Spry's ({step_ratio:.1f}x for what the step itself adds)."
        f" Model {jvp['model']}, batch {jvp['batch']}, seq {jvp['seq']}, each measured in a fresh process."
    )


def write_report(
    cfg: SpryConfig, run: RunDir, history: list[dict], runtime, memory: dict | None,
    resumed_from: list[int] | None = None,
) -> str:
    labels = runtime.test_data["labels"].numpy()
    majority = float(np.bincount(labels).max() / len(labels))
    evals = [r for r in history if "accuracy" in r]
    plot_curves(
        run.file("accuracy_loss.png"),
        [
            {"x": [r["round"] for r in evals], "series": {cfg.fl.method: [r["accuracy"] for r in evals]},
             "xlabel": "round", "ylabel": "test accuracy",
             "hlines": {f"majority {majority:.3f}": majority}},
            {"x": {"test loss": [r["round"] for r in evals],
                   "client train loss": [r["round"] for r in history if "train_loss" in r]},
             "series": {"test loss": [r["loss"] for r in evals],
                        "client train loss": [r["train_loss"] for r in history if "train_loss" in r]},
             "xlabel": "round", "ylabel": "cross-entropy"},
        ],
        title=f"{cfg.fl.method}: {cfg.model.name} + {cfg.adapter.type} on {cfg.data.name}, "
              f"{cfg.fl.clients_per_round}/{cfg.partition.num_clients} clients, alpha={cfg.partition.alpha}",
    )
    table = results_table(history, majority, cfg.fl.prototype_head, cfg.fl.method)
    first, last = evals[0], evals[-1]
    totals = {k: sum(r.get(k, 0) for r in history) for k in ("failed", "rejected", "bytes_down", "bytes_up")}
    text = [
        f"# Spry run: {run.path.name}" + ("" if cfg.fl.method == "spry" else f" (baseline: {cfg.fl.method})"),
        "",
        table,
        "",
        f"Accuracy: {first['accuracy']:.4f} after round 0 -> {last['accuracy']:.4f} after round {last['round']} "
        f"({'+' if last['accuracy'] >= first['accuracy'] else ''}{100 * (last['accuracy'] - first['accuracy']):.2f} points).",
        f"Failed clients: {totals['failed']}, rejected updates: {totals['rejected']}. "
        f"Bytes down/up over all rounds: {totals['bytes_down']:,} / {totals['bytes_up']:,}.",
    ]
    if resumed_from:
        text.append(
            f"Resumed from a checkpoint after round{'s' if len(resumed_from) > 1 else ''} "
            f"{', '.join(map(str, resumed_from))} (the run was interrupted). wall_s adds up the processes' time "
            "to each checkpoint: the downtime, and rounds lost after the last checkpoint, are not in it."
        )
    text += [
        "",
        "![accuracy and loss](accuracy_loss.png)",
        "",
    ]
    if memory is not None:
        text += ["## Peak memory of one client step", "", memory_table(memory), ""]
    text += ["## Config", "", "```yaml", to_yaml(cfg).rstrip(), "```", ""]
    out = "\n".join(text)
    run.write_summary(out)
    return out
