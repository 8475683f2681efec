"""Run untrusted (LLM-written) code in a sandboxed child process and say what happened.

Isolation levels (`sandbox.isolation`), strongest first:
- `namespaces`: new network, mount and PID namespaces (`unshare`); every mount read-only except an
  empty temporary work dir; a private tmpfs over closed directories such as /root; the code runs as
  an unused unprivileged uid (so RLIMIT_NPROC binds even when the job runs as root) with no new
  privileges; rlimits; wall-clock timeout; capped output; a minimal environment. Killing the child
  kills every process it started (the PID namespace dies with its first process).
- `rlimits`: no namespaces: the network is reachable and world-writable paths (/tmp) are writable.
  Still the uid drop (when root), rlimits, timeout, output cap, minimal environment, temp dir.
- `none`: the reference's level: a timeout, output cap, minimal environment and temp dir only;
  the code runs with this process's rights.
Anything below `namespaces` needs `accept_weaker_isolation: true`.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from core.config import ConfigError, require

HARNESS = Path(__file__).resolve().parent / "harness.py"
Isolation = Literal["namespaces", "rlimits", "none"]
# statuses of a candidate that ran in a working sandbox (anything else is the candidate's failure)
PASSED = "passed"
RESULT_LIMIT = 4 << 20  # bytes read from the result pipe


@dataclass
class SandboxConfig:
    isolation: Isolation = "namespaces"
    accept_weaker_isolation: bool = False  # must be true for 'rlimits' or 'none'
    timeout_s: float = 10.0  # wall clock, per execution (tests plus profiling)
    cpu_time_s: float = 10.0  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS
    file_size_mb: int = 8  # RLIMIT_FSIZE
    max_processes: int = 8  # RLIMIT_NPROC for the sandbox uid (threads count)
    max_open_files: int = 64  # RLIMIT_NOFILE
    output_limit_kb: int = 64  # stdout + stderr; more kills the child
    pin_cpu: bool = True  # pin the child to one core (chosen from this process's affinity set)
    uid_range: list[int] = field(default_factory=lambda: [200000, 299999])  # unused uids for sandboxes

    def validate(self) -> None:
        require(self.isolation == "namespaces" or self.accept_weaker_isolation, "accept_weaker_isolation",
                f"isolation {self.isolation!r} runs untrusted code with weaker protection (see docs/soap.md); "
                "set sandbox.accept_weaker_isolation: true to confirm, or use isolation: namespaces")
        for key in ("timeout_s", "cpu_time_s"):
            require(getattr(self, key) > 0, key, f"must be > 0, got {getattr(self, key)}")
        for key in ("memory_mb", "file_size_mb", "max_processes", "max_open_files", "output_limit_kb"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.max_processes >= 2, "max_processes", "must be >= 2 (the profiler's sampling thread counts)")
        require(self.max_open_files >= 16, "max_open_files", "must be >= 16 (the interpreter needs some)")
        require(self.memory_mb >= 128, "memory_mb", "must be >= 128 (the interpreter needs about 60 MB)")
        require(len(self.uid_range) == 2 and 1000 <= self.uid_range[0] <= self.uid_range[1], "uid_range",
                f"must be [low, high] with 1000 <= low <= high, got {self.uid_range}")


@dataclass
class ProfileSpec:
    runs: int = 3  # timed runs; ET/MU/TMU are medians over them
    min_time_s: float = 0.05  # a timed run repeats the tests until it lasts this long
    max_loops: int = 10000
    sample_interval_s: float = 0.001  # RSS sampling for MU and TMU
    line_profile: bool = True
    top_lines: int = 5
    max_line_events: int = 20_000  # line profiling stops after this many line events (a few us each)
    # cpu: ET is the test thread's CPU time (stable on a shared machine); wall: EffiBench's wall clock
    clock: Literal["cpu", "wall"] = "cpu"

    def validate(self) -> None:
        require(self.runs >= 3, "runs", f"must be >= 3 (ET is a median), got {self.runs}")
        require(self.min_time_s >= 0, "min_time_s", f"must be >= 0, got {self.min_time_s}")
        require(self.max_loops >= 1, "max_loops", f"must be >= 1, got {self.max_loops}")
        require(0 < self.sample_interval_s <= 0.1, "sample_interval_s", f"must be in (0, 0.1], got {self.sample_interval_s}")
        require(self.top_lines >= 1, "top_lines", f"must be >= 1, got {self.top_lines}")
        require(self.max_line_events >= 100, "max_line_events", f"must be >= 100, got {self.max_line_events}")


@dataclass
class ExecResult:
    status: str  # passed | failed | error | syntax_error | timeout | output_limit | memory_limit | cpu_limit | killed...
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    profile: dict | None = None  # the harness's profile (et_s, mu_mb, tmu_mbs, runs, lines)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExecResult:
        return cls(**d)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the candidate): the job must stop, not count a failure."""


