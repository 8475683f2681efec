"""summary.md and the bar plot of a chatie run."""

from __future__ import annotations

from pathlib import Path

from core.runs import markdown_table

LABELS = {"chatie": "ChatIE (two-stage)", "chatie_loglik": "ChatIE, stage I by likelihood",
          "single_turn": "single turn", "spacy": "spaCy en_core_web_sm (supervised)"}


def label(r) -> str:
    """A result's method as the tables name it (stage I by likelihood with its top k, when limited)."""
    k = r.stats.get("stage1_top_k")
    return LABELS.get(r.method, r.method) + (f", top {k}" if k else "")


def parse_share(stats: dict) -> float | None:
    st = stats.get("status") or {}
    total = sum(st.values())
    return (st.get("ok", 0) + st.get("none", 0)) / total if total else None


def result_rows(results) -> list[list]:
    rows = []
    for r in results:
        m, s = r.metrics, r.stats
        n = max(s.get("inputs", 0), 1)
        share = parse_share(s)
        fresh_inputs = s.get("inputs", 0) - s.get("inputs_reused", 0)
        ipm = (fresh_inputs / (s["seconds"] / 60)) if s.get("seconds") and fresh_inputs else None
        also = []
        if "span_f1" in m:
            also.append(f"span F1 {m['span_f1']:.3f}")
        if "type_f1" in m:
            also.append(f"event-type F1 {m['type_f1']:.3f}")
        if "ungrounded_f1" in m:
            also.append(f"F1 as answered {m['ungrounded_f1']:.3f} ({m['dropped']} not in the text)")
        extra = "; ".join(also)
        llm = r.method != "spacy"
        rows.append([
            r.dataset, label(r), f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
            extra or "-",
            f"{share:.3f}" if llm and share is not None else "-",
            f"{s.get('answers', 0) / n:.2f}" if llm else "-",
            f"{s.get('scored', 0) / n:.1f}" if llm and s.get("scored") else "-",
            f"{(s.get('prompt_tokens', 0) + s.get('completion_tokens', 0)) / n:.0f}" if llm else "-",
            f"{ipm:.1f}" if ipm else ("all reused" if llm and s.get("inputs") else "-"),
            f"{s.get('reused', 0)}" if llm else "-",
        ])
    return rows


HEADER = ["dataset", "method", "P", "R", "F1", "also", "parsed", "turns/input", "scored/input", "tokens/input",
          "inputs/min", "answers reused"]


def plot_f1(path: Path, results) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(datasets), 3.8 + 0.2 * len(methods)))
    for j, meth in enumerate(methods):
        xs, ys, name = [], [], LABELS.get(meth, meth)
        for i, d in enumerate(datasets):
            r = next((r for r in results if r.dataset == d and r.method == meth), None)
            if r is not None:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(r.metrics["f1"])
                name = label(r)
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("micro F1 (exact type + string)")
    # below the axes: inside, it covered the tallest bar's label when one dataset's bars filled the width
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


GROUNDED = (", of the predictions grounded in the text (`chat.ground`: each string as the text writes it, found "
            "ignoring case and spacing; one the text does not hold is dropped, and `also` gives the F1 of the "
            "strings as answered)")


def summary_markdown(cfg, results, model: str, tokens_exact: bool, skipped: dict[str, int] | None = None) -> str:
    lines = [f"# ChatIE run: {model}", "",
             "Micro P/R/F1 by exact match of (type, string) after normalisation (lower case, spacing, edge "
             "punctuation)" + (GROUNDED if cfg.chat.ground else ", of the strings as answered (`chat.ground` off)")
             + ". `also`: span-level F1 for NER (gold offsets; each predicted string placed at its occurrences) or "
             "event-type F1 for EE. `parsed`: share of LLM answers that parsed (a list/table, or an explicit none). "
             "Tokens count every prompt in full (the chat history is resent each turn) plus the "
             "answers" + ("" if tokens_exact else ", estimated at 4 characters per token (no tokenizer given)") + ".",
             "", markdown_table(HEADER, result_rows(results)), ""]
    if skipped:
        lines += ["Empty texts skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items()), ""]
    rejected = [r for r in results if r.stats.get("errors")]
    if rejected:
        lines += ["Requests the backend rejected (each ended its input's dialogue there; asked again on resume): " +
                  ", ".join(f"{r.dataset} {r.method} {r.stats['errors']}" for r in rejected) +
                  f". The first: {rejected[0].stats['error_messages'][0]}", ""]
    lines += ["![F1 per dataset and method](f1.png)", ""]
    for r in results:
        if not r.per_type:
            continue
        lines += [f"## {r.dataset}: {label(r)}, per type", "",
                  markdown_table(["type", "P", "R", "F1", "pred", "gold"],
                                 [[t, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["pred"],
                                   v["gold"]] for t, v in r.per_type.items()]), ""]
    return "\n".join(lines)
