"""A specialization recipe: typed config, stage wiring, and the checks made before Ray starts.

The YAML names stages in order; each has a `kind` (a job's library code, specialize.stages.KINDS),
its `config` (that job's typed config, or the stage's own), and `inputs` mapping each input port
to the stage that produces it ("stage", or "stage.output" where the producer has several outputs
of the port's type). `build_recipe` parses every stage's config, checks that every input has a
producer of the right artifact type, that the wiring has no cycle, and orders the stages; a
mistake raises ConfigError naming `stages.<name>.<field>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.config import ConfigError, from_dict, require, to_dict
from core.data import DataConfig
from core.runs import RunConfig
from distill.config import StudentConfig

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class StageConfig:
    name: str
    kind: str  # a key of specialize.stages.KINDS
    inputs: dict[str, str] = field(default_factory=dict)  # port -> "stage" or "stage.output"
    config: dict[str, Any] = field(default_factory=dict)  # the kind's config, as YAML

    def validate(self) -> None:
        from specialize.stages import KINDS

        require(bool(NAME.match(self.name)), "name",
                f"{self.name!r} is not a stage name; allowed: a letter, then letters, digits or _")
        require(self.kind in KINDS, "kind", f"{self.kind!r} is not a stage kind; allowed: {', '.join(sorted(KINDS))}")
        for port, ref in self.inputs.items():
            require(isinstance(ref, str) and ref != "", f"inputs.{port}",
                    f"must name the stage that produces it (\"stage\" or \"stage.output\"), got {ref!r}")


@dataclass
class SpecializeConfig:
    seed: int = 0
    # The task's labelled data (classifier recipes): the curation pool starts with its training
    # split, the student stages train on it, and every stage's model is scored on its test split.
    # null for recipes without a labelled task (the LLM recipe).
    data: DataConfig | None = None
    # After a stage whose output is a labelled dataset (curate, gold), a fresh student of this
    # config is trained on it and scored on data's test split: the accuracy "after" that stage.
    # null: dataset stages report no accuracy of their own.
    probe: StudentConfig | None = None
    stages: list[StageConfig] = field(default_factory=list)
    # Stages whose inputs are ready run at once, up to this many, while their CPUs fit the cluster.
    max_concurrent_stages: int = 2
    run: RunConfig = field(default_factory=RunConfig)
    ray_num_cpus: int | None = None  # local Ray only; null: all cores

    def validate(self) -> None:
        require(len(self.stages) > 0, "stages", "name at least one stage")
        require(self.max_concurrent_stages >= 1, "max_concurrent_stages", f"must be >= 1, got {self.max_concurrent_stages}")
        seen: set[str] = set()
        for s in self.stages:
            require(s.name not in seen, f"stages.{s.name}.name", f"stage name {s.name!r} is used twice")
            seen.add(s.name)


@dataclass
class Stage:
    """A parsed stage: its kind, typed config, and each input port's (producer, output)."""

    index: int
    name: str
    kind: Any  # specialize.stages.StageKind
    cfg: Any
    inputs: dict[str, tuple[str, str]]

    def key_of(self, field_: str) -> str:
        return f"stages.{self.name}.{field_}"


@dataclass
class Recipe:
    config: SpecializeConfig
    stages: list[Stage]  # in an order where every producer comes before its consumers
    by_name: dict[str, Stage]

    def producers(self, stage: Stage) -> list[str]:
        return sorted({p for p, _ in stage.inputs.values()})

    def descendants(self, name: str) -> set[str]:
        """`name` and every stage that reads, directly or not, what it produces."""
        out = {name}
        for s in self.stages:  # topological: producers come first
            if any(p in out for p, _ in s.inputs.values()):
                out.add(s.name)
        return out

    def context(self, stage: Stage) -> dict[str, Any]:
        """The recipe-level settings the stage's result depends on (part of its artifact key)."""
        c = self.config
        out: dict[str, Any] = {"seed": c.seed}
        if "data" in stage.kind.uses and c.data is not None:
            out["data"] = to_dict(c.data)
        if "probe" in stage.kind.uses and c.probe is not None:
            out["probe"] = to_dict(c.probe)
        return out


def _rewrap(err: ConfigError, prefix: str) -> ConfigError:
    return ConfigError(f"{prefix}.{err.key}", str(err).split(": ", 1)[1])


