"""The compression run's table (one row per method and keep ratio), perplexity plot and summary.md."""

from __future__ import annotations

from core.config import to_yaml
from core.plots import plot_curves
from core.runs import RunDir, markdown_table

HEADER = ["method", "keep ratio", "target ppl", "off-target ppl", "params", "compressed-layer params",
          "file MB", "latency s", "tokens/s", "speed-up"]


def table(rows: list[dict]) -> str:
    dense = next((r for r in rows if r["method"] == "dense"), None)
    out = []
    for r in rows:
        # rows from before speed-ups were timed in turns have none: fall back to the latency ratio
        speed = r.get("speedup", dense["latency_s"] / r["latency_s"] if dense else float("nan"))
        out.append([r["method"], f"{r['ratio']:.2f}", f"{r['target_ppl']:.2f}", f"{r['off_target_ppl']:.2f}",
                    f"{r['params']:,}", f"{r['linear_params']:,}" if r.get("linear_params") else "-",
                    f"{r['file_mb']:.0f}" if "file_mb" in r else "-", f"{r['latency_s']:.3f}",
                    f"{r['tokens_per_s']:.0f}", f"{speed:.2f}x"])
    return markdown_table(HEADER, out)


def plot(path, rows: list[dict], title: str):
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "dense"]
    dense = next((r for r in rows if r["method"] == "dense"), None)
    panels = []
    for key, label in (("target_ppl", "target perplexity"), ("off_target_ppl", "off-target perplexity")):
        xs = {m: [r["ratio"] for r in rows if r["method"] == m] for m in methods}
        ys = {m: [r[key] for r in rows if r["method"] == m] for m in methods}
        panels.append({"x": xs, "series": ys, "xlabel": "keep ratio of the compressed layers' parameters",
                       "ylabel": label, "hlines": {"dense": dense[key]} if dense else {},
                       # perplexities run from the dense model's to 50x it: a linear axis flattens the best methods
                       "yscale": "log"})
    return plot_curves(path, panels, title=title)


def write_report(cfg, run: RunDir, rows: list[dict]) -> str:
    png = plot(run.file("perplexity_vs_ratio.png"), rows, f"{cfg.model.name}: target {cfg.data.target}, "
                                                           f"off-target {cfg.data.off_target}")
    text = f"""# Compression run

{cfg.model.name}, layers {', '.join(cfg.target_modules)}; target application: language modelling of
{cfg.data.target} ({cfg.data.seq_len}-token blocks); off-target: {cfg.data.off_target}. Keep ratio = share of the
compressed layers' dense parameters kept: one parameter budget for every method (Basel: pruned to it;
SVD and FWSVD: rank floor(ratio m n / (m + n)) per layer; ASVD: per-layer ratios from its sensitivity
search; the baselines then take the leftover parameters as extra ranks). "compressed-layer params" counts
the target layers as they end, dense ones included. Latency: the median of {cfg.latency_rounds} forward passes over
{cfg.latency_batch} blocks on this machine's CPU; speed-up: the median over those rounds of the dense model's time
over the model's, the two timed in turns (a shared CPU drifts too much between models timed minutes apart).

{table(rows)}

![perplexity against keep ratio]({png.name})

## Config

```yaml
{to_yaml(cfg)}```
"""
    run.write_summary(text)
    return text


__all__ = ["plot", "table", "write_report"]
