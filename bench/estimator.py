"""Gradient-estimate quality of Spry and its baselines on the real model: cos(ĝ, ∇L) per draw.

    python -m bench.estimator                     # 100 draws per setting (the benchmark)
    python -m bench.estimator --draws 5 --print   # a check of the script: prints, writes nothing

The mechanism Spry rests on: a K=1 forward gradient over d parameters has E[cos²(ĝ, ∇L)] ≈ 1/d,
so a client that perturbs only its chunk gets a better estimate per forward pass than one
that perturbs every tensor. Measured on MiniLM-L6 + LoRA r=1 on query/value with the prototype
head (configs/spry/laptop.yaml) and one real Rotten Tomatoes training batch, against the
backprop gradient of the same tensors on the same batch:

- Spry's forward gradient on one chunk of 1, 2 or 4 LoRA tensors (the head with its own
  perturbation, fl.head_jvp=separate, leaves the chunk's estimate alone), on the head alone,
  and on a chunk perturbed jointly with the head (fl.head_jvp=joint; cosine over the chunk's
  tensors, the ones the estimate is for);
- every tensor at once (fedfgd), with the head joint and with the head apart;
- SPSA (fedmezo) and central differences averaged over K = 1, 4, 16 perturbations, over every
  tensor as those methods train them.

The weights are those after a few backprop steps on other batches: at LoRA's initialization
B = 0, so A's gradient is exactly 0 and a cosine on an A-only chunk is undefined.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import BENCHMARKS, load_sentence, write_section
from core.config import load
from core.models import prototype_head
from core.plots import plot_curves  # noqa: F401  (sets the Agg backend)
from core.runs import markdown_table
from core.seeding import generator
from fl.config import SpryConfig
from fl.forward_grad import forward_gradient, perturbations
from fl.local import backprop_train, batches, class_sums, classification_loss
from fl.methods import is_head
from fl.runtime import Runtime
from fl.split import group_tensors
from fl.zeroth_order import central_difference_gradient, spsa_gradient

CONFIG = "configs/spry/laptop.yaml"
PNG = "bench_estimator.png"


def cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> float:
    x = torch.cat([a[k].flatten().double() for k in keys])
    y = torch.cat([b[k].flatten().double() for k in keys])
    return float(x @ y / (x.norm() * y.norm()).clamp_min(1e-300))


def spread_chunks(chunks: list[list[str]], n: int) -> list[list[str]]:
    """n chunks spread over the layers (first, ..., last): the bench's sample of a size's chunks."""
    idx = np.unique(np.linspace(0, len(chunks) - 1, min(n, len(chunks))).round().astype(int))
    return [chunks[i] for i in idx]


def setup(cfg: SpryConfig, warm_steps: int, seed: int, proto_examples: int):
    """(runtime, trainable state, batch, backprop gradient of every trainable tensor)."""
    rt = Runtime(cfg)
    all_idx = np.arange(len(rt.train_data["labels"]))
    proto_idx = np.random.default_rng(seed).permutation(all_idx)[:proto_examples]
    sums, counts = class_sums(rt.model, rt.train_data, proto_idx, rt.num_labels)
    state = rt.state()
    state["head.weight"], state["head.bias"] = prototype_head(sums, counts, cfg.fl.head_scale)
    rt.load_state(state)
    it = batches(rt.train_data, all_idx, cfg.fl.batch_size, seed)
    if warm_steps:
        trained, _ = backprop_train(rt.model, rt.params(rt.trainable_names), it, warm_steps, "adamw", 1e-3, 0.0)
        rt.load_state(trained)
    batch = next(it)  # a batch the warm-up did not see
    leaves = {k: p.clone().requires_grad_(True) for k, p in rt.params(rt.trainable_names).items()}
    loss = classification_loss(rt.model, leaves, batch)
    grad = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
    return rt, rt.params(rt.trainable_names), batch, grad


def identity_estimate(grad: dict[str, torch.Tensor], groups: list[list[str]], k: int, gen: torch.Generator):
    """ĝ of a K-perturbation Gaussian estimate whose directional derivatives are exact: d = ∇L·v.

    A jvp returns exactly ∇L·v (up to float rounding), and a central difference with eps=1e-3
    returns it up to O(eps²) and float round-off: with the backprop gradient in hand, the
    100-draw statistics cost no forward passes. Draws v as fl.forward_grad does (key order).
    """
    est = {key: torch.zeros_like(grad[key]) for g in groups for key in g}
    for keys in groups:
        for _ in range(k):
            v = perturbations({key: grad[key] for key in keys}, gen)
            d = float(sum((grad[key].double() * v[key].double()).sum() for key in keys))
            for key in keys:
                est[key].add_(v[key], alpha=d / k)
    return est


def measure(rt, params, batch, grad, draws: int, real_draws: int, chunks_per_size: int, seed: int) -> list[dict]:
    """Per setting: cosine statistics over `draws` exact-identity draws, and over `real_draws`
    draws through the estimator's own code (jvps or finite differences on the model)."""
    loss_fn = lambda p: classification_loss(rt.model, p, batch)  # noqa: E731
    names = list(params)
    head = [n for n in names if is_head(n)]
    lora = [n for n in names if not is_head(n)]
    rows: list[dict] = []

    def run(label: str, family: str, groups: list[list[str]], scored: list[str], k: int, passes: int, real) -> None:
        keys = [key for g in groups for key in g]
        cos = [cosine(identity_estimate(grad, groups, k, generator("cpu", seed, "estimator", label, i)), grad, scored)
               for i in range(draws)]
        t0 = time.perf_counter()
        real_cos = [cosine(real({key: params[key] for key in keys}, generator("cpu", seed, "real", label, i)),
                           grad, scored) for i in range(real_draws)]
        c, rc = np.asarray(cos), np.asarray(real_cos)
        rows.append({"label": label, "family": family, "d": sum(params[key].numel() for key in scored),
                     "passes": passes, "mean": float(c.mean()), "sd": float(c.std(ddof=1)),
                     "q10": float(np.quantile(c, 0.1)), "q90": float(np.quantile(c, 0.9)),
                     "real_mean": float(rc.mean()) if len(rc) else float("nan"),
                     "real_se": float(rc.std(ddof=1) / np.sqrt(len(rc))) if len(rc) > 1 else float("nan"),
                     "s_per_real_draw": (time.perf_counter() - t0) / max(real_draws, 1)})
        r = rows[-1]
        print(f"{label:45s} d={r['d']:>6d} cos {r['mean']:+.4f} ± {r['sd']:.4f}  real {r['real_mean']:+.4f}"
              f" ± {r['real_se']:.4f} ({r['s_per_real_draw']:.2f} s/draw)", flush=True)

    fg = lambda groups: (lambda p, g: forward_gradient(loss_fn, p, 1, g, groups)[1])  # noqa: E731
    for size in (1, 2, 4):
        for chunk in spread_chunks(group_tensors(lora, size), chunks_per_size):
            where = chunk[0].split(".lora_")[0].replace("backbone.base_model.model.", "")
            # separate: the chunk's own jvp (the head's is another group, which leaves this one alone)
            run(f"spry chunk of {size}, head separate [{where}]", f"spry {size}, head separate",
                [chunk], chunk, 1, 2, fg([chunk]))
            run(f"spry chunk of {size}, head joint [{where}]", f"spry {size}, head joint",
                [chunk + head], chunk, 1, 1, fg([chunk + head]))
    run("spry head alone (its own jvp)", "head alone", [head], head, 1, 1, fg([head]))
    run("all LoRA tensors, head separate", "all tensors, head separate", [lora], lora, 1, 2, fg([lora]))
    run("fedfgd: all tensors, head joint", "fedfgd (all tensors)", [names], names, 1, 1, fg([names]))
    eps = 1e-3
    run("fedmezo: SPSA, all tensors", "fedmezo (SPSA)", [names], names, 1, 2,
        lambda p, g: spsa_gradient(loss_fn, p, eps, g)[1])
    for k in (1, 4, 16):
        run(f"central differences K={k}, all tensors", f"central differences K={k}", [names], names, k, 2 * k,
            lambda p, g, k=k: central_difference_gradient(loss_fn, p, eps, k, g)[1])
    return rows