def is_root() -> bool:
    return os.geteuid() == 0


def namespace_command() -> list[str]:
    cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return cmd if is_root() else ["unshare", "--user", "--map-root-user", *cmd[1:]]


_PROBED: dict[str, str | None] = {}


def probe_namespaces() -> str | None:
    """None when `unshare` can give a child new network, mount and PID namespaces here; else why not."""
    if "ns" not in _PROBED:
        if shutil.which("unshare") is None:
            _PROBED["ns"] = "the unshare command is not installed (util-linux)"
        else:
            try:
                r = subprocess.run([*namespace_command(), "true"], capture_output=True, text=True, timeout=20)
                _PROBED["ns"] = None if r.returncode == 0 else f"unshare failed: {r.stderr.strip()[:300]}"
            except (OSError, subprocess.SubprocessError) as err:
                _PROBED["ns"] = f"unshare failed: {err}"
    return _PROBED["ns"]


def check_sandbox(cfg: SandboxConfig, key: str = "sandbox") -> None:
    """Before a job starts: the configured isolation must be available here (ConfigError if not)."""
    if cfg.isolation == "namespaces":
        why = probe_namespaces()
        if why is not None:
            raise ConfigError(f"{key}.isolation",
                              f"'namespaces' is not available on this machine ({why}); untrusted code will not run "
                              "without it unless you set isolation: rlimits (or none) and accept_weaker_isolation: "
                              "true, knowing what that leaves open (docs/soap.md)")


