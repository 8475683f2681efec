"""The Spry run's summary.md, its accuracy/loss plot, and the table the demo prints."""

from __future__ import annotations

import numpy as np

from core.config import to_yaml
from core.plots import plot_curves  # noqa: F401  (sets the Agg backend)
from fl.evaluation import load_per_example, paired_change, per_example_path
from core.runs import RunDir, markdown_table
from fl.config import SpryConfig


def results_table(history: list[dict], majority: float, prototype_head: bool = True, method: str = "spry") -> str:
    rows = [["majority class (test)", "-", f"{majority:.4f}", "-", "-"]]
    start = "prototype head (round 0)" if prototype_head else "initial model (round 0)"
    for r in history:
        if "accuracy" not in r:
            continue
        what = start if r["round"] == 0 else f"{method} round {r['round']}"
        rows.append([what, f"{r.get('train_loss', float('nan')):.4f}" if "train_loss" in r else "-",
                     f"{r['accuracy']:.4f}", f"{r['generalized_accuracy']:.4f}" if "generalized_accuracy" in r else "-",
                     f"{r['loss']:.4f}"])
    return markdown_table(["model", "client train loss", "test accuracy", "generalized accuracy", "test loss"], rows)


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


def paired_from_run(run_path, evals: list[dict]) -> dict | None:
    """Round 0 against the last evaluated round, paired over the same test examples (from
    <run>/per_example/), and per evaluated round the change from round 0: None without them."""
    if not evals:
        return None
    first = per_example_path(run_path, evals[0]["round"])
    if not first.exists():
        return None
    base = load_per_example(first)
    curve = []
    for r in evals:
        path = per_example_path(run_path, r["round"])
        if path.exists():
            pe = load_per_example(path)
            curve.append((r["round"], paired_change(base["loss"], pe["loss"]), paired_change(base["correct"], pe["correct"])))
    last_round, loss, acc = curve[-1]
    return {"first_round": evals[0]["round"], "last_round": last_round, "loss": loss, "accuracy": acc, "curve": curve}


def paired_sentence(p: dict) -> str:
    loss, acc = p["loss"], p["accuracy"]
    verdict = "lower, significantly (p < 0.01)" if loss["mean"] < 0 and loss["p"] < 0.01 else "not significantly lower"
    return (f"Test loss, round {p['first_round']} -> round {p['last_round']}, paired over the same {loss['n']} test "
            f"examples: change {loss['mean']:+.4f} (standard error {loss['se']:.4f}, p = {loss['p']:.2g}): {verdict}. "
            f"Accuracy change {100 * acc['mean']:+.2f} points (standard error {100 * acc['se']:.2f}, p = {acc['p']:.2g}).")


def personal_sentence(p: dict) -> str:
    return (f"Personalized accuracy ({p['personalized_clients']} clients of the last round, each after "
            f"{p['personalize_epochs']} local epochs on its tensors, tested on its own test set): "
            f"{p['personalized_accuracy']:.4f}, against {p['generalized_accuracy_same_clients']:.4f} for the global "
            f"model on the same clients' test sets.")


def plot_with_bands(path, cfg: SpryConfig, evals: list[dict], history: list[dict], majority: float,
                    paired: dict | None, n_test: int) -> None:
    """Accuracy and test loss with 95% bands, and the paired change from round 0 with its band."""
    import matplotlib.pyplot as plt

    rounds = np.array([r["round"] for r in evals])
    acc = np.array([r["accuracy"] for r in evals])
    loss = np.array([r["loss"] for r in evals])
    panels = 3 if paired else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    ax = axes[0]
    band = 1.96 * np.sqrt(acc * (1 - acc) / n_test)
    ax.plot(rounds, acc, marker="o", ms=3, label=f"{cfg.fl.method} test accuracy")
    ax.fill_between(rounds, acc - band, acc + band, alpha=0.25, label="95% band (binomial, one evaluation)")
    if any("generalized_accuracy" in r for r in evals):
        ax.plot(rounds, [r.get("generalized_accuracy", np.nan) for r in evals], ls="--", label="generalized accuracy")
    ax.axhline(majority, ls=":", color="gray", lw=1, label=f"majority {majority:.3f}")
    ax.set_xlabel("round"), ax.set_ylabel("accuracy"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(rounds, loss, marker="o", ms=3, label="test loss")
    if paired:
        se = np.array([c[1]["se"] for c in paired["curve"]])  # paired: the noise of a change from round 0
        ax.fill_between(rounds[: len(se)], loss[: len(se)] - 1.96 * se, loss[: len(se)] + 1.96 * se, alpha=0.25,
                        label="95% band of the change from round 0 (paired)")
    tl = [r for r in history if "train_loss" in r]
    ax.plot([r["round"] for r in tl], [r["train_loss"] for r in tl], lw=1, alpha=0.6, label="client train loss")
    ax.set_xlabel("round"), ax.set_ylabel("cross-entropy"), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    if paired:
        ax = axes[2]
        cr = np.array([c[0] for c in paired["curve"]])
        for key, scale, label in (("loss", 1.0, "test loss change"), ("accuracy", 1.0, "accuracy change")):
            idx = 1 if key == "loss" else 2
            m = np.array([c[idx]["mean"] for c in paired["curve"]]) * scale
            s = np.array([c[idx]["se"] for c in paired["curve"]]) * scale
            ax.plot(cr, m, marker="o", ms=3, label=label)
            ax.fill_between(cr, m - 1.96 * s, m + 1.96 * s, alpha=0.25)
        ax.axhline(0, color="gray", lw=1)
        ax.set_xlabel("round"), ax.set_ylabel("change from round 0 (paired, 95% band)")
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.suptitle(f"{cfg.fl.method}: {cfg.model.name} + {cfg.adapter.type} on {cfg.data.name}, "
                 f"{cfg.fl.clients_per_round}/{cfg.partition.num_clients} clients, alpha={cfg.partition.alpha}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    cfg: SpryConfig, run: RunDir, history: list[dict], runtime, memory: dict | None,
    resumed_from: list[int] | None = None, personalization: dict | None = None,
) -> str:
    labels = runtime.test_data["labels"].numpy()
    majority = float(np.bincount(labels).max() / len(labels))
    evals = [r for r in history if "accuracy" in r]
    paired = paired_from_run(run.path, evals)
    plot_with_bands(run.file("accuracy_loss.png"), cfg, evals, history, majority, paired, len(labels))
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
        *([paired_sentence(paired)] if paired else []),
        *([personal_sentence(personalization)] if personalization else []),
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
