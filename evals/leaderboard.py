"""The leaderboard across models from the answer records: per evaluator and hallucination type,
by parsed text and by likelihood, with the share of invalid answers and the backend errors; a
table for the generative metrics; a bar plot."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from core.runs import markdown_table
from evals.metrics import mean_se

GENERATIVE_METRICS = ("bleu4", "rouge_l", "kw_prec", "minilm_cosine", "length")


def aggregate(records: list[dict]) -> list[dict]:
    """One row per (model, dataset, evaluator, way), way = "text" or "likelihood"."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    order: list[tuple] = []
    for r in records:
        k = (r["model"], r["dataset"], r["evaluator"])
        if k not in groups:
            order.append(k)
        groups[k].append(r)
    rows = []
    for model, dataset, evaluator in order:
        recs = groups[(model, dataset, evaluator)]
        ok = [r for r in recs if r.get("status") == "ok"]
        errors = len(recs) - len(ok)
        scripted = any(r.get("scripted") for r in recs)
        for way in ("text", "likelihood"):
            scored = [r[way] for r in ok if r.get(way) is not None]
            if not scored:
                continue
            valid = [s for s in scored if s.get("score") is not None]
            types = sorted({r["type"] for r in ok})
            mean, se = mean_se([s["score"] for s in valid])
            row = {"model": model, "scripted": scripted, "dataset": dataset, "evaluator": evaluator, "by": way,
                   "items": len(recs), "valid": len(valid), "invalid_share": 1 - len(valid) / len(scored),
                   "errors": errors, "score": mean, "se": se,
                   "by_type": {t: mean_se([s["score"] for r, s in zip(ok, scored) if r["type"] == t
                                           and s.get("score") is not None])[0] for t in types}}
            ranked = [s["ranked"] for s in scored if s.get("ranked") is not None]
            if ranked:
                row["ranked"], row["ranked_se"] = mean_se(ranked)
            if evaluator == "selective":
                for key in ("real_first", "real_second", "reference_order"):
                    row[key] = mean_se([s[key] for s in scored if s.get(key) is not None])[0]
                # a judge with no preference for a position scores the same in both orders
                row["position_bias"] = row["real_first"] - row["real_second"]
                row["chose_a"] = mean_se([s[k] for s in scored for k in ("real_first_chose_a", "real_second_chose_a")
                                          if s.get(k) is not None])[0]
            if evaluator == "generative":
                for key in GENERATIVE_METRICS:
                    vals = [s[key] for s in valid if key in s]
                    row[key] = mean_se(vals)[0] if vals else math.nan
            rows.append(row)
    return rows


def format_score(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def label(row: dict) -> str:
    return f"{row['model']} (test instrument)" if row["scripted"] else row["model"]


def tables(rows: list[dict]) -> str:
    types = sorted({t for r in rows if r["evaluator"] != "generative" for t in r["by_type"]})
    disc = [r for r in rows if r["evaluator"] != "generative"]
    out = []
    if disc:
        header = ["model", "dataset", "evaluator", "by", "score ± SE", "valid / items", "invalid", "errors", *types,
                  "ranked ± SE"]
        body = [[label(r), r["dataset"], r["evaluator"], r["by"], f"{format_score(r['score'])} ± {format_score(r['se'])}",
                 f"{r['valid']} / {r['items']}", format_score(r["invalid_share"], 2), r["errors"],
                 *[format_score(r["by_type"].get(t)) for t in types],
                 f"{format_score(r['ranked'])} ± {format_score(r['ranked_se'])}" if "ranked" in r else "-"] for r in disc]
        out.append("Accuracy at telling real from hallucinated text (0.5 = chance on these balanced tasks). "
                   "`ranked` (likelihood rows): how often the item's hallucinated text gets higher log-odds of "
                   "the hallucinated verdict than its real text, which a prior on the answer words cannot move "
                   "(0.5 = no signal):\n\n" + markdown_table(header, body))
    sel = [r for r in rows if r["evaluator"] == "selective"]
    if sel:
        header = ["model", "dataset", "by", "real shown as A", "real shown as B", "position bias (A - B)",
                  "share answering A", "reference's single order"]
        body = [[label(r), r["dataset"], r["by"], format_score(r["real_first"]), format_score(r["real_second"]), format_score(r["position_bias"]),
                 format_score(r["chose_a"]), format_score(r["reference_order"])] for r in sel]
        out.append("Selective, both orders:\n\n" + markdown_table(header, body))
    gen = [r for r in rows if r["evaluator"] == "generative"]
    if gen:
        header = ["model", "dataset", "valid / items", "errors", "BLEU-4", "ROUGE-L", "keyword precision",
                  "MiniLM-L6 cosine", "length (chars)"]
        body = [[label(r), r["dataset"], f"{r['valid']} / {r['items']}", r["errors"], format_score(r["bleu4"]), format_score(r["rouge_l"]),
                 format_score(r["kw_prec"]), format_score(r["minilm_cosine"]), format_score(r["length"], 1)] for r in gen]
        out.append("Generative (continuation against the real news; all-MiniLM-L6-v2 mean-pooled cosine, "
                   "not BERTScore):\n\n" + markdown_table(header, body))
    return "\n\n".join(out)


def plot(rows: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    disc = [r for r in rows if r["evaluator"] != "generative"]
    tasks = list(dict.fromkeys(f"{r['dataset']}\n{r['evaluator']}" for r in disc))
    series = list(dict.fromkeys((label(r), r["by"]) for r in disc))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks) + 2), 4.5))
    width = 0.8 / max(1, len(series))
    for s, (name, way) in enumerate(series):
        xs, ys, es = [], [], []
        for t, task in enumerate(tasks):
            for r in disc:
                if (label(r), r["by"]) == (name, way) and f"{r['dataset']}\n{r['evaluator']}" == task:
                    xs.append(t + s * width)
                    ys.append(r["score"])
                    es.append(0 if math.isnan(r["se"]) else r["se"])
        ax.bar(xs, ys, width, yerr=es, label=f"{name}, {way}", hatch="//" if way == "likelihood" else None,
               alpha=0.85, capsize=2)
    ax.axhline(0.5, ls="--", lw=1, color="gray")
    ax.set_xticks([t + 0.4 - width / 2 for t in range(len(tasks))])
    ax.set_xticklabels(tasks, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (0.5 = chance)")
    ax.set_title("Hallucination detection by model and evaluator (±1 SE)")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


__all__ = ["aggregate", "format_score", "label", "plot", "tables"]
