"""The SOAP run's summary: pass@1 and NET/NMU/NTMU per iteration for each start and feedback mode,
what was excluded and why, and NET/NTMU against iteration as a plot."""

from __future__ import annotations

import math

from core.config import to_yaml
from core.plots import plot_curves
from core.runs import RunDir, markdown_table


def _f(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def curve_table(curves: list[dict]) -> str:
    rows = [[r["feedback"], r["iteration"], _f(r["pass@1"]), _f(r["NET"]), _f(r["NMU"]), _f(r["NTMU"]),
             f"{r['tasks']}/{r['tasks_total']}", r.get("new_passed", "-"), r.get("kept", "-")] for r in curves]
    return markdown_table(["feedback", "iteration", "pass@1", "NET", "NMU", "NTMU", "profiled / tasks",
                           "new versions passing", "kept"], rows)


def first_last_table(curves: list[dict]) -> str:
    """Per feedback mode: iteration 0 against the last one."""
    rows = []
    for fb in dict.fromkeys(r["feedback"] for r in curves):
        rs = [r for r in curves if r["feedback"] == fb]
        a, b = rs[0], rs[-1]
        rows.append([fb, f"{_f(a['pass@1'])} -> {_f(b['pass@1'])}", f"{_f(a['NET'])} -> {_f(b['NET'])}",
                     f"{_f(a['NMU'])} -> {_f(b['NMU'])}", f"{_f(a['NTMU'])} -> {_f(b['NTMU'])}",
                     sum(r.get("kept", 0) for r in rs)])
    return markdown_table(["feedback", "pass@1", "NET", "NMU", "NTMU", "versions kept"], rows)


def plot_arm(run: RunDir, arm: str, curves: list[dict]) -> str:
    modes = list(dict.fromkeys(r["feedback"] for r in curves))
    xs = {fb: [r["iteration"] for r in curves if r["feedback"] == fb] for fb in modes}
    panels = [{"x": xs, "series": {fb: [None if math.isnan(r[m]) else r[m] for r in curves if r["feedback"] == fb]
                                   for fb in modes},
               "xlabel": "iteration", "ylabel": f"{m} ({m[1:]} / canonical's)", "hlines": {"canonical": 1.0}}
              for m in ("NET", "NTMU")]
    name = f"overhead_{arm}.png"
    plot_curves(run.file(name), panels, title=f"SOAP on {arm}: ET and TMU (normalised) against iteration")
    return name


def write_report(job, run: RunDir, arms: list[dict]) -> str:
    """`arms`: {"name", "curves", "excluded" (Exclusions), "slow_failed", "tasks"} per arm."""
    llm = job.llm
    model = {"hf": lambda: llm.hf.model.name, "openai": lambda: llm.openai.model or "(the server's model)"}.get(
        llm.backend, lambda: str(getattr(getattr(llm, llm.backend, None), "model", llm.backend)))()
    parts = [f"# SOAP run\n\nModel: {model} ({llm.backend}); {job.loop.iterations} refinement iterations; feedback modes "
             f"{', '.join(job.loop.feedback)}; sandbox isolation `{job.sandbox.isolation}`; ET on the "
             f"{job.profile.clock} clock, median of {job.profile.runs} runs. NET/NMU/NTMU are ratios of totals against "
             "the canonical solutions over the tasks whose current version passes (profiled / tasks)."]
    for arm in arms:
        ex = arm["excluded"]
        note = (f"{len(arm['tasks'])} tasks loaded; excluded {ex.count}: {len(ex.no_tests)} without tests, "
                f"{len(ex.canonical_fails)} whose canonical solution fails its tests"
                + (f" ({', '.join(t for t, _ in ex.canonical_fails[:10])})" if ex.canonical_fails else ""))
        if arm.get("slow_failed"):
            note += f"; slow rewrites failing their tests (left out): {', '.join(arm['slow_failed'])}"
        png = plot_arm(run, arm["name"], arm["curves"])
        parts.append(f"## {arm['name']}\n\n{note}.\n\n{first_last_table(arm['curves'])}\n\n"
                     f"![NET and NTMU against iteration]({png})\n\n<details><summary>every iteration</summary>\n\n"
                     f"{curve_table(arm['curves'])}\n\n</details>")
    parts.append(f"## Config\n\n```yaml\n{to_yaml(job)}```\n")
    text = "\n\n".join(parts)
    run.write_summary(text)
    return text
