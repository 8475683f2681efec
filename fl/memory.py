"""Peak memory of one client step, forward-mode (Spry) against backprop, each in a fresh process.

`python -m fl.memory --mode jvp --model minilm --batch 16 --seq 64` prints one JSON line:
peak RSS of the process (ru_maxrss), RSS before the step, and the step time. A fresh
process per measurement keeps one mode's allocations from hiding the other's peak.
On CUDA the peak allocated GPU memory is reported as well.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time

import torch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water RSS mark (Linux >= 4.0), so that loading the model,
    whose transient copies can peak above the step, does not hide the step's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's high-water RSS in MB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MODES = ("jvp", "jvp_func", "backprop", "forward")


def measure(model_name: str, mode: str, batch: int, seq: int, r: int, targets: list[str],
            device: str = "auto", steps: int = 1, time_modes: list[str] | None = None) -> dict:
    """Peak memory of one `mode` step in this process; with `time_modes`, also the step time of
    each of those modes, timed in turns (A, B, C, A, B, C, ...: a change of load on a shared
    machine then falls on every mode alike), `steps` turns after one warm-up step each.

    Modes: jvp (fl.jvp_impl=fused), jvp_func (torch.func.jvp), backprop, forward (two plain
    forward passes: the zeroth-order methods)."""
    from core.models import AdapterConfig, ModelConfig, build_classifier, trainable_state
    from core.seeding import generator
    from fl.forward_grad import forward_gradient
    from fl.local import classification_loss

    cfg = ModelConfig(name=model_name, max_length=seq, device=device)
    model = build_classifier(cfg, AdapterConfig(r=r, alpha=float(r), target_modules=targets), 2, seed=0)
    params = trainable_state(model)
    model.requires_grad_(False)
    dev = next(model.parameters()).device
    g = generator("cpu", 0, "memory")
    data = {
        "input_ids": torch.randint(1000, 2000, (batch, seq), generator=g).to(dev),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long, device=dev),
        "labels": torch.randint(0, 2, (batch,), generator=g).to(dev),
    }
    params = {k: v.to(dev) for k, v in params.items()}

    def step(mode: str = mode) -> None:
        if mode == "forward":  # zeroth order (SPSA, central differences): two plain forward passes
            with torch.no_grad():
                classification_loss(model, params, data)
                classification_loss(model, params, data)
        elif mode in ("jvp", "jvp_func"):
            with torch.no_grad():
                forward_gradient(lambda p: classification_loss(model, p, data), params, 1, generator("cpu", 0, "v"),
                                 jvp_impl="fused" if mode == "jvp" else "func")
        else:
            leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
            classification_loss(model, leaves, data).backward()

    # Memory from the first step in a fresh process: a warm-up step would leave freed memory
    # in the allocator and hide part of the next step's growth. Time from the steps after it.
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    gc.collect()
    peak_reset = _reset_peak_rss()
    before = _rss_mb()
    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    # The whole process's peak during the step: model, data and the step's own memory.
    peak = peak_rss_mb() if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    def timed(m: str) -> float:
        t0 = time.perf_counter()
        step(m)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {m: [] for m in (time_modes or [mode])}
    for m in time_modes or []:
        timed(m)  # warm-up: the measured step above warmed only `mode`
    for _ in range(steps):
        for m in times:
            times[m].append(timed(m))
    step_s = sum(times[mode]) / steps if steps and mode in times else float("nan")
    out = {
        "model": model_name, "mode": mode, "batch": batch, "seq": seq,
        "peak_rss_mb": peak, "rss_before_step_mb": before, "step_s": step_s,
        "trainable_params": sum(v.numel() for v in params.values()),
        "step_times": times,
    }
    out["step_added_mb"] = out["peak_rss_mb"] - before
    if peak_cuda is not None:
        out["peak_cuda_mb"] = peak_cuda
    return out


def measure_in_subprocess(model_name: str, mode: str, batch: int, seq: int, r: int = 1,
                          targets: list[str] | None = None, device: str = "auto", steps: int = 1,
                          timeout: float = 900, time_modes: list[str] | None = None) -> dict:
    targets = targets or ["query", "value"]
    cmd = [sys.executable, "-m", "fl.memory", "--model", model_name, "--mode", mode, "--batch", str(batch),
           "--seq", str(seq), "--r", str(r), "--targets", ",".join(targets), "--device", device,
           "--steps", str(steps)] + (["--time-modes", ",".join(time_modes)] if time_modes else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--r", type=int, default=1)
    ap.add_argument("--targets", default="query,value")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--time-modes", default="", help="comma-separated modes to time in turns after the measured step")
    a = ap.parse_args()
    from core.runs import setup_logging

    setup_logging()
    print(json.dumps(measure(a.model, a.mode, a.batch, a.seq, a.r, a.targets.split(","), a.device, a.steps,
                                 [m for m in a.time_modes.split(",") if m])))


if __name__ == "__main__":
    main()
