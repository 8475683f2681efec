"""summary.md and the figure for a UniTable run."""

from __future__ import annotations

from core.runs import RunDir, atomic_write, markdown_table
from core.stats import mean_se


def paired_gain(a: dict, b: dict, key: str = "per_table_teds_struct") -> tuple[float, float, int, int]:
    """Mean per-table difference a - b over the same tables, its standard error, and how many of
    the tables a scores higher and lower on: the seed-to-seed spread of one arm is as large as the
    gain, so the gain is read against its paired SE."""
    d = [x - y for x, y in zip(a[key], b[key], strict=True)]
    mean, se = mean_se(d)
    return mean, se, sum(x > 0 for x in d), sum(x < 0 for x in d)


def _fmt(r: dict | None, key: str) -> str:
    if not r or key not in r:
        return "-"
    v = r[key]
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def results_table(results: dict) -> str:
    rows = []
    for system, sets in results.items():
        for split in ("synthetic", "synthetic_peer_subset", "pubtabnet"):
            r = sets.get(split)
            if r is None:
                continue
            rows.append([system, split.replace("_", " "), r["tables"], _fmt(r, "teds_struct"), _fmt(r, "teds"),
                         _fmt(r, "box_ap50"), _fmt(r, "cell_count_mismatch"), f"{r['seconds_per_table']:.3f}"])
    return markdown_table(["system", "test set", "tables", "TEDS-struct", "TEDS", "box AP50 (raw)",
                           "structure/box cell count disagree", "s / table"], rows)


def draw_figure(path, out: dict, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    test = out["test"]
    arms = [a for a in ("pretrained", "scratch") if a in out["preds"]]
    k = min(k, len(test.tables))
    if not arms or k == 0:
        return
    fig, axes = plt.subplots(k, len(arms), figsize=(5 * len(arms), 2.6 * k), squeeze=False)
    for i in range(k):
        t = test.tables[i]
        for j, arm in enumerate(arms):
            ax = axes[i][j]
            rec = out["preds"][arm]["synthetic"][i]
            ax.imshow(t.image, cmap="gray", vmin=0, vmax=255)
            for (x1, y1, x2, y2) in t.boxes:
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="tab:green", lw=1.0, ls="--"))
            for (x1, y1, x2, y2) in rec["boxes"]:
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="tab:red", lw=1.2))
            r = out["results"][arm]["synthetic"]["per_table_teds_struct"][i]
            ax.set_title(f"{arm}: TEDS-struct {r:.2f}, {len(rec['boxes'])} cells (true {len(t.boxes)})", fontsize=8)
            ax.axis("off")
    fig.suptitle("predicted cells (red) vs true text boxes (green dashed), held-out synthetic tables", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(job, run: RunDir, out: dict) -> str:
    res = out["results"]
    draw_figure(run.file("cells.png"), out, job.eval.figure_tables)
    lines = ["# UniTable (miniature)", "",
             f"Synthetic: {job.data.unlabelled} unlabelled and {job.data.labelled} labelled tables rendered, "
             f"{job.data.test} held out; image frame {job.data.image_size} px, encoder "
             f"{job.model.encoder_layers} x d{job.model.d_model}, decoder {job.model.decoder_layers} layers; "
             f"fine-tuning {job.finetune.epochs} epochs (encoder frozen for {job.finetune.freeze_encoder_epochs}) "
             "for both arms.", "", results_table(res), ""]
    p, s = res.get("pretrained", {}).get("synthetic"), res.get("scratch", {}).get("synthetic")
    if p and s:
        d = p["teds_struct"] - s["teds_struct"]
        mean, se, ahead, behind = paired_gain(p, s)
        lines.append(f"Pretrained minus from scratch, TEDS-struct on the synthetic test set: {d:+.4f} "
                     f"({'pretraining helps' if d > 0 else 'pretraining does not help here'}); paired over the "
                     f"{p['tables']} tables {mean:+.4f} ± {se:.4f} (SE), pretrained higher on {ahead}, "
                     f"lower on {behind}.")
    kv = out.get("kv")
    if kv:
        lines.append(f"KV cache: {kv['tokens']} structure tokens, batch {kv['batch']}: {kv['cached_s']:.2f} s cached vs "
                     f"{kv['uncached_s']:.2f} s uncached ({kv['speedup']:.1f}x), outputs identical: {kv['identical']}.")
    if out["bad"]:
        lines.append(f"Skipped (bad images): {len(out['bad'])}: " + ", ".join(f"{n} ({w})" for n, w in out["bad"]))
    lines += ["", "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in out["times"].items()), "",
              "![cells](cells.png)", ""]
    text = "\n".join(lines)
    run.write_summary(text)
    slim = {sys: {split: {k: v for k, v in r.items()} for split, r in sets.items()} for sys, sets in res.items()}
    run.write_json("results.json", {"results": slim, "kv": kv, "times": out["times"], "bad": out["bad"]})
    samples = {arm: [{"name": r["name"], "html": r["html"]} for r in sets.get("synthetic", [])[:20]]
               for arm, sets in out["preds"].items()}
    run.write_json("predictions_sample.json", samples)
    atomic_write(run.file("README.txt"), "summary.md: results; cells.png: predicted cells; results.json: numbers\n")
    return text


__all__ = ["draw_figure", "results_table", "write_report"]

