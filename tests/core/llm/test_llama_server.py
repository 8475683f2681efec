"""llama-server management without running one: where the binary comes from and the command line
the config makes (threads, slots, context), and the errors naming the make target."""

from __future__ import annotations

import os
import stat

import pytest

from core.config import ConfigError
from core.llm.llama_server import LLAMA_CPP_PYTHON, LlamaServer, default_binary, free_port, server_binary


def test_the_binary_comes_from_the_config_then_the_env_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TAILOR_LLAMA_SERVER", raising=False)
    assert default_binary() == tmp_path / "cache" / "llama-server" / f"{LLAMA_CPP_PYTHON}-{os.uname().machine}" / "llama-server"
    with pytest.raises(ConfigError) as e:
        server_binary(None, key="gold.teacher.llamacpp.server")
    assert e.value.key == "gold.teacher.llamacpp.server" and "make install" in str(e.value)
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
