"""The ReFusion run's table: per arm, test accuracy over seeds (at the learning rate with the best
mean dev accuracy), inference latency and FLOPs per example; and the issue's targets."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from core.config import to_yaml
from core.runs import RunDir, markdown_table

LABELS = {"none": "no retrieval", "concat": "concatenated retrievals", "reranker": "reranker only",
          "ordered_mask": "ordered mask only", "refusion": "ReFusion (bi-level search)",
          "refusion_frozen": "ReFusion as released (alpha frozen)",
          "tuned_choices": "ReFusion (Tune picks the choices)"}


def aggregate(rows: list[dict]) -> dict[str, dict]:
    by_arm: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_arm[r["arm"]][r["lr"]].append(r)
    out = {}
    for arm, by_lr in by_arm.items():
        lr, best = max(by_lr.items(), key=lambda kv: np.mean([r["dev_accuracy"] for r in kv[1]]))
        acc = np.array([r["test_accuracy"] for r in best])
        out[arm] = {"lr": lr, "mean": float(acc.mean()), "std": float(acc.std()), "seeds": len(best),
                    "dev": float(np.mean([r["dev_accuracy"] for r in best])), "runs": best}
    return out


def majority_choices(runs: list[dict]) -> dict[str, str]:
    """Per module, the candidate most seeds chose."""
    names = runs[0]["choices"].keys()
    return {n: Counter(r["choices"][n] for r in runs).most_common(1)[0][0] for n in names}


def _vs_none(cost: dict, arm: str) -> float:
    # runs from before the arms were timed in turns have no latency_vs_none
    return cost[arm].get("latency_vs_none", cost[arm]["latency_s"] / cost["none"]["latency_s"])


def latency_targets(cost: dict) -> list[str]:
    """The issue's two latency targets, against no retrieval (nothing without that arm)."""
    out = []
    if "refusion" in cost and "none" in cost:
        ratio = _vs_none(cost, "refusion")
        out.append(f"ReFusion latency {ratio:.2f}x no retrieval's -> {'met' if ratio <= 1.2 else 'MISSED'} (target <= 1.2x)")
    if "concat" in cost and "none" in cost:
        ratio = _vs_none(cost, "concat")
        out.append(f"concatenation latency {ratio:.2f}x no retrieval's -> {'met' if ratio >= 2 else 'MISSED'} "
                   "(target: at least 2x slower at the same k)")
    return out


def targets(agg: dict, cost: dict) -> list[str]:
    out = []
    if "refusion" in agg and "none" in agg:
        r, n = agg["refusion"], agg["none"]
        out.append(f"ReFusion accuracy {r['mean']:.4f} vs no retrieval {n['mean']:.4f} -> "
                   f"{'met' if r['mean'] > n['mean'] else 'MISSED'} (seed std {r['std']:.4f} / {n['std']:.4f})")
    if "refusion" in agg and "refusion_frozen" in agg:
        r, f = agg["refusion"], agg["refusion_frozen"]
        out.append(f"ReFusion accuracy {r['mean']:.4f} vs as released (alpha frozen) {f['mean']:.4f} -> "
                   f"{'met' if r['mean'] >= f['mean'] else 'MISSED'} (seed std {r['std']:.4f} / {f['std']:.4f})")
    return out + latency_targets(cost)


def paired_with_none(agg: dict) -> list[str]:
    """Each arm minus no retrieval, paired over the seeds both ran (points, sd, t, seeds ahead),
    and how often the searched arms kept each candidate over modules and seeds."""
    if "none" not in agg:
        return []
    base = {r["seed"]: r["test_accuracy"] for r in agg["none"]["runs"]}
    out = []
    for arm, a in agg.items():
        d = np.array([r["test_accuracy"] - base[r["seed"]] for r in a["runs"] if r["seed"] in base])
        if arm == "none" or len(d) < 2:
            continue
        sd = float(d.std(ddof=1))
        t = float(d.mean() / (sd / np.sqrt(len(d)))) if sd > 0 else float("nan")
        kept = Counter(v for r in a["runs"] for v in (r.get("choices") or {}).values())
        out.append(f"{LABELS[arm]} minus no retrieval, paired over {len(d)} seeds: {100 * d.mean():+.2f} points "
                   f"(sd {100 * sd:.2f}, t = {t:.2f}; ahead on {(d > 0).sum()}, level on {(d == 0).sum()}, "
                   f"behind on {(d < 0).sum()})"
                   + (f"; candidates kept over modules and seeds: "
                      + ", ".join(f"{c} {n}" for c, n in kept.most_common()) if kept else ""))
    return out


def _fusion_scale(scale: float) -> str:
    if scale > 0:
        return f"each module's fused vector calibrated to start at {scale:g}x its CLS key/value output's norm"
    return "fused vectors added unscaled (fusion_scale 0)"


def write_report(cfg, run: RunDir, agg: dict, cost: dict) -> str:
    rows = [[LABELS[a], f"{agg[a]['mean']:.4f} ± {agg[a]['std']:.4f}", agg[a]["seeds"], f"{agg[a]['lr']:g}",
             f"{cost[a]['latency_s'] * 1e3:.2f}", f"{cost[a]['flops'] / 1e6:.1f}"] for a in agg]
    text = f"""# ReFusion run

Few-shot {cfg.data.name}: {cfg.per_class} examples per class for training and again for dev, seeds {cfg.seeds};
{cfg.model.name} backbone; k = {cfg.k} retrieved corpus sentences per example, {_fusion_scale(cfg.fit.fusion_scale)}. Accuracy on {cfg.data.max_test or 'all'}
test examples, mean ± std over seeds, at the learning rate with the best mean dev accuracy. Latency:
batched CPU inference per example, the median of {cfg.latency_rounds} rounds in which every arm is timed in turn;
a ratio between arms is the median of the per-round ratios. FLOPs per example counted by
torch.utils.flop_counter (matmuls).

{markdown_table(["arm", "test accuracy", "seeds", "lr", "latency ms / example", "MFLOPs / example"], rows)}

{chr(10).join("- " + t for t in targets(agg, cost) + paired_with_none(agg))}

## Config

```yaml
{to_yaml(cfg)}```
"""
    run.write_summary(text)
    return text


__all__ = ["LABELS", "aggregate", "latency_targets", "majority_choices", "paired_with_none", "targets", "write_report"]
