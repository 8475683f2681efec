"""The SOAP loop: generate code, test it, profile it, ask for a faster version with the overhead
analysis, keep the new version only if it passes and is faster beyond the measured noise; repeat.

All tasks advance together, one iteration at a time (one batched LLM call, then one batch of
sandboxed executions), so the LLM pool and the CPU workers stay busy. Every step is written to a
cache (`SoapCache`) keyed by start, feedback mode, task and iteration: a rerun reuses it.
`generate` and `execute` are passed in, so the loop runs the same with Ray or in-process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from core.config import require
from core.llm import Chat
from core.runs import atomic_write
from core.seeding import derive_seed
from codeopt.metrics import Overhead, faster_beyond_noise, normalized, pass_at_1
from codeopt.prompts import FEEDBACK_MODES, Feedback, extract_code, generation_prompt, refinement_prompt
from codeopt.sandbox import ExecResult
from codeopt.tasks import Exclusions, Task, has_tests

Start = Literal["generated", "slow"]
GenerateFn = Callable[[list[Chat], list[int]], list[str]]
ExecuteFn = Callable[[list[tuple[str, str]]], list[ExecResult]]


@dataclass
class LoopConfig:
    iterations: int = 5  # refinement steps after the initial code
    feedback: list[str] = field(default_factory=lambda: ["full", "none"])  # ablations: FEEDBACK_MODES
    # generated: the LLM writes the first version; slow: start from codeopt.slow's correct-but-slow rewrites
    starts: list[Start] = field(default_factory=lambda: ["generated"])
    min_rel_gain: float = 0.05  # keep a new version only if faster by more than this and than the noise
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        require(self.iterations >= 0, "iterations", f"must be >= 0, got {self.iterations}")
        bad = [f for f in self.feedback if f not in FEEDBACK_MODES]
        require(not bad and bool(self.feedback), "feedback",
                f"{bad or 'empty'}: allowed values are {', '.join(FEEDBACK_MODES)}")
        require(len(set(self.starts)) == len(self.starts) and bool(self.starts), "starts", "a non-empty list without repeats")
        require(0 <= self.min_rel_gain < 1, "min_rel_gain", f"must be in [0, 1), got {self.min_rel_gain}")
        require(self.max_new_tokens >= 16, "max_new_tokens", f"must be >= 16, got {self.max_new_tokens}")


@dataclass
class Candidate:
    code: str
    status: str
    error: str = ""
    profile: dict | None = None
    reply: str = ""  # the LLM's raw reply ('' for a seeded start)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def overhead(self) -> Overhead | None:
        return Overhead.from_profile(self.profile) if self.passed and self.profile else None

    @classmethod
    def from_result(cls, code: str, r: ExecResult, reply: str = "") -> Candidate:
        return cls(code, r.status, r.error, r.profile, reply)


def _normalized(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


def accept(current: Candidate, new: Candidate, min_rel_gain: float) -> tuple[bool, str]:
    """SOAP's keep rule, fixed: the reference's test could never be true. A new version is kept only
    if it passes, and (when the current one passes too) it is faster by more than the noise."""
    if not new.passed:
        return False, f"new version {new.status}"
    if not current.passed:
        return True, "passes where the current version does not"
    if _normalized(new.code) == _normalized(current.code):
        # the same program cannot be faster: any gain measured here is timing noise (seen on loaded CI cores)
        return False, "unchanged code"
    cur, nxt = current.overhead, new.overhead
    if cur is None or nxt is None:
        return False, "no profile to compare"
    if faster_beyond_noise(cur, nxt, min_rel_gain):
        return True, f"ET {cur.et_s:.3g} -> {nxt.et_s:.3g} s"
    margin = max(min_rel_gain, cur.et_spread, nxt.et_spread)
    return False, f"not faster beyond the noise (ET {cur.et_s:.3g} -> {nxt.et_s:.3g} s, margin {margin:.0%})"


def _safe(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", task_id)


class SoapCache:
    """One JSON file per step under `root`: canonical/<task>, <start>/init/<task>,
    <start>/<feedback>/<task>/iter<k>. Atomic writes: a crash never leaves half an entry."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts[:-1], _safe(parts[-1]) + ".json")

    def get(self, *parts: str) -> dict | None:
        p = self.path(*parts)
        return json.loads(p.read_text()) if p.is_file() else None

    def put(self, obj: dict, *parts: str) -> None:
        atomic_write(self.path(*parts), json.dumps(obj))


