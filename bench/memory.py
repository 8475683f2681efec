"""Peak memory of one client step, Spry (forward-mode jvp) against backprop.

Same model, batch and sequence length; each measurement in a fresh process (peak RSS of
that process during the step, model included). Writes the `memory` section of BENCHMARKS.md.

    .venv/bin/python -m bench.memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np
import torch

from bench.report import load_sentence, write_section
from core.runs import markdown_table, setup_logging
from fl.memory import measure_in_subprocess

TIME_NOTE = """
Where the time goes. Profiled earlier with torch.profiler (SmolLM2-135M, batch 8 x 256, 2
threads): the torch.func.jvp step cost about 3.6x a plain forward pass, matrix products 4.0 s of
it. Counting the products (tests/fl/test_forward_grad.py) shows why: under forward-mode AD
(torch.func.jvp and forward_ad dual tensors alike, torch 2.13) a frozen linear layer whose input
carries a tangent runs three matrix products, not two. `fl.jvp_impl=fused` runs it as one product
of twice the rows, W·[x; ẋ], which is the column "fused". What is left above a backprop step:
the tangents of eager attention (two products each for QKᵀ and AV, plus the softmax's) and of
the elementwise ops (RMSNorm, SiLU, rotary), which backprop through frozen weights skips for
layers before the first adapter; and backprop here is cheap, since frozen weights need no weight
gradients.
"""

# (model, batch, seq, LoRA r, target modules)
CASES = [
    ("minilm", 16, 128, 8, ["query", "value"]),
    ("smollm2-135m", 8, 256, 8, ["q_proj", "v_proj"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed turns (backprop, func, fused) after a warm-up")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    setup_logging()
    load_before = os.getloadavg()[0]
    rows, raw = [], []
    for model, batch, seq, r, targets in CASES:
        kw = dict(r=r, targets=targets, device=args.device, timeout=3600)
        # Memory: each mode's first step in its own fresh process. Time: the jvp process then
        # times the three modes in turns (backprop, func, fused, backprop, ...), so that load
        # from other work on the machine falls on all three alike.
        res = {mode: measure_in_subprocess(model, mode, batch, seq, steps=0, **kw) for mode in ("backprop", "jvp_func")}
        res["jvp"] = measure_in_subprocess(model, "jvp", batch, seq, steps=args.steps,
                                           time_modes=["backprop", "jvp_func", "jvp"], **kw)
        times = {m: float(np.mean(t)) for m, t in res["jvp"]["step_times"].items()}
        # per turn, the ratio to that turn's backprop step: the load of that moment cancels
        per_turn = {m: [a / b for a, b in zip(res["jvp"]["step_times"][m], res["jvp"]["step_times"]["backprop"])]
                    for m in ("jvp_func", "jvp")}
        raw.append({**res, "times": times, "per_turn": per_turn})
        bp, fn, fw = res["backprop"], res["jvp_func"], res["jvp"]
        rows.append([model, f"{batch}x{seq}", r, f"{bp['peak_rss_mb']:.0f}", f"{fn['peak_rss_mb']:.0f}",
                     f"{fw['peak_rss_mb']:.0f}", f"{bp['peak_rss_mb'] / fw['peak_rss_mb']:.2f}x",
                     f"{bp['step_added_mb']:.0f}", f"{fn['step_added_mb']:.0f}", f"{fw['step_added_mb']:.0f}",
                     f"{times['backprop']:.2f}", f"{times['jvp_func']:.2f}", f"{times['jvp']:.2f}",
                     f"{np.mean(per_turn['jvp_func']):.2f}x", f"{np.mean(per_turn['jvp']):.2f}x"])
        print(json.dumps(raw[-1]), flush=True)
    table = markdown_table(
        ["model", "batch x seq", "LoRA r", "backprop peak (MB)", "spry func peak (MB)", "spry fused peak (MB)",
         "peak ratio (backprop / fused)", "backprop step adds (MB)", "func step adds (MB)", "fused step adds (MB)",
         "backprop step (s)", "func step (s)", "fused step (s)", "func / backprop", "fused / backprop"],
        rows,
    )
    smol = raw[-1]
    verdict_mem = smol["backprop"]["peak_rss_mb"] / smol["jvp"]["peak_rss_mb"]
    verdict_time = float(np.mean(smol["per_turn"]["jvp"]))
    body = f"""## spry: peak memory of one client step, Spry vs backprop

Command: `.venv/bin/python -m bench.memory` ({platform.machine()}, {torch.get_num_threads()} threads, device {args.device}).
Each cell is a fresh process: the model is built, then the peak RSS of the process is reset
(`/proc/self/clear_refs`) and one training step runs; "peak" is the process's whole peak during
that step (model included), "step adds" is that peak minus the RSS just before it. Spry's step
is one jvp over every LoRA tensor and the head, with `fl.jvp_impl=func` (torch.func.jvp) and
`fused` (the default: frozen linears take W·[x; ẋ] in one product). Step times: after a warm-up,
the three modes are timed in turns in one process ({args.steps} turns of backprop, func, fused),
and the ratios are the mean over turns of each turn's ratio to its backprop step, so a change of
load falls on all three alike. {load_sentence(load_before)} LoRA on the attention query/value projections plus a
mean-pooled linear head; eager attention (forward-mode AD needs it on CPU).

{table}

Target (SmolLM2-135M, seq 256): total peak at least 3x lower than backprop, with step time within
1.5x of backprop. Measured: {verdict_mem:.2f}x lower peak ({'met' if verdict_mem >= 3 else 'MISSED'}),
step time {verdict_time:.2f}x backprop's with `fused` ({'met' if verdict_time <= 1.5 else 'MISSED'}; with
`func`, {float(np.mean(smol['per_turn']['jvp_func'])):.2f}x). Per turn (fused / backprop):
{', '.join(f'{x:.2f}' for x in smol['per_turn']['jvp'])}; (func / backprop): {', '.join(f'{x:.2f}' for x in smol['per_turn']['jvp_func'])}.
{TIME_NOTE}"""
    write_section("memory", body)


if __name__ == "__main__":
    main()
