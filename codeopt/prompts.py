"""Prompts for generating and refining code, the overhead analysis SOAP feeds back, and pulling the
code out of a reply.

Feedback modes (the paper's ablations): `full` (summary + line time profile + line memory profile,
SOAP), `summary` (ET/MU/TMU lines only), `time` (summary + time profile), `memory` (summary + memory
profile), `none` (plain self-refine: the same request without any overhead analysis).
"""

from __future__ import annotations

import re
from typing import Literal

from core.llm import Chat
from codeopt.tasks import Task

Feedback = Literal["full", "summary", "time", "memory", "none"]
FEEDBACK_MODES = ("full", "summary", "time", "memory", "none")

SYSTEM = "You are an expert Python programmer who writes correct, efficient code."

RULES = ("Rules:\n"
         "1. Reply with the complete optimised program in ONE ```python code block.\n"
         "2. Keep the function name and signature; do not put tests, prints or example usage in the block.\n"
         "3. The optimised code must still pass the test cases.")


def generation_prompt(task: Task) -> Chat:
    test = f"\nYour code should pass this test:\n{task.example_test}\n" if task.example_test else ""
    if task.dataset == "humaneval":
        ask = f"Complete this Python function:\n```python\n{task.prompt.rstrip()}\n```\n{test}"
    else:
        ask = f"{task.prompt.rstrip()}\n{test if task.example_test not in task.prompt else ''}"
    ask += "\nReply with the complete function in one ```python code block, without tests."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}]


def _lines_table(rows: list[dict], what: str) -> str:
    if what == "time":
        head = "Line | Hits | Time (us) | % Time | Code"
        body = [f"{r['line']} | {r['hits']} | {r['time_s'] * 1e6:.1f} | {r['time_pct']:.1f} | {r['code']}" for r in rows]
    else:
        head = "Line | Hits | Allocated (MiB) | Code"
        body = [f"{r['line']} | {r['hits']} | {r['mem_mib']:.4f} | {r['code']}" for r in rows]
    return "\n".join([head, *body])


def overhead_analysis(profile: dict, mode: Feedback) -> str:
    """The execution-overhead report for the prompt ('' for mode 'none')."""
    if mode == "none":
        return ""
    parts = ["The code execution cost, measured on the test cases (median of "
             f"{len(profile.get('et_runs', [])) or 1} runs):",
             f"- Execution time (ET): {profile['et_s'] * 1e3:.4f} ms",
             f"- Peak memory usage (MU): {profile['mu_mb']:.2f} MB",
             f"- Memory usage integrated over time (TMU): {profile['tmu_mbs'] * 1e3:.4f} MB*ms"]
    lines = profile.get("lines") or {}
    if mode in ("full", "time") and lines.get("time"):
        parts += ["", "Line-level time profile (top lines by time):", _lines_table(lines["time"], "time")]
    if mode in ("full", "memory") and lines.get("memory"):
        parts += ["", "Line-level memory profile (top lines by memory allocated):", _lines_table(lines["memory"], "memory")]
    return "\n".join(parts)


def refinement_prompt(task: Task, code: str, profile: dict | None, mode: Feedback, error: str = "") -> Chat:
    """SOAP's self-optimisation request: task, a test case, the current code, its overhead analysis."""
    parts = [f"Task:\n{task.prompt.rstrip()}"]
    if task.example_test:
        parts.append(f"Test case:\n{task.example_test}")
    parts.append(f"Current code:\n```python\n{code.rstrip()}\n```")
    if error:
        parts.append(f"The current code fails its tests: {error}\nFix it, and make it efficient.")
    else:
        analysis = overhead_analysis(profile, mode) if profile else ""
        if analysis:
            parts.append("Overhead analysis of the current code:\n" + analysis)
            parts.append("Optimise the code to reduce its execution time and memory usage, guided by the overhead "
                         "analysis (focus on the lines that cost most).")
        else:
            parts.append("Optimise the code to reduce its execution time and memory usage.")
    parts.append(RULES)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


_BLOCK = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(reply: str, task: Task) -> str:
    """The code in a reply: its first fenced block that defines the entry point (else its first block,
    else the whole reply). A bare function body (a completion of HumanEval's prompt) gets the prompt
    put back in front."""
    blocks = [b for b in _BLOCK.findall(reply) if b.strip()]
    code = next((b for b in blocks if task.entry_point and re.search(rf"def\s+{re.escape(task.entry_point)}\b", b)),
                blocks[0] if blocks else reply)
    code = code.strip("\n")
    if task.entry_point and not re.search(rf"\b{re.escape(task.entry_point)}\b", code) and task.dataset == "humaneval":
        code = task.prompt + code
    return code + "\n"
