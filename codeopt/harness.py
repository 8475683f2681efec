"""The child side of the sandbox: lock the process down, run one candidate program against its tests
and, when asked, profile it; the result goes back as one JSON object on a pipe, never on stdout.

Started by `codeopt.sandbox` as `python -s -B harness.py SPEC_JSON RESULT_FD`, as root inside fresh
network, mount and PID namespaces (isolation 'namespaces'). It imports only the standard library:
it runs before, and apart from, the project. Order matters: the file system is made read-only
(except the work dir) and the rlimits set while still root; then privileges drop to an unused uid,
and only then does untrusted code run.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import resource
import signal
import sys
import threading
import time
import traceback

# Modules that generated code commonly imports; loaded while root, because after the uid drop the
# interpreter's own files may sit under a directory the sandbox uid cannot read (e.g. /root/.pyenv).
COMMON_MODULES = ("array", "bisect", "collections", "copy", "dataclasses", "decimal", "fractions", "functools",
                  "hashlib", "heapq", "itertools", "math", "operator", "random", "re", "statistics", "string",
                  "typing", "tracemalloc", "gc", "cmath", "datetime", "numbers", "queue", "sys", "textwrap")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_FLAG_OPTS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
              "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


class CPULimit(BaseException):
    """Raised by the SIGXCPU handler: the candidate used up its CPU-time rlimit."""


def _on_sigxcpu(signum, frame):
    raise CPULimit()


class SetupError(RuntimeError):
    """The sandbox could not be set up: an infrastructure fault, never the candidate's failure."""


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount({src}, {target}, {fstype}, {flags:#x}) failed: {os.strerror(err)}")


def _unescape(path: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) of the mount each path reaches: where mounts are stacked
    on one point, only the top one (which no other mount there sits on) is reachable by path."""
    rows = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            rows.append((int(parts[0]), int(parts[1]), _unescape(parts[4]), set(parts[5].split(","))))
    under = {(parent, mp) for _, parent, mp, _ in rows}
    return [(mp, opts) for mid, _, mp, opts in rows if (mid, mp) not in under]


def _blocking_ancestor(path: str) -> str | None:
    """The highest directory above `path` that other users cannot enter (mode without o+x)."""
    parts = os.path.abspath(path).split("/")[1:]
    cur = ""
    for p in parts[:-1]:
        cur += "/" + p
        if not os.stat(cur).st_mode & 0o001:
            return cur
    return None


def expose_paths(paths: list[str]) -> None:
    """Make `paths` reachable by the sandbox uid where a closed directory above them blocks it:
    a private empty tmpfs covers that directory (hiding everything else in it, e.g. /root's dot
    files) and only the needed subtrees are bound back in."""
    wanted: dict[str, set[str]] = {}
    for path in paths:
        top = _blocking_ancestor(path)
        if top is not None:
            wanted.setdefault(top, set()).add(os.path.relpath(os.path.abspath(path), top).split("/")[0])
    for top, names in wanted.items():
        # hold the subtrees open: once the tmpfs covers `top` their paths lead nowhere
        fds = {name: os.open(os.path.join(top, name), os.O_PATH) for name in names}
        try:
            _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
            for name, fd in fds.items():
                os.mkdir(os.path.join(top, name))
                _mount(f"/proc/self/fd/{fd}", os.path.join(top, name), None, MS_BIND | MS_REC)
        finally:
            for fd in fds.values():
                os.close(fd)


def lock_filesystem(workdir: str, expose: list[str]) -> None:
    """Everything read-only except `workdir`, in this (new, private) mount namespace."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    expose_paths(expose)
    _mount(workdir, workdir, None, MS_BIND)  # its own mount, so it stays writable below
    for mp, opts in mounts():
        if mp == workdir or "ro" in opts:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, bit in _FLAG_OPTS.items():
            if name in opts:
                flags |= bit
        try:
            _mount(None, mp, None, flags)
        except SetupError:
            if os.path.exists(mp):
                raise
    # fail closed: any writable mount other than the work dir is a hole
    left = [mp for mp, opts in mounts() if mp != workdir and "ro" not in opts and os.path.exists(mp)]
    if left:
        raise SetupError(f"mounts still writable after locking: {left}")


def set_limits(lim: dict) -> None:
    def both(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    cpu = int(math.ceil(lim["cpu_time_s"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL a second later
    both(resource.RLIMIT_AS, lim["memory_mb"] << 20)
    both(resource.RLIMIT_FSIZE, lim["file_size_mb"] << 20)
    both(resource.RLIMIT_NPROC, lim["max_processes"])
    both(resource.RLIMIT_NOFILE, lim["max_open_files"])
    both(resource.RLIMIT_CORE, 0)


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid:
        raise SetupError(f"could not drop to uid {uid}")
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no setuid binary can give privileges back
    # a credential change clears the parent-death signal: set it again so killing our parent kills us
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)


# ---------------------------------------------------------------------------------------- profiling
class RSSSampler:
    """Resident set size of this process every `interval` seconds, on a daemon thread."""

    def __init__(self, interval: float):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss_mb(self) -> float:
        return int(os.pread(self.fd, 128, 0).split()[1]) * self.page / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.rss_mb()))
            time.sleep(self.interval)

    def __enter__(self) -> "RSSSampler":
        self.samples = [(time.perf_counter(), self.rss_mb())]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), self.rss_mb()))


