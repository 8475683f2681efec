"""llama-server management without running one: where the binary comes from and the command line
the config makes (threads, slots, context), and the errors naming the make target."""

from __future__ import annotations

import os
import stat

import pytest

from core.config import ConfigError
from core.llm import llama_server
from core.llm.llama_server import (BUILD_REV, LLAMA_CPP_PYTHON, LlamaServer, default_binary, free_port,
                                    server_binary)


def test_the_binary_comes_from_the_config_then_the_env_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TAILOR_LLAMA_SERVER", raising=False)
    assert default_binary() == tmp_path / "cache" / "llama-server" / f"{LLAMA_CPP_PYTHON}-{os.uname().machine}-r{BUILD_REV}" / "llama-server"
    with pytest.raises(ConfigError) as e:
        server_binary(None, key="gold.teacher.llamacpp.server")
    assert e.value.key == "gold.teacher.llamacpp.server" and "make llama-server" in str(e.value)
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(ConfigError, match="not an executable"):  # there, but not executable
        server_binary(str(fake))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert server_binary(str(fake)) == fake
    monkeypatch.setenv("TAILOR_LLAMA_SERVER", str(fake))
    assert server_binary(None) == fake
    default_binary().parent.mkdir(parents=True)
    os.link(fake, default_binary())
    monkeypatch.delenv("TAILOR_LLAMA_SERVER")
    assert server_binary(None) == default_binary()


def test_the_command_line_carries_threads_slots_and_context(tmp_path):
    s = LlamaServer(tmp_path / "m.gguf", tmp_path / "llama-server", threads=3, parallel=5, ctx=2560, alias="qwen",
                    extra_args=["--mlock"])
    cmd = s.command(port := free_port())
    flags = dict(zip(cmd[1::2], cmd[2::2]))
    assert cmd[0].endswith("llama-server") and flags["-m"].endswith("m.gguf")
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == str(port)
    assert flags["-t"] == flags["-tb"] == "3" and flags["-np"] == "5" and flags["-c"] == "2560"
    assert "--alias" in cmd and "qwen" in cmd and cmd[-1] == "--mlock" and "-cb" in cmd


def test_a_binary_that_exits_at_once_is_an_error_with_its_output(tmp_path):
    from core.llm import LLMError

    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'error: unknown model format' >&2\nexit 3\n")
    fake.chmod(0o755)
    s = LlamaServer(tmp_path / "m.gguf", fake, startup_timeout_s=30)
    with pytest.raises(LLMError, match="exited with code 3: error: unknown model format"):
        s.start()
    assert s.proc is None


def test_a_binary_killed_by_a_signal_says_to_rebuild_it_here(tmp_path):
    from core.llm import LLMError

    fake = tmp_path / "llama-server"
    # what a -march=native build does on a CPU it cannot run on: dies on a signal as it loads
    fake.write_text("#!/bin/sh\necho 'load_model: loading model'\nkill -SEGV $$\n")
    fake.chmod(0o755)
    with pytest.raises(LLMError, match=r"signal 11 \(SIGSEGV\).*llama_server build --force"):
        LlamaServer(tmp_path / "m.gguf", fake, startup_timeout_s=30).start()


def test_the_smoke_test_refuses_a_binary_that_cannot_serve(tmp_path):
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\nkill -SEGV $$\n")
    fake.chmod(0o755)
    with pytest.raises(SystemExit, match="not installed.*SIGSEGV"):
        llama_server.smoke_test(fake)


def test_amx_is_turned_off_only_where_cpuid_has_it_and_a_tile_instruction_fails(tmp_path, monkeypatch):
    def no_subprocess(*a, **k):
        raise AssertionError("no probe is compiled where cpuid has no AMX")

    monkeypatch.setattr(llama_server, "cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(llama_server.subprocess, "run", no_subprocess)
    assert llama_server.amx_usable(tmp_path)
    monkeypatch.undo()
    assert llama_server.cmake_flags(True) == llama_server.CMAKE_FLAGS
    off = llama_server.cmake_flags(False)
    assert "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in off
    assert "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in off


def test_the_amx_probe_runs_a_tile_instruction_where_cpuid_has_amx(tmp_path):
    import shutil
    import subprocess

    if shutil.which("cc") is None or "amx_tile" not in llama_server.cpu_flags():
        pytest.skip("needs a C compiler and a CPU whose cpuid lists amx_tile")
    src, exe = tmp_path / "p.c", tmp_path / "p"
    src.write_text(llama_server.AMX_PROBE)
    subprocess.run(["cc", "-O1", "-mamx-tile", str(src), "-o", str(exe)], check=True)
    # the probe's verdict is the tile instruction's fate: exit 0, or a signal (SIGILL on VMs
    # that advertise AMX with the tile state off)
    rc = subprocess.run([str(exe)]).returncode
    assert llama_server.amx_usable(tmp_path) == (rc == 0)
