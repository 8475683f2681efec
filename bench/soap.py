"""SOAP benchmark: pass@1 and NET/NMU/NTMU per iteration for LLM-written code (HumanEval, MBPP) and
for the slow start (correct-but-slow rewrites of canonical solutions) optimised with and without
the profile; writes the `soap` section of BENCHMARKS.md.

Runs the SOAP job (configs/soap/laptop.yaml unless --config) as a fresh process with the
benchmark's size below (each --set overrides it), then tables the run's metrics.jsonl.

    python -m bench.soap                                  # llamacpp if a llama-server is built, else hf SmolLM2
    python -m bench.soap --full                           # the config exactly as written (about 1 h on 2 cores)
    python -m bench.soap --llm hf --set loop.iterations=2
    python -m bench.soap --from-run runs/bench-soap/<stamp>/soap/<run> [more runs]   # rewrite from finished runs

Target (the paper's direction): on the slow start, NET and NTMU fall further with the full
profile than with plain self-refine (feedback none), on the same model and tasks.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from bench.report import BENCHMARKS, run_job, run_load_sentence, write_section
from core.runs import markdown_table

# sized for 2 shared cores: 4 + 4 generated tasks, the 10 slow rewrites, one refinement iteration
SIZE = ["data=[{source: humaneval, limit: 4}, {source: mbpp, split: test, limit: 4}]", "loop.iterations=1",
        "loop.feedback=[full, none]", "loop.max_new_tokens=192", "slow_limit=10"]


def llama_server_built() -> bool:
    try:
        from core.llm.llama_server import server_binary

        server_binary()
        return True
    except Exception:  # noqa: BLE001 - no binary (or no llamacpp backend in this checkout)
        return False


def _f(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) or x == "nan" else f"{float(x):.3f}"


def tables(rows: list[dict]) -> tuple[str, dict]:
    out, verdict = [], {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        rs = [r for r in rows if r["arm"] == arm]
        body = []
        for fb in dict.fromkeys(r["feedback"] for r in rs):
            f = [r for r in rs if r["feedback"] == fb]
            a, b = f[0], f[-1]
            body.append([fb, f"{_f(a['pass@1'])} -> {_f(b['pass@1'])}", f"{_f(a['NET'])} -> {_f(b['NET'])}",
                         f"{_f(a['NMU'])} -> {_f(b['NMU'])}", f"{_f(a['NTMU'])} -> {_f(b['NTMU'])}",
                         f"{b['tasks']}/{b['tasks_total']}", sum(r.get("new_passed", 0) for r in f),
                         sum(r.get("kept", 0) for r in f)])
            verdict[(arm, fb)] = b
        out.append(f"**{arm}** (iteration 0 -> {rs[-1]['iteration']})\n\n" + markdown_table(
            ["feedback", "pass@1", "NET", "NMU", "NTMU", "profiled / tasks", "new versions passing", "kept"], body))
    return "\n\n".join(out), verdict


def target_line(verdict: dict) -> str:
    full, none = verdict.get(("humaneval-slow-start", "full")), verdict.get(("humaneval-slow-start", "none"))
    if not full or not none:
        return "Target not measured (the slow start did not run with both full and none feedback)."
    net_ok = float(full["NET"]) < float(none["NET"])
    ntmu_ok = float(full["NTMU"]) < float(none["NTMU"])
    met = "met" if net_ok and ntmu_ok else "missed"
    return (f"Target (slow start: with the profile, NET and NTMU fall further than without): **{met}**: "
            f"NET {_f(full['NET'])} with the profile vs {_f(none['NET'])} without; NTMU {_f(full['NTMU'])} vs "
            f"{_f(none['NTMU'])}.")


def plot(rows: list[dict], path: Path) -> Path:
    """NET and NTMU against iteration, one panel per arm and metric, a line per feedback mode."""
    from core.plots import plot_curves

    panels = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        rs = [r for r in rows if r["arm"] == arm]
        modes = list(dict.fromkeys(r["feedback"] for r in rs))
        for m in ("NET", "NTMU"):
            series = {fb: [None if r[m] is None or r[m] != r[m] or r[m] == "nan" else float(r[m])
                           for r in rs if r["feedback"] == fb] for fb in modes}
            if any(v is not None for ys in series.values() for v in ys):
                panels.append({"x": {fb: [r["iteration"] for r in rs if r["feedback"] == fb] for fb in modes},
                               "series": series, "xlabel": f"iteration ({arm})", "ylabel": f"{m} (1 = canonical)",
                               "hlines": {"canonical": 1.0}})
    return plot_curves(path, panels, title="SOAP: normalised execution time and memory-time against iteration")


def spread_sentence(runs: list[Path]) -> str:
    """The run-to-run ET noise the keep rule works against: (max - min) / median of each profiled
    execution's timed runs, over every cached execution of the runs."""
    from codeopt.metrics import relative_spread

    spreads = []
    for run in runs:
        for f in (run / "cache").rglob("*.json"):
            d = json.loads(f.read_text())
            prof = d.get("profile") if "profile" in d else (d.get("new") or {}).get("profile")
            if isinstance(prof, dict) and len(prof.get("et_runs") or []) >= 2:
                spreads.append(relative_spread(prof["et_runs"]))
    if not spreads:
        return "No execution was profiled, so there is no run-to-run spread to report."
    q = np.percentile(spreads, [50, 90])
    return (f"Run-to-run ET spread ((max - min) / median of an execution's timed runs), over the {len(spreads)} "
            f"profiled executions: median {q[0]:.1%}, 90th percentile {q[1]:.1%}, largest {max(spreads):.1%}.")