@dataclass
class Lane:
    start: str
    feedback: str
    task: Task
    current: Candidate
    history: list[dict] = field(default_factory=list)  # per iteration: what the step did


def _execute_cached(cache: SoapCache, keys: list[tuple[str, ...]], jobs: list[tuple[str, str]],
                    execute: ExecuteFn) -> list[ExecResult]:
    """Run the jobs whose results are not cached yet; return every result in order."""
    out: list[ExecResult | None] = []
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(*key)
        out.append(ExecResult.from_dict(hit) if hit is not None else None)
        if hit is None:
            todo.append(i)
    if todo:
        for i, r in zip(todo, execute([jobs[i] for i in todo])):
            cache.put(r.to_dict(), *keys[i])
            out[i] = r
    return out  # type: ignore[return-value]


def profile_canonicals(tasks: Sequence[Task], execute: ExecuteFn, cache: SoapCache) -> dict[str, Candidate]:
    results = _execute_cached(cache, [("canonical", t.task_id) for t in tasks], [(t.canonical, t.tests) for t in tasks],
                              execute)
    return {t.task_id: Candidate.from_result(t.canonical, r) for t, r in zip(tasks, results)}


def initial_candidates(start: str, tasks: Sequence[Task], cfg: LoopConfig, generate: GenerateFn,
                       execute: ExecuteFn, cache: SoapCache,
                       slow: Callable[[Task], str | None] | None = None) -> dict[str, Candidate]:
    """Iteration 0, shared by every feedback mode of a start: the LLM's first version, or the slow rewrite."""
    if start == "slow":
        codes = {t.task_id: slow(t) for t in tasks} if slow else {}
        replies = {t.task_id: "" for t in tasks}
    else:
        missing = [t for t in tasks if cache.get(start, "init", t.task_id + ".reply") is None]
        if missing:
            texts = generate([generation_prompt(t) for t in missing],
                             [derive_seed(cfg.seed, "generate", t.task_id) for t in missing])
            for t, text in zip(missing, texts):
                cache.put({"reply": text}, start, "init", t.task_id + ".reply")
        replies = {t.task_id: cache.get(start, "init", t.task_id + ".reply")["reply"] for t in tasks}
        codes = {t.task_id: extract_code(replies[t.task_id], t) for t in tasks}
    kept = [t for t in tasks if codes.get(t.task_id)]
    results = _execute_cached(cache, [(start, "init", t.task_id) for t in kept],
                              [(codes[t.task_id], t.tests) for t in kept], execute)
    return {t.task_id: Candidate.from_result(codes[t.task_id], r, replies[t.task_id]) for t, r in zip(kept, results)}


def refine_step(lanes: list[Lane], k: int, cfg: LoopConfig, generate: GenerateFn, execute: ExecuteFn,
                cache: SoapCache) -> None:
    """Iteration k (>= 1) of every lane: prompt with the overhead analysis, generate, test and profile,
    keep or revert. Cached lane-steps are replayed, not recomputed."""
    todo = []
    for lane in lanes:
        hit = cache.get(lane.start, lane.feedback, lane.task.task_id, f"iter{k}")
        if hit is not None:
            lane.history.append(hit["step"])
            lane.current = Candidate(**hit["current"])
        else:
            todo.append(lane)
    if not todo:
        return
    prompts = [refinement_prompt(lane.task, lane.current.code, lane.current.profile, lane.feedback,  # type: ignore[arg-type]
                                 error="" if lane.current.passed else lane.current.error or lane.current.status)
               for lane in todo]
    seeds = [derive_seed(cfg.seed, lane.start, lane.feedback, lane.task.task_id, k) for lane in todo]
    replies = generate(prompts, seeds)
    codes = [extract_code(reply, lane.task) for reply, lane in zip(replies, todo)]
    results = execute([(code, lane.task.tests) for code, lane in zip(codes, todo)])
    for lane, prompt, reply, code, r in zip(todo, prompts, replies, codes, results):
        new = Candidate.from_result(code, r, reply)
        kept, reason = accept(lane.current, new, cfg.min_rel_gain)
        if kept:
            lane.current = new
        step = {"iteration": k, "new_status": new.status, "new_error": new.error[:300], "kept": kept, "reason": reason,
                "new_et_s": (new.profile or {}).get("et_s"), "prompt_chars": len(prompt[-1]["content"])}
        lane.history.append(step)
        cache.put({"step": step, "current": asdict(lane.current), "new": asdict(new),
                   "prompt": prompt[-1]["content"]}, lane.start, lane.feedback, lane.task.task_id, f"iter{k}")


