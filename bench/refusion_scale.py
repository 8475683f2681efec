"""How large should the fused vector be? The reranker arm at several `fit.fusion_scale` values
(each module's fused vector starts at that fraction of its CLS key/value output's norm; 0 adds the
unit-norm sentence embeddings unscaled), against no retrieval.

For each it gives the test accuracy of the untrained model with its prototype head (what the
fusion does to the representation before any step) and after the arm's fine-tuning, mean over
the config's seeds, plus the dev accuracy the scale would be chosen on.

    .venv/bin/python -m bench.refusion_scale --config configs/refusion/in_domain.yaml
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.report import section_for, write_section
from core.config import load
from core.runs import markdown_table


def _mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}"


def _ratio_line(ratios: list[float]) -> str:
    """How much larger the CLS key/value outputs are than the unscaled mean retrieval (the gain
    calibration at fusion_scale 1), over modules and seeds."""
    if not ratios:
        return ""
    q = statistics.quantiles(ratios, n=4)
    return (f"\nThe mean norm of a module's CLS key/value output over that of the unscaled mean retrieval (the gain at "
            f"fusion_scale 1), over the {len(ratios)} module-seed pairs: "
            f"min {min(ratios):.0f}, quartiles {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f}, max {max(ratios):.0f}.")


def main() -> None:
    from tqdm import tqdm

    from retrieval.experiment import ARM_CHOICE, RefusionConfig, prepare, run_arm, seed_data
    from retrieval.model import RetrievalClassifier
    from retrieval.train import accuracy, calibrate_gains, init_head

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/refusion/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--scales", default="0,0.3,1,3", help="comma-separated fit.fusion_scale values")
    ap.add_argument("--cache", help="a ReFusion run's cache folder, to reuse its neighbours")
    args = ap.parse_args()
    cfg = load(RefusionConfig, args.config, args.set)
    scales = [float(s) for s in args.scales.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(cfg, Path(args.cache or tmp))
    arms = [("none", None)] + [("reranker", s) for s in scales]
    rows, ratios = [], {}
    bar = tqdm(total=len(arms) * len(cfg.seeds), desc="refusion_scale")
    for arm, scale in arms:
        cfg.fit.fusion_scale = scale or 0.0
        before, dev, test = [], [], []
        for seed in cfg.seeds:
            train, _, test_data = seed_data(prep, cfg, seed, arm)
            model = RetrievalClassifier(cfg.model, len(prep.train_pool.label_names), cfg.k,
                                        prep.corpus_embeddings.shape[1], ARM_CHOICE[arm], seed)
            if scale:
                ratios.update({(seed, n): g / scale for n, g in calibrate_gains(model, train, scale).items()})
            init_head(model, train, cfg.fit.head_scale)
            before.append(accuracy(model, test_data))
            out = run_arm(cfg, prep, arm, seed, cfg.fit.lr)
            dev.append(out["dev_accuracy"])
            test.append(out["test_accuracy"])
            bar.update()
        label = "no retrieval" if arm == "none" else f"reranker, fusion_scale {scale:g}" + (" (unscaled)" if scale == 0 else "")
        rows.append([label, f"{statistics.mean(before):.3f}", f"{statistics.mean(dev):.3f}", _mean_std(test),
                     " ".join(f"{v:.3f}" for v in test)])
    bar.close()
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    body = f"""## refusion, `{args.config}`: the fused vector's scale

Command: `.venv/bin/python -m bench.refusion_scale --config {args.config} --scales {args.scales}{' ' + overrides if overrides else ''}`.
The reranker at every key/value, its gain calibrated so that the mean retrieval starts at fusion_scale x the
mean norm of the CLS output it is added to (0: the unit-norm embeddings added as they are); {cfg.per_class}
examples per class, seeds {cfg.seeds}, {cfg.fit.steps} steps. "Before training": the untrained model with its
prototype head; "dev" is what a scale would be chosen on (mean over seeds of {2 * cfg.per_class} examples).
{_ratio_line(list(ratios.values()))}

{markdown_table(["arm", "test, before training", "dev, trained", "test, trained (mean ± std)",
                 "test per seed " + " ".join(map(str, cfg.seeds))], rows)}
"""
    write_section(section_for("refusion_scale", args.config), body)
    print(body)


if __name__ == "__main__":
    main()