def plot(path: Path, rows: list[dict], draws: int) -> None:
    """Mean cosine against parameters per estimate (log x), ± 1.96 standard errors over the draws."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    families: dict[str, list[dict]] = {}
    for r in rows:
        families.setdefault(r["family"], []).append(r)
    markers = "osD^v<>phX*+x"
    for i, (fam, rs) in enumerate(families.items()):
        ax.errorbar([r["d"] * (1 + 0.03 * (i % 5)) for r in rs], [r["mean"] for r in rs],
                    yerr=[1.96 * r["sd"] / np.sqrt(draws) for r in rs], fmt=markers[i % len(markers)],
                    capsize=3, label=fam)
    ds = np.geomspace(min(r["d"] for r in rows), max(r["d"] for r in rows), 50)
    ax.plot(ds, np.sqrt(2 / (np.pi * ds)), "k--", lw=1, label="E|cos| of a K=1 forward gradient")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters per estimate")
    ax.set_ylabel(f"mean cos(ĝ, ∇L) over {draws} draws, 95% interval")
    ax.set_title("Gradient estimates, MiniLM-L6 + LoRA r=1, one Rotten Tomatoes batch", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100, help="draws per setting, directional derivatives exact (d = g·v)")
    ap.add_argument("--real-draws", type=int, default=10,
                    help="draws per setting through the estimator's own jvps / finite differences on the model")
    ap.add_argument("--proto-examples", type=int, default=1000, help="training examples for the prototype head")
    ap.add_argument("--chunks-per-size", type=int, default=3, help="chunks measured per chunk size, spread over layers")
    ap.add_argument("--warm-steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--print", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    cfg = load(SpryConfig, CONFIG)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    rt, params, batch, grad = setup(cfg, args.warm_steps, args.seed, args.proto_examples)
    rows = measure(rt, params, batch, grad, args.draws, args.real_draws, args.chunks_per_size, args.seed)
    minutes = (time.perf_counter() - t0) / 60

    table = markdown_table(
        ["estimate", "parameters d", "passes per estimate", f"mean cos ({args.draws} draws)", "sd over draws",
         "10%-90% of draws", f"mean cos, real passes ({args.real_draws} draws) ± se", "sqrt(2/(pi d))"],
        [[r["label"], f"{r['d']:,}", r["passes"], f"{r['mean']:.4f}", f"{r['sd']:.4f}",
          f"{r['q10']:.4f} to {r['q90']:.4f}", f"{r['real_mean']:.4f} ± {r['real_se']:.4f}",
          f"{np.sqrt(2 / (np.pi * r['d'])):.4f}"] for r in rows])
    out = (BENCHMARKS.parent if not args.print else Path("runs")) / PNG
    plot(out, rows, args.draws)

    def fam(name):
        return [r for r in rows if r["family"] == name]

    sep = {s: np.mean([r["mean"] for r in fam(f"spry {s}, head separate")]) for s in (1, 2, 4)}
    joint = {s: np.mean([r["mean"] for r in fam(f"spry {s}, head joint")]) for s in (1, 2, 4)}
    fedfgd = fam("fedfgd (all tensors)")[0]["mean"]
    checks = [
        f"smaller chunk, better estimate per forward pass (head separate): chunk of 1 {sep[1]:.4f}, of 2 "
        f"{sep[2]:.4f}, of 4 {sep[4]:.4f}, all tensors {fedfgd:.4f} -> "
        f"{'met' if sep[1] > sep[2] > sep[4] > fedfgd else 'MISSED'}",
        "head separate above head joint at every chunk size: " + ", ".join(
            f"size {s}: {sep[s]:.4f} vs {joint[s]:.4f}" for s in (1, 2, 4))
        + f" -> {'met' if all(sep[s] > joint[s] for s in (1, 2, 4)) else 'MISSED'}",
    ]
    # the real passes check the shortcut d = ∇L·v: their mean should sit within noise of the 100-draw mean
    gaps = [abs(r["mean"] - r["real_mean"]) / r["real_se"] for r in rows if r["real_se"] > 0]
    within = sum(g <= 2 for g in gaps)
    agreement = (f"The real passes' means lie within 2 of their standard errors of the {args.draws}-draw means in "
                 f"{within} of {len(gaps)} rows (largest gap {max(gaps):.1f} standard errors; a standard error from "
                 f"{args.real_draws} draws is itself rough).") if gaps else ""

    body = f"""## spry, `{CONFIG}`: gradient estimates against the backprop gradient (bench.estimator)