def trapezoid(samples: list[tuple[float, float]]) -> float:
    return sum((t1 - t0) * (m0 + m1) / 2 for (t0, m0), (t1, m1) in zip(samples, samples[1:]))


class _EnoughLines(Exception):
    """Raised from the tracer to end line profiling once it has seen max_events lines."""


def line_profile(code_obj, tests_obj, glb: dict, top: int, source: list[str], max_events: int = 20_000,
                 clock=time.perf_counter) -> dict:
    """Time and net allocation per line of the solution (file '<solution>') over one test run (or its
    first `max_events` line events: tracing costs microseconds a line), by sys.settrace; tracemalloc
    gives the allocation between consecutive line events."""
    import tracemalloc

    stats: dict[int, list[float]] = {}  # line -> [hits, seconds, bytes allocated]
    state = {"line": None, "t": 0.0, "mem": 0, "events": 0}

    def flush(now: float, mem: int) -> None:
        if state["line"] is not None:
            s = stats.setdefault(state["line"], [0, 0.0, 0])
            s[1] += now - state["t"]
            s[2] += max(0, mem - state["mem"])

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != "<solution>":
            return None
        if event in ("line", "return"):
            now, mem = clock(), tracemalloc.get_traced_memory()[0]
            flush(now, mem)
            if event == "line":
                state["events"] += 1
                if state["events"] > max_events:
                    raise _EnoughLines()
                stats.setdefault(frame.f_lineno, [0, 0.0, 0])[0] += 1
                state.update(line=frame.f_lineno, t=clock(), mem=tracemalloc.get_traced_memory()[0])
            else:
                state["line"] = None
        return tracer

    g = dict(glb)
    tracemalloc.start()
    sys.settrace(tracer)
    try:
        exec(tests_obj, g)
    except _EnoughLines:
        pass
    finally:
        sys.settrace(None)
        tracemalloc.stop()
    total = sum(s[1] for s in stats.values()) or 1e-12

    def row(line: int, s: list[float]) -> dict:
        text = source[line - 1].strip() if 0 < line <= len(source) else ""
        return {"line": line, "hits": int(s[0]), "time_s": s[1], "time_pct": 100 * s[1] / total,
                "mem_mib": s[2] / 2**20, "code": text[:120]}

    rows = [row(k, v) for k, v in stats.items()]
    return {"events": min(state["events"], max_events), "truncated": state["events"] > max_events,
            "time": sorted(rows, key=lambda r: -r["time_s"])[:top],
            "memory": sorted(rows, key=lambda r: -r["mem_mib"])[:top]}


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def profile(code_obj, tests_obj, glb: dict, spec: dict) -> dict:
    """ET, MU and TMU of one pass over the tests, each the median over spec['runs'] timed runs. A run
    repeats the tests `loops` times (so that it lasts at least min_time_s), because HumanEval-sized
    tests finish in microseconds; ET and TMU are per pass. ET is read on the configured clock: 'cpu'
    (this thread's CPU time: what the code costs, whatever else the machine runs) or 'wall'
    (EffiBench's, honest only on a quiet machine). TMU = time-averaged RSS x ET, which is the
    trapezoid integral of the RSS samples over one pass when the clock is the wall clock."""
    p = spec["profile"]
    clock = time.thread_time if p["clock"] == "cpu" else time.perf_counter
    t0 = clock()
    exec(tests_obj, dict(glb))
    once = max(clock() - t0, 1e-7)
    loops = max(1, min(p["max_loops"], int(math.ceil(p["min_time_s"] / once))))
    sampler = RSSSampler(p["sample_interval_s"])
    base = sampler.rss_mb()
    ets, mus, tmus = [], [], []
    for _ in range(p["runs"]):
        g = dict(glb)
        with sampler:
            t0 = clock()
            for _ in range(loops):
                exec(tests_obj, g)
            elapsed = clock() - t0
        et = elapsed / loops
        span = sampler.samples[-1][0] - sampler.samples[0][0]
        ets.append(et)
        mus.append(max(m for _, m in sampler.samples))
        tmus.append(trapezoid(sampler.samples) / span * et if span > 0 else sampler.samples[-1][1] * et)
    out = {"et_s": _median(ets), "mu_mb": _median(mus), "tmu_mbs": _median(tmus), "et_runs": ets,
           "mu_runs": mus, "tmu_runs": tmus, "loops": loops, "base_mb": base, "clock": p["clock"]}
    if p["line_profile"]:
        out["lines"] = line_profile(code_obj, tests_obj, glb, p["top_lines"], spec["code"].splitlines(),
                                    p["max_line_events"], clock)
    return out


