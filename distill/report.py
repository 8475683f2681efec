"""The GOLD run's table (teacher zero-shot, ZeroGen, GOLD, real-data student), the generated data
as JSONL, and dev accuracy against iteration."""

from __future__ import annotations

import json

from core.config import to_yaml
from core.plots import plot_curves
from core.runs import RunDir, atomic_write, markdown_table


def write_generated(run: RunDir, pools: dict[str, list]) -> None:
    lines = [json.dumps({"arm": arm, **s.to_dict()}) for arm, pool in pools.items() for s in pool]
    atomic_write(run.file("generated.jsonl"), "".join(line + "\n" for line in lines))


def write_report(job, run: RunDir, rows: list[list], histories: dict[str, list[dict]], label_names) -> str:
    panels = [{"x": {arm: [h["iteration"] + 1 for h in hist] for arm, hist in histories.items()},
               "series": {arm: [h.get("dev_accuracy") for h in hist] for arm, hist in histories.items()},
               "xlabel": "iteration", "ylabel": "student dev accuracy"}]
    png = plot_curves(run.file("accuracy_vs_iteration.png"), panels, title="GOLD vs ZeroGen: the best trial per arm")
    g = job.gold
    text = f"""# GOLD run

Teacher {g.teacher.model_name()} ({g.teacher.backend}) distilled into a
{g.student.model.name} student for {job.data.name} ({', '.join(label_names)}); {g.iterations} iterations, the same
generation budget for GOLD and ZeroGen. Test accuracy on the real test split.

{markdown_table(["model", "test accuracy", "training samples", "notes"], rows)}

![dev accuracy against iteration]({png.name})

## Config

```yaml
{to_yaml(job)}```
"""
    run.write_summary(text)
    return text


__all__ = ["write_generated", "write_report"]
