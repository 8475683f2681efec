"""The sandbox under attack: every attack is contained and reported as that candidate's failure, and
the next execution runs normally. Limits are kept small so no test can hurt the shared machine."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from core.config import ConfigError, from_dict
from codeopt.sandbox import ProfileSpec, SandboxConfig, check_sandbox, probe_namespaces, run_code

pytestmark = pytest.mark.skipif(probe_namespaces() is not None, reason=f"no namespaces here: {probe_namespaces()}")

CFG = SandboxConfig(timeout_s=8, cpu_time_s=2, memory_mb=384, max_processes=6, output_limit_kb=16)


def _uid_processes(uids: list[int]) -> list[int]:
    """Processes left under the uids these sandboxes ran as. Only those: a sandbox of another test
    running at the same time (another xdist worker) has a uid of its own in the same range."""
    pids = []
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                if e.stat().st_uid in uids:
                    pids.append(int(e.name))
            except OSError:
                pass
    return pids


@pytest.fixture
def picked_uids(monkeypatch):
    """The uids the sandboxes of this test ran as (the real pick_uid, recorded)."""
    import codeopt.sandbox as sandbox

    picked, real = [], sandbox.pick_uid

    def recording(cfg):
        picked.append(real(cfg))
        return picked[-1]

    monkeypatch.setattr(sandbox, "pick_uid", recording)
    return picked


def test_passing_failing_and_syntax_error():
    code = "def add(a, b):\n    return a + b\n"
    assert run_code(code, "assert add(1, 2) == 3\n", CFG).status == "passed"
    bad = run_code(code, "assert add(1, 2) == 4\n", CFG)
    assert bad.status == "failed" and "AssertionError" in bad.error
    assert run_code("def add(a, b:\n", "assert add(1, 2) == 3\n", CFG).status == "syntax_error"


def test_no_network_even_to_the_parents_loopback():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    r = run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\n",
                 "pass", CFG)
    assert r.status == "error" and "unreachable" in r.error.lower()
    with pytest.raises(socket.timeout):
        srv.accept()  # nothing came through
    srv.close()


def test_cannot_write_outside_its_temporary_directory_which_is_removed():
    target = Path("/tmp") / f"tailor-sbx-escape-{uuid.uuid4().hex}"
    repo_file = Path(__file__).resolve().parent / f"escape-{uuid.uuid4().hex}"
    code = ("import os\nprint(os.getcwd())\nopen('inside.txt', 'w').write('ok')\n"
            f"for p in [{str(target)!r}, {str(repo_file)!r}]:\n"
            "    try:\n        open(p, 'w').write('x')\n        print('WROTE', p)\n"
            "    except OSError as e:\n        print('refused', p, e.errno)\n")
    r = run_code(code, "pass", CFG)
    assert r.status == "passed", r.error
    assert "WROTE" not in r.stdout and r.stdout.count("refused") == 2
    assert not target.exists() and not repo_file.exists()
    workdir = r.stdout.splitlines()[0]
    assert workdir.startswith("/tmp/tailor-sbx-") and not Path(workdir).exists()


def test_sees_no_secrets_from_the_parents_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-4242")
    code = ("import os\nprint(sorted(os.environ))\n"
            "try:\n    print(open(f'/proc/{os.getppid()}/environ').read())\nexcept OSError as e:\n    print('denied')\n")
    r = run_code(code, "import os\nassert 'OPENAI_API_KEY' not in os.environ\n", CFG)
    assert r.status == "passed", r.error
    assert "sk-test-secret-4242" not in r.stdout and "OPENAI_API_KEY" not in r.stdout
    leak = run_code("import os\nassert os.environ.get('OPENAI_API_KEY') == 'sk-test-secret-4242'\n", "pass", CFG)
    assert leak.status == "failed"


def test_process_limit_holds_a_bounded_bomb_then_a_fork_bomb(picked_uids):
    # bounded first: 30 sleeping children asked for, the uid's RLIMIT_NPROC allows 6 tasks in all
    bounded = ("import os, time\nkids = 0\nfor i in range(30):\n    try:\n        pid = os.fork()\n"
               "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n"
               "    kids += 1\nprint(kids)\n")
    r = run_code(bounded, "pass", CFG)
    assert r.status == "passed" and int(r.stdout.strip()) <= CFG.max_processes - 1
    assert len(picked_uids) == 1 and _uid_processes(picked_uids) == []  # the sleeping children died with it
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = run_code(bomb, "pass", SandboxConfig(timeout_s=3, cpu_time_s=2, max_processes=6))
    assert r.status in ("timeout", "cpu_limit", "killed") and not r.passed
    assert len(picked_uids) == 2 and _uid_processes(picked_uids) == []


def test_memory_bomb_infinite_loop_and_huge_output_fail_the_candidate_only():
    assert run_code("x = bytearray(4 * 1024 ** 3)\n", "pass", CFG).status == "memory_limit"
    # growing to the cap costs page faults, which cost CPU time: on a slow (virtualized) CI machine
    # filling 384 MiB took more than CFG's 2 s of CPU, so this case gets a CPU budget that cannot bind first
    grow = SandboxConfig(timeout_s=60, cpu_time_s=40, memory_mb=384, max_processes=6, output_limit_kb=16)
    assert run_code("x = []\nwhile True:\n    x.append(' ' * 10 ** 6)\n", "pass", grow).status == "memory_limit"
    loop = run_code("while True:\n    pass\n", "pass", CFG)
    assert loop.status in ("cpu_limit", "timeout")
    sleeper = run_code("import time\ntime.sleep(60)\n", "pass", SandboxConfig(timeout_s=2))
    assert sleeper.status == "timeout" and sleeper.wall_s < 10
    out = run_code("import sys\nwhile True:\n    sys.stdout.write('x' * 10000)\n", "pass", CFG)
    assert out.status == "output_limit" and len(out.stdout) <= CFG.output_limit_kb * 1024
    big = run_code("open('big', 'wb').write(b'x' * (64 << 20))\n", "pass", SandboxConfig(file_size_mb=1))
    assert big.status == "error" and "File too large" in big.error
    # and the next candidate runs normally
    assert run_code("def f():\n    return 1\n", "assert f() == 1\n", CFG).passed


def test_profile_comes_back_for_a_passing_candidate():
    r = run_code("def f(n):\n    return sum(range(n))\n", "assert f(1000) == 499500\n", CFG,
                 ProfileSpec(runs=3, min_time_s=0.01))
    p = r.profile
    assert r.passed and len(p["et_runs"]) == 3 and p["et_s"] > 0 and p["mu_mb"] > 5 and p["tmu_mbs"] > 0
    assert p["lines"]["time"][0]["code"] == "return sum(range(n))"


def test_weaker_isolation_needs_explicit_confirmation():
    for level in ("rlimits", "none"):
        with pytest.raises(ConfigError, match="accept_weaker_isolation"):
            from_dict(SandboxConfig, {"isolation": level})
        cfg = from_dict(SandboxConfig, {"isolation": level, "accept_weaker_isolation": True})
        check_sandbox(cfg)
    check_sandbox(SandboxConfig())
    with pytest.raises(ConfigError, match="max_processes"):
        from_dict(SandboxConfig, {"max_processes": 1})


def test_rlimits_level_still_contains_memory_and_time():
    cfg = SandboxConfig(isolation="rlimits", accept_weaker_isolation=True, timeout_s=5, cpu_time_s=1, memory_mb=256)
    assert run_code("def f():\n    return 2\n", "assert f() == 2\n", cfg).passed
    assert run_code("x = bytearray(2 * 1024 ** 3)\n", "pass", cfg).status == "memory_limit"
    assert run_code("while True:\n    pass\n", "pass", cfg).status in ("cpu_limit", "timeout")


def test_without_namespaces_untrusted_code_is_refused_unless_weaker_isolation_is_accepted(monkeypatch):
    from codeopt import sandbox

    monkeypatch.setitem(sandbox._PROBED, "ns", "unshare failed: Operation not permitted")
    with pytest.raises(ConfigError, match="'sandbox.isolation'.*not available"):
        check_sandbox(SandboxConfig())
    check_sandbox(SandboxConfig(isolation="rlimits", accept_weaker_isolation=True))  # the user's explicit choice
