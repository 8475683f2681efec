"""Peak memory of one client step, Spry (forward-mode jvp) against backprop.

Same model, batch and sequence length; each measurement in a fresh process (peak RSS of
that process during the step, model included). Writes the `memory` section of BENCHMARKS.md.

    .venv/bin/python -m bench.memory
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from bench.report import write_section
from core.runs import markdown_table, setup_logging
from fl.memory import measure_in_subprocess

TIME_NOTE = """
Why the step time misses 1.5x (profiled with torch.profiler on SmolLM2-135M, batch 8 x 256,
2 threads; both `torch.func.jvp` and `torch.autograd.forward_ad` dual tensors took the same
~7 s): the jvp step costs about 3.6x a plain forward pass (2.0 s), of which matrix products
are 4.0 s (986 `aten::mm` calls: every frozen projection runs once on the primal and once on
the tangent, LoRA pairs three times) and eager attention's softmax/exp tangents another 1 s.
Backprop here is unusually cheap, about 2.3x a forward, because the frozen base weights need
no weight gradients, only activation gradients. So on 2 CPU threads Spry buys its 3x memory
with about 1.6x time per step; what decides wall time to a given accuracy is measured
by accuracy against wall time, not per step.
"""

# (model, batch, seq, LoRA r, target modules)
CASES = [
    ("minilm", 16, 128, 8, ["query", "value"]),
    ("smollm2-135m", 8, 256, 8, ["q_proj", "v_proj"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="timed steps after the measured first step")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    setup_logging()
    rows, raw = [], []
    for model, batch, seq, r, targets in CASES:
        res = {mode: measure_in_subprocess(model, mode, batch, seq, r=r, targets=targets, device=args.device,
                                           steps=args.steps, timeout=3600)
               for mode in ("backprop", "jvp")}
        raw.append(res)
        bp, fw = res["backprop"], res["jvp"]
        ratio = bp["peak_rss_mb"] / fw["peak_rss_mb"]
        rows.append([model, f"{batch}x{seq}", r, f"{bp['peak_rss_mb']:.0f}", f"{fw['peak_rss_mb']:.0f}",
                     f"{ratio:.2f}x", f"{bp['step_added_mb']:.0f}", f"{fw['step_added_mb']:.0f}",
                     f"{bp['step_s']:.2f}", f"{fw['step_s']:.2f}", f"{fw['step_s'] / bp['step_s']:.2f}x"])
        print(json.dumps(res))
    table = markdown_table(
        ["model", "batch x seq", "LoRA r", "backprop peak (MB)", "spry peak (MB)", "peak ratio",
         "backprop step adds (MB)", "spry step adds (MB)", "backprop step (s)", "spry step (s)", "time ratio"],
        rows,
    )
    smol = raw[-1]
    verdict_mem = smol["backprop"]["peak_rss_mb"] / smol["jvp"]["peak_rss_mb"]
    verdict_time = smol["jvp"]["step_s"] / smol["backprop"]["step_s"]
    body = f"""## spry: peak memory of one client step, Spry vs backprop

Command: `.venv/bin/python -m bench.memory` ({platform.machine()}, {torch.get_num_threads()} threads, device {args.device}).
Each cell is a fresh process: the model is built, then the peak RSS of the process is reset
(`/proc/self/clear_refs`) and one training step runs; "peak" is the process's whole peak during
that step (model included), "step adds" is that peak minus the RSS just before it. Step times
are the mean of {args.steps} further steps. LoRA on the attention query/value projections plus a
mean-pooled linear head; eager attention (forward-mode AD needs it on CPU).

{table}

Target (SmolLM2-135M, seq 256): total peak at least 3x lower than backprop, with step time within
1.5x of backprop. Measured: {verdict_mem:.2f}x lower peak ({'met' if verdict_mem >= 3 else 'MISSED'}),
step time {verdict_time:.2f}x backprop's ({'met' if verdict_time <= 1.5 else 'MISSED'}).
{TIME_NOTE if verdict_time > 1.5 else ''}"""
    write_section("memory", body)


if __name__ == "__main__":
    main()