def minimal_env(workdir: str) -> dict[str, str]:
    """All the child sees: nothing inherited, so no API keys, tokens or cloud credentials."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


def _uids_in_use() -> set[int]:
    used = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                used.add(entry.stat().st_uid)
            except OSError:
                pass
    return used


def pick_uid(cfg: SandboxConfig) -> int:
    """An unused uid: RLIMIT_NPROC counts every process of a uid, so each sandbox gets its own."""
    lo, hi = cfg.uid_range
    used = _uids_in_use()
    for _ in range(100):
        uid = lo + secrets.randbelow(hi - lo + 1)
        if uid not in used:
            return uid
    raise SandboxError(f"no free uid in {cfg.uid_range}")


def kill_uid(uid: int) -> int:
    """SIGKILL every process owned by `uid` (a sandbox's private uid); how many there were."""
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
                    n += 1
            except OSError:
                pass
    return n


def reap_uid(uid: int, wait_s: float = 5.0) -> None:
    """Kill the uid's processes until none is left (dying ones stay listed until reaped)."""
    deadline = time.monotonic() + wait_s
    while kill_uid(uid) and time.monotonic() < deadline:
        time.sleep(0.02)


_PIN_TURN = itertools.count()


def _pin_cpu() -> int | None:
    cpus = sorted(os.sched_getaffinity(0))
    # spread concurrent sandboxes (threads of one driver, or Ray workers) over the cores this process may use
    return cpus[(os.getpid() + next(_PIN_TURN)) % len(cpus)] if cpus else None


_SIGNAL_STATUS = {signal.SIGXCPU: "cpu_limit", signal.SIGXFSZ: "file_size_limit", signal.SIGKILL: "killed",
                  signal.SIGSEGV: "crashed", signal.SIGABRT: "crashed"}


def run_code(code: str, tests: str, cfg: SandboxConfig, profile: ProfileSpec | None = None) -> ExecResult:
    """Run `code`, then `tests` (which raise on failure) in a fresh sandbox; profile when passed and
    `profile` is given. A candidate's fault is an ExecResult status; SandboxError is the sandbox's."""
    uid = pick_uid(cfg) if is_root() and cfg.isolation != "none" else None
    workdir = tempfile.mkdtemp(prefix="tailor-sbx-")
    try:
        os.chmod(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        spec = {
            "code": code, "tests": tests, "workdir": workdir,
            "lock_filesystem": cfg.isolation == "namespaces",
            "expose": [sys.base_prefix, sys.prefix, str(HARNESS.parent)],
            "limits": None if cfg.isolation == "none" else {
                "cpu_time_s": cfg.cpu_time_s, "memory_mb": cfg.memory_mb, "file_size_mb": cfg.file_size_mb,
                "max_processes": cfg.max_processes, "max_open_files": cfg.max_open_files},
            "uid": uid, "pin_cpu": _pin_cpu() if cfg.pin_cpu else None,
            "profile": asdict(profile) if profile is not None else None,
        }
        spec_path = Path(workdir) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        os.chmod(spec_path, 0o444)
        prefix = namespace_command() if cfg.isolation == "namespaces" else []
        return _run_child([*prefix, sys.executable, "-s", "-B", str(HARNESS), str(spec_path)], workdir, cfg, uid)
    finally:
        if uid is not None:
            reap_uid(uid)  # the PID namespace already took them; in 'rlimits' mode this is what does
        shutil.rmtree(workdir, ignore_errors=True)


def _run_child(cmd: list[str], workdir: str, cfg: SandboxConfig, uid: int | None) -> ExecResult:
    r_fd, w_fd = os.pipe()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen([*cmd, str(w_fd)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(w_fd,), env=minimal_env(workdir), cwd=workdir,
                                start_new_session=True)
    finally:
        os.close(w_fd)
    bufs = {"out": bytearray(), "err": bytearray(), "res": bytearray()}
    cap = cfg.output_limit_kb * 1024
    reason = None
    sel = selectors.DefaultSelector()
    result_pipe = os.fdopen(r_fd, "rb", buffering=0)
    for name, f in (("out", proc.stdout), ("err", proc.stderr), ("res", result_pipe)):
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ, name)
    deadline = start + cfg.timeout_s
    try:
        while sel.get_map():
            left = deadline - time.perf_counter()
            if left <= 0:
                reason = "timeout"
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = key.fileobj.read(65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                bufs[key.data] += chunk
            if len(bufs["out"]) + len(bufs["err"]) > cap:
                reason = "output_limit"
                break
            if len(bufs["res"]) > RESULT_LIMIT:
                reason = "output_limit"
                break
    finally:
        sel.close()
        if reason is not None:
            _kill(proc, uid)
        try:
            proc.wait(timeout=max(1.0, deadline - time.perf_counter() + 1.0))
        except subprocess.TimeoutExpired:
            reason = reason or "timeout"
            _kill(proc, uid)
            proc.wait()
        for f in (proc.stdout, proc.stderr, result_pipe):
            f.close()
    wall = time.perf_counter() - start
    out = bytes(bufs["out"][:cap]).decode("utf-8", "replace")
    err = bytes(bufs["err"][:cap]).decode("utf-8", "replace")
    if reason == "timeout":
        return ExecResult("timeout", f"no result within {cfg.timeout_s:g} s (wall clock)", out, err, wall)
    if reason == "output_limit":
        return ExecResult("output_limit", f"printed more than {cfg.output_limit_kb} KiB", out, err, wall)
    try:
        res = json.loads(bytes(bufs["res"]).decode()) if bufs["res"] else None
    except ValueError:
        res = None
    if isinstance(res, dict) and res.get("status") == "sandbox_error":
        raise SandboxError(f"the sandbox could not be set up: {res.get('error')} (stderr: {err[-500:]})")
    if isinstance(res, dict) and isinstance(res.get("status"), str):
        status = res.pop("status")
        error = str(res.pop("error", ""))
        return ExecResult(status, error, out, err, wall, profile=res or None)
    rc = proc.returncode
    sig = -rc if rc < 0 else (rc - 128 if rc > 128 else 0)
    if sig:
        status = _SIGNAL_STATUS.get(signal.Signals(sig) if sig in signal.Signals._value2member_map_ else sig, "killed")
        return ExecResult(status, f"killed by signal {sig} ({signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else '?'})",
                          out, err, wall)
    return ExecResult("error", f"exited with code {rc} before reporting a result", out, err, wall)


def _kill(proc: subprocess.Popen, uid: int | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    if uid is not None:
        kill_uid(uid)
