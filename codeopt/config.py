"""The SOAP job's config (`configs/soap/*.yaml`): data, LLM backend, sandbox, profiling, the loop,
and where executions run."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import require
from core.llm import LLMConfig
from core.runs import RunConfig
from codeopt.loop import LoopConfig
from codeopt.sandbox import ProfileSpec, SandboxConfig
from codeopt.tasks import DataConfig


@dataclass
class ExecutionConfig:
    ray: bool = True  # sandboxed executions as Ray tasks on CPU workers; false: threads in the driver
    concurrency: int = 2  # executions in flight at once
    num_cpus: float = 1.0  # per Ray task (a sandbox is pinned to one core)

    def validate(self) -> None:
        require(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")
        require(self.num_cpus > 0, "num_cpus", f"must be > 0, got {self.num_cpus}")


@dataclass
class SoapJobConfig:
    # the 'generated' start runs on each of these; the 'slow' start on codeopt.slow's HumanEval rewrites
    data: list[DataConfig] = field(default_factory=lambda: [DataConfig(source="humaneval")])
    llm: LLMConfig = field(default_factory=LLMConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    profile: ProfileSpec = field(default_factory=ProfileSpec)
    loop: LoopConfig = field(default_factory=LoopConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    slow_limit: int | None = None  # how many of the slow rewrites the 'slow' start takes (null: all)
    run: RunConfig = field(default_factory=RunConfig)
    ray_num_cpus: int | None = None

    def validate(self) -> None:
        require(len(self.data) > 0 or self.loop.starts == ["slow"], "data", "name at least one dataset")
        require(self.slow_limit is None or self.slow_limit >= 1, "slow_limit", f"must be >= 1 or null, got {self.slow_limit}")