def run_candidate(spec: dict) -> dict:
    try:
        code_obj = compile(spec["code"], "<solution>", "exec")
    except (SyntaxError, ValueError) as err:
        return {"status": "syntax_error", "error": f"{type(err).__name__}: {err}"}
    tests_obj = compile(spec["tests"], "<tests>", "exec")
    glb: dict = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(code_obj, glb)
        exec(tests_obj, dict(glb))
    except MemoryError:
        return {"status": "memory_limit", "error": "MemoryError: the address-space limit was reached"}
    except CPULimit:
        return {"status": "cpu_limit", "error": "the CPU-time limit was reached"}
    except AssertionError as err:
        return {"status": "failed", "error": _short_error(err)}
    except BaseException as err:  # noqa: BLE001 - anything the candidate raises (SystemExit too) fails it
        return {"status": "error", "error": _short_error(err)}
    result: dict = {"status": "passed"}
    if spec.get("profile"):
        try:
            result.update(profile(code_obj, tests_obj, glb, spec))
        except MemoryError:
            return {"status": "memory_limit", "error": "MemoryError while profiling"}
        except CPULimit:
            return {"status": "cpu_limit", "error": "the CPU-time limit was reached while profiling"}
        except BaseException as err:  # noqa: BLE001 - a flaky candidate that fails on a later run
            return {"status": "error", "error": "while profiling: " + _short_error(err)}
    return result


def _short_error(err: BaseException) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    where = next((f"{fr.filename}:{fr.lineno}" for fr in reversed(tb) if fr.filename in ("<solution>", "<tests>")), "")
    return f"{type(err).__name__}: {str(err)[:300]}" + (f" (at {where})" if where else "")


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    out = os.fdopen(int(sys.argv[2]), "w")

    def send(obj: dict) -> None:
        out.write(json.dumps(obj))
        out.flush()
        out.close()

    try:
        for name in COMMON_MODULES:
            __import__(name)
        if spec["lock_filesystem"]:
            lock_filesystem(spec["workdir"], spec["expose"])
        os.chdir(spec["workdir"])
        if spec.get("pin_cpu") is not None:
            os.sched_setaffinity(0, {spec["pin_cpu"]})
        if spec.get("limits"):
            signal.signal(signal.SIGXCPU, _on_sigxcpu)
            set_limits(spec["limits"])
        if spec.get("uid") is not None:
            drop_privileges(spec["uid"])
        if spec.get("profile"):
            sys.setswitchinterval(spec["profile"]["sample_interval_s"])
    except Exception as err:  # noqa: BLE001
        send({"status": "sandbox_error", "error": f"{type(err).__name__}: {err}"})
        sys.exit(70)
    result = run_candidate(spec)
    sys.stdout.flush()
    send(result)
    # skip interpreter teardown: threads or objects the candidate left behind cannot hang the exit
    os._exit(0)


if __name__ == "__main__":
    main()