def iteration_metrics(lanes: list[Lane], canon: dict[str, Candidate]) -> dict:
    """pass@1 and NET/NMU/NTMU of the lanes' current versions (vs the canonical solutions)."""
    row: dict = {"pass@1": pass_at_1([lane.current.passed for lane in lanes])}
    row.update(normalized([(lane.current.overhead, canon[lane.task.task_id].overhead) for lane in lanes]))
    ets = [lane.current.overhead.et_s for lane in lanes if lane.current.overhead]
    row["mean_et_s"] = sum(ets) / len(ets) if ets else float("nan")
    return row


@dataclass
class SoapResult:
    lanes: dict[tuple[str, str], list[Lane]]  # (start, feedback) -> lanes
    curves: list[dict]  # one row per (start, feedback, iteration)
    canonical: dict[str, Candidate]
    excluded: Exclusions
    slow_failed: list[str] = field(default_factory=list)  # slow rewrites that failed their tests (left out)


def run_soap(tasks: Sequence[Task], cfg: LoopConfig, generate: GenerateFn, execute: ExecuteFn, cache: SoapCache,
             slow: Callable[[Task], str | None] | None = None,
             on_iteration: Callable[[dict], None] | None = None) -> SoapResult:
    """Every start x feedback mode over `tasks`, cfg.iterations steps. A task without tests, or whose
    canonical solution fails its own tests, is excluded (and counted); so is a slow rewrite that fails."""
    excluded = Exclusions(no_tests=[t.task_id for t in tasks if not has_tests(t)])
    tasks = [t for t in tasks if has_tests(t)]
    canon = profile_canonicals(tasks, execute, cache)
    excluded.canonical_fails = [(t.task_id, f"{canon[t.task_id].status}: {canon[t.task_id].error[:200]}")
                                for t in tasks if not canon[t.task_id].passed]
    tasks = [t for t in tasks if canon[t.task_id].passed]
    lanes: dict[tuple[str, str], list[Lane]] = {}
    curves = []
    slow_failed: list[str] = []
    for start in cfg.starts:
        init = initial_candidates(start, tasks, cfg, generate, execute, cache, slow)
        if start == "slow":
            slow_failed = [tid for tid, c in init.items() if not c.passed]
            init = {tid: c for tid, c in init.items() if c.passed}
        group = [t for t in tasks if t.task_id in init]
        for fb in cfg.feedback:
            lanes[(start, fb)] = [Lane(start, fb, t, init[t.task_id]) for t in group]
        for k in range(cfg.iterations + 1):
            if k > 0:
                refine_step([lane for fb in cfg.feedback for lane in lanes[(start, fb)]], k, cfg, generate, execute,
                            cache)
            for fb in cfg.feedback:
                ls = lanes[(start, fb)]
                row = {"start": start, "feedback": fb, "iteration": k, "tasks_total": len(ls),
                       **iteration_metrics(ls, canon)}
                if k > 0:
                    row["kept"] = sum(lane.history[-1]["kept"] for lane in ls)
                    row["new_passed"] = sum(lane.history[-1]["new_status"] == "passed" for lane in ls)
                curves.append(row)
                if on_iteration:
                    on_iteration(row)
    return SoapResult(lanes, curves, canon, excluded, slow_failed)