def parse_stage_config(kind, raw: dict[str, Any], recipe: SpecializeConfig, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(prefix, f"expected a mapping of {kind.config_cls.__name__} fields, got {raw!r}")
    try:
        return from_dict(kind.config_cls, kind.inject(dict(raw), recipe))
    except ConfigError as err:
        raise _rewrap(err, prefix) from None


def _resolve_input(stage: StageConfig, port: str, ref: str, want: str, specs: dict[str, StageConfig]) -> tuple[str, str]:
    from specialize.stages import KINDS

    key = f"stages.{stage.name}.inputs.{port}"
    producer, _, output = ref.partition(".")
    if producer == stage.name:
        raise ConfigError(key, f"stage {stage.name!r} reads its own output: a cycle ({stage.name} -> {stage.name})")
    if producer not in specs:
        raise ConfigError(key, f"no stage named {producer!r} produces it; the stages are: {', '.join(specs)}")
    outs = KINDS[specs[producer].kind].outputs
    if output:
        if output not in outs:
            raise ConfigError(key, f"stage {producer!r} ({specs[producer].kind}) has no output {output!r}; "
                                   f"its outputs: {', '.join(f'{n} ({t})' for n, t in outs.items())}")
        if outs[output] != want:
            raise ConfigError(key, f"type mismatch: port {port!r} of {stage.kind} takes a {want}, but "
                                   f"{producer}.{output} is a {outs[output]}")
        return producer, output
    match = [n for n, t in outs.items() if t == want]
    if not match:
        raise ConfigError(key, f"type mismatch: port {port!r} of {stage.kind} takes a {want}, but stage {producer!r} "
                               f"({specs[producer].kind}) produces {', '.join(f'{n} ({t})' for n, t in outs.items())}")
    if len(match) > 1:
        raise ConfigError(key, f"stage {producer!r} has several {want} outputs ({', '.join(match)}); "
                               f"name one as {producer}.<output>")
    return producer, match[0]


def _order(stages: dict[str, Stage]) -> list[Stage]:
    """Kahn's algorithm, keeping the YAML order among ready stages; a cycle raises ConfigError."""
    deps = {n: {p for p, _ in s.inputs.values()} for n, s in stages.items()}
    done: list[Stage] = []
    placed: set[str] = set()
    while len(done) < len(stages):
        ready = [s for n, s in stages.items() if n not in placed and deps[n] <= placed]
        if not ready:
            left = [n for n in stages if n not in placed]
            cycle = _find_cycle(left, deps)
            raise ConfigError(f"stages.{cycle[0]}.inputs",
                              f"the stages' inputs form a cycle: {' -> '.join(cycle)} (each reads the next's output)")
        s = min(ready, key=lambda s: s.index)
        done.append(s)
        placed.add(s.name)
    return done


def _find_cycle(left: list[str], deps: dict[str, set[str]]) -> list[str]:
    for start in left:
        path, node = [start], start
        while True:
            nxt = sorted(d for d in deps[node] if d in left)[0]
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            path.append(nxt)
            node = nxt
    return left  # unreachable: every stage left waits on another one left


def build_recipe(cfg: SpecializeConfig) -> Recipe:
    """Parse and wire the stages; raises ConfigError naming the stage and field at the first mistake."""
    from specialize.stages import KINDS

    specs = {s.name: s for s in cfg.stages}
    stages: dict[str, Stage] = {}
    for i, spec in enumerate(cfg.stages):
        kind = KINDS[spec.kind]
        typed = parse_stage_config(kind, spec.config, cfg, f"stages.{spec.name}.config")
        for port in spec.inputs:
            if port not in kind.inputs:
                raise ConfigError(f"stages.{spec.name}.inputs.{port}",
                                  f"{spec.kind} has no input {port!r}; its inputs: "
                                  + (", ".join(f"{p} ({q.type})" for p, q in kind.inputs.items()) or "none"))
        inputs = {}
        for port, p in kind.inputs.items():
            if port not in spec.inputs:
                if not p.optional:
                    raise ConfigError(f"stages.{spec.name}.inputs.{port}",
                                      f"missing: {spec.kind} needs a {p.type} here, from an earlier stage")
                continue
            inputs[port] = _resolve_input(spec, port, spec.inputs[port], p.type, specs)
        for need in kind.needs:
            require(getattr(cfg, need) is not None, need, f"stage {spec.name!r} ({spec.kind}) needs the recipe's {need}")
        stages[spec.name] = Stage(i, spec.name, kind, typed, inputs)
    ordered = _order(stages)
    recipe = Recipe(cfg, ordered, stages)
    for s in ordered:  # checks that need the producers' configs (e.g. the same student)
        if s.kind.check_inputs is not None:
            s.kind.check_inputs(s, recipe)
    return recipe


__all__ = ["Recipe", "SpecializeConfig", "Stage", "StageConfig", "build_recipe", "parse_stage_config"]


def plan_recipe(recipe: Recipe, resources: dict[str, float]) -> tuple[list[str], dict[str, float]]:
    """Each stage's own job plan (ray_jobs.plans) against `resources`: printable lines and the CPUs
    each stage holds while it runs. A request the cluster cannot meet raises ConfigError naming
    `stages.<name>.config.<field>`."""
    lines: list[str] = []
    cpus: dict[str, float] = {}
    for s in recipe.stages:
        try:
            got, held = s.kind.plan(s.cfg, resources)
        except ConfigError as err:
            raise _rewrap(err, s.key_of("config")) from None
        cpus[s.name] = float(held)
        deps = ", ".join(f"{port} <- {p}.{o}" for port, (p, o) in s.inputs.items()) or "no inputs"
        lines.append(f"stage {s.name} ({s.kind.name}; {deps}; holds about {held:g} CPU while it runs)")
        lines += [f"  {line}" for line in got]
    waves = concurrent_waves(recipe)
    lines.append("stages that can run at once (inputs ready together): "
                 + " | ".join(", ".join(w) for w in waves))
    return lines, cpus


def concurrent_waves(recipe: Recipe) -> list[list[str]]:
    """The stages grouped by depth: every stage of a wave has all its producers in earlier waves,
    so the stages of one wave are independent of each other."""
    depth: dict[str, int] = {}
    for s in recipe.stages:
        depth[s.name] = 1 + max((depth[p] for p in recipe.producers(s)), default=-1)
    waves: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for s in recipe.stages:
        waves[depth[s.name]].append(s.name)
    return waves