def final_ets(run: Path, iterations: int) -> dict[tuple[str, str], dict[str, tuple[float, float, float]]]:
    """(start, feedback) -> task -> (ET at iteration 0, ET of the final kept version, canonical ET), for
    the tasks whose final version and canonical solution both pass, read from the run's step cache."""
    from codeopt.loop import Candidate, SoapCache

    cache, out = SoapCache(run / "cache"), {}
    for start_dir in sorted(p for p in cache.root.iterdir() if p.is_dir() and p.name != "canonical"):
        for fb_dir in sorted(p for p in start_dir.iterdir() if p.is_dir() and p.name != "init"):
            lanes = {}
            for f in fb_dir.rglob(f"iter{iterations}.json"):
                task = f.parent.relative_to(fb_dir).as_posix()
                cur = Candidate(**json.loads(f.read_text())["current"])
                canon, first = cache.get("canonical", task), cache.get(start_dir.name, "init", task)
                if cur.overhead and canon and canon.get("status") == "passed" and first and first.get("profile"):
                    lanes[task] = (first["profile"]["et_s"], cur.overhead.et_s, canon["profile"]["et_s"])
            out[(start_dir.name, fb_dir.name)] = lanes
    return out


def per_task_lines(runs: list[Path], iterations: int) -> list[str]:
    """What ratios of totals hide: per task, how many ended faster than they started, the geometric
    mean of final ET over canonical ET, and the profile's NET gap on the slow start without the
    one task that contributes most to it."""
    lines = []
    for run in runs:
        ets = final_ets(run, iterations)
        for (start, fb), lanes in ets.items():
            if not lanes:
                continue
            faster = sum(e < e0 for e0, e, _ in lanes.values())
            geo = float(np.exp(np.mean([np.log(e / c) for _, e, c in lanes.values()])))
            lines.append(f"{start} start, {fb}: {faster} of {len(lanes)} passing tasks ended faster than they "
                         f"started; geometric mean of ET / canonical ET {geo:.3f}")
        full, none = ets.get(("slow", "full"), {}), ets.get(("slow", "none"), {})
        both = sorted(set(full) & set(none))
        if len(both) >= 2:
            top = max(both, key=lambda t: abs(full[t][1] - none[t][1]))
            rest = [t for t in both if t != top]
            canon = sum(full[t][2] for t in rest)
            lines.append(f"slow start without {top} (the task whose final ET differs most between full and none): "
                         f"NET {sum(full[t][1] for t in rest) / canon:.3f} with the profile vs "
                         f"{sum(none[t][1] for t in rest) / canon:.3f} without, over {len(rest)} tasks")
    return lines


