"""Where sandboxed executions run: Ray tasks on CPU workers (one core each), or threads in this
process. Either maps a batch of (code, tests) to ExecResults in order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from codeopt.sandbox import ExecResult, ProfileSpec, SandboxConfig, run_code


class LocalExecutor:
    def __init__(self, sandbox: SandboxConfig, profile: ProfileSpec | None, concurrency: int = 1):
        self.sandbox, self.profile, self.concurrency = sandbox, profile, concurrency
        self.calls = 0  # executions run, for logs and tests

    def __call__(self, jobs: list[tuple[str, str]]) -> list[ExecResult]:
        self.calls += len(jobs)
        with ThreadPoolExecutor(self.concurrency) as ex:
            return list(ex.map(lambda j: run_code(j[0], j[1], self.sandbox, self.profile), jobs))


def _remote_run(code: str, tests: str, sandbox: SandboxConfig, profile: ProfileSpec | None) -> dict:
    return run_code(code, tests, sandbox, profile).to_dict()


class RayExecutor:
    """Each execution is a Ray task of `num_cpus` CPUs; at most `concurrency` in flight, so that
    profiled runs do not share a core with each other."""

    def __init__(self, sandbox: SandboxConfig, profile: ProfileSpec | None, concurrency: int = 2,
                 num_cpus: float = 1.0):
        import ray

        self.sandbox, self.profile, self.concurrency = sandbox, profile, concurrency
        self._task = ray.remote(_remote_run).options(num_cpus=num_cpus, max_retries=0)
        self.calls = 0

    def __call__(self, jobs: list[tuple[str, str]]) -> list[ExecResult]:
        import ray

        self.calls += len(jobs)
        out: dict[int, dict] = {}
        pending: dict = {}
        todo = list(enumerate(jobs))
        while todo or pending:
            while todo and len(pending) < self.concurrency:
                i, (code, tests) = todo.pop(0)
                pending[self._task.remote(code, tests, self.sandbox, self.profile)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                out[pending.pop(ref)] = ray.get(ref)
        return [ExecResult.from_dict(out[i]) for i in range(len(jobs))]