MiniLM-L6 + LoRA r=1 on query/value, prototype head (from {args.proto_examples} training reviews), after
{args.warm_steps} backprop AdamW steps (so LoRA B != 0), one Rotten Tomatoes training batch of {len(batch['labels'])}, against the
backprop gradient of the same tensors on the same batch. Chunks: {args.chunks_per_size} per size, spread over the layers
(each its own row).

How the draws are made: a jvp returns exactly ∇L·v, and a central difference (eps = 1e-3) returns it up to O(eps²)
and float round-off. So the {args.draws}-draw statistics draw v as the estimators do and take d = ∇L·v from the
backprop gradient (no forward pass); the column "real passes" reruns {args.real_draws} draws per row through the
estimator's own code on the model (fl.forward_grad.forward_gradient, fl.zeroth_order), as a check of that shortcut.
{agreement} "Passes per estimate" counts forward passes per client step: with the head separate,
the head's own jvp is one more (fl.head_jvp=separate); a central difference is two.
The reference column is E|cos| of a K=1 Gaussian forward gradient in d dimensions, d large.
{load_sentence(load_before)} {minutes:.1f} min in all.

{table}

{chr(10).join("- " + c for c in checks)}

Reading: with the head joint, a chunk's estimate is (g_c·v_c + g_h·v_h)·v_c; the head's term is noise for the
chunk, so the joint rows fall below the separate ones by the share of the head's gradient in the directional
derivative. fl.head_jvp=separate (the default) pays one more jvp per step for the head's own estimate.

![estimator cosine]({PNG})
"""
    if args.print:
        print(body)
    else:
        write_section("estimator", body)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