def write(runs: list[Path], minutes: float | None, command: str | None = None, note: str = "",
          section: str = "soap", sized: bool = True) -> str:
    """The section from one or more finished runs of the same model (their arms side by side)."""
    import yaml

    rows, cfgs = [], []
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfgs.append(cfg)
        rows += [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    cfg = cfgs[0]
    llm = cfg["llm"]
    model = llm["llamacpp"]["model"] if llm["backend"] == "llamacpp" else llm["hf"]["model"]["name"]
    table, verdict = tables(rows)
    png = f"bench_{section}.png"
    plot(rows, BENCHMARKS.parent / png)
    starts = {s for c in cfgs for s in c["loop"]["starts"]}
    data = "; ".join(f"{d['source']} first {d['limit']}" for c in cfgs if "generated" in c["loop"]["starts"]
                     for d in c["data"])
    arms = []
    if "generated" in starts:
        arms.append(f"generated start on {data}")
    if "slow" in starts:
        n_slow = max((r["tasks_total"] for r in rows if r["arm"].endswith("slow-start")), default=0)
        arms.append(f"slow start on {n_slow} slow rewrites of HumanEval canonical solutions (codeopt/slow.py)")
    how = ("Executions ran as Ray tasks and the LLM on a Ray actor." if cfg["execution"]["ray"] else
           "Ray was not used (--no-ray): the LLM ran in the driver and the sandboxes as 2 threads.")
    size = "at benchmark size" if sized else "as written"
    body = f"""## SOAP (ray_jobs.soap, configs/soap/laptop.yaml {size}, {model})

Model **{model}** ({llm['backend']} backend, greedy, {cfg['loop']['max_new_tokens']} new tokens at most);
{'; '.join(arms)}; {cfg['loop']['iterations']} refinement iteration(s); feedback
{', '.join(cfg['loop']['feedback'])} ("none" = plain self-refine). Every execution ran in the
`{cfg['sandbox']['isolation']}` sandbox; ET is the {cfg['profile']['clock']} clock, median of
{cfg['profile']['runs']} runs; NET/NMU/NTMU are ratios of totals against the canonical solutions
over the tasks whose current version passes. {how} {run_load_sentence(runs)}{f' The run took {minutes:.0f} min.' if minutes else ''}

{table}

{target_line(verdict)}

Per task, at the last iteration:

{chr(10).join("- " + x for x in per_task_lines(runs, cfg["loop"]["iterations"]))}

{spread_sentence(runs)}

![NET and NTMU against iteration]({png})

Run directories: {', '.join(f'`{r}`' for r in runs)} (summary.md, plots, every prompt and reply in cache/).
{chr(10) + note + chr(10) if note else ''}"""
    write_section(section, body, command=command)
    return body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/soap/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--llm", choices=["auto", "llamacpp", "hf"], default="auto")
    ap.add_argument("--out", default="runs/bench-soap")
    ap.add_argument("--from-run", nargs="+", help="rewrite the section from finished run directories")
    ap.add_argument("--note", default="", help="a paragraph added to the section (what ran, what did not)")
    ap.add_argument("--full", action="store_true", help="run the config as written, not at the benchmark's size")
    ap.add_argument("--no-ray", action="store_true",
                    help="run the loop in one process (LLM in the driver, sandboxes as threads): for a machine "
                         "so loaded that Ray's raylet misses its 30 s start-up window")
    args = ap.parse_args(argv)
    if args.from_run:
        cmd = (f"python -m bench.soap{' --full' if args.full else ''} --from-run {' '.join(args.from_run)}"
               + (" --note <the last paragraph>" if args.note else ""))
        print(write([Path(r) for r in args.from_run], None, command=cmd, note=args.note, sized=not args.full))
        return 0
    llm = args.llm if args.llm != "auto" else ("llamacpp" if llama_server_built() else "hf")
    overrides = [*([] if args.full else SIZE), f"llm.backend={llm}", *(["execution.ray=false", "llm.pool.actors=0"] if args.no_ray else []),
                 *args.set]
    run, minutes = run_job("soap", args.config, overrides, args.out)
    print(write([run], minutes, note=args.note, sized=not args.full))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
