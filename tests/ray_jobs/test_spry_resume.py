"""`python -m ray_jobs.spry --resume <run dir>`: refusals exit 2 before Ray starts; a run killed
with SIGKILL and resumed ends exactly where the uninterrupted run ends."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.config import load, to_yaml
from fl import checkpoint as C
from fl.config import SpryConfig
from ray_jobs import spry

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "spry" / "tiny.yaml"
TIMING = ("wall_s", "round_s", "client_compute_s", "train_wall_s", "client_peak_rss_mb")  # the only fields that may differ between runs


# --- refusals, in process: main() must return before init_ray -----------------------------


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("Ray must not start")

    monkeypatch.setattr(spry, "init_ray", refuse)
    monkeypatch.setattr(spry, "setup_logging", lambda verbose=False: None)


def _run_dir(tmp_path, **overrides) -> Path:
    cfg = load(SpryConfig, TINY, [f"{k}={v}" for k, v in overrides.items()])
    d = tmp_path / "spry" / "run"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(to_yaml(cfg))
    return d


def _ckpt(cfg_yaml: str, rnd: int) -> C.Checkpoint:
    from fl.aggregate import ServerOptState

    history = [{"round": r, "accuracy": 0.5, "loss": 0.69} for r in range(rnd + 1)]
    return C.Checkpoint(rnd, {"head.bias": torch.zeros(2)}, ServerOptState(), history, cfg_yaml)


@pytest.mark.parametrize("case,message", [
    ("no dir", "no run directory"),
    ("no config", "has no config.yaml"),
    ("no checkpoint", "no checkpoint in"),
    ("corrupt", "is not a readable checkpoint"),
    ("other config", "differs from the config its checkpoint (round 2) was written under, at: fl.lr"),
    ("refused set", "--resume refuses --set fl.lr, seed"),
    ("with config", "drop --config"),
    ("fewer rounds", "fl.rounds"),
])
def test_resume_refusals_exit_2_before_ray(tmp_path, capsys, no_ray, case, message):
    d = _run_dir(tmp_path)
    argv = ["--resume", str(d)]
    if case == "no dir":
        argv = ["--resume", str(tmp_path / "nope")]
    elif case == "no config":
        (d / "config.yaml").unlink()
    elif case == "corrupt":
        (d / "checkpoints").mkdir()
        (d / "checkpoints" / "round-00002.pt").write_bytes(b"PK\x03\x04 cut short")
    elif case == "other config":
        C.save_checkpoint(d / "checkpoints", _ckpt((d / "config.yaml").read_text().replace("lr: 0.05", "lr: 0.1"), 2))
    elif case == "refused set":
        argv += ["--set", "fl.rounds=9", "--set", "fl.lr=0.1", "--set", "seed=1"]
    elif case == "with config":
        argv += ["--config", str(TINY)]
    elif case == "fewer rounds":
        C.save_checkpoint(d / "checkpoints", _ckpt((d / "config.yaml").read_text(), 2))
        argv += ["--set", "fl.rounds=1"]
    assert spry.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_resume_of_a_finished_run_says_so_and_exits_0(tmp_path, capsys, no_ray):
    d = _run_dir(tmp_path, **{"fl.rounds": 3})
    C.save_checkpoint(d / "checkpoints", _ckpt((d / "config.yaml").read_text(), 3))
    (d / "summary.md").write_text("done")
    assert spry.main(["--resume", str(d)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_resume_that_writes_the_missing_summary_copies_the_run_to_storage(tmp_path, capsys, no_ray):
    store = tmp_path / "store"
    d = _run_dir(tmp_path, **{"fl.rounds": 3, "run.storage_path": str(store)})
    C.save_checkpoint(d / "checkpoints", _ckpt((d / "config.yaml").read_text(), 3))
    assert spry.main(["--resume", str(d)]) == 0
    assert "wrote the missing" in capsys.readouterr().out
    copied = store / "spry" / "run"
    assert (copied / "summary.md").read_text() == (d / "summary.md").read_text()
    assert (copied / "checkpoints" / "round-00003.pt").is_file()


# --- end to end: SIGKILL mid-run, resume, compare with an uninterrupted run -----------------


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_TELEMETRY_ENABLED": "0",
           "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)  # each driver starts (and takes down) its own local Ray
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _group(pgid: int) -> list[str]:
    """Live processes in process group `pgid` (the driver and the Ray processes it started)."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(text[: text.rindex(")") + 1])
    return out


def _assert_group_gone(pgid: int, wait_s: float = 20.0) -> None:
    deadline = time.time() + wait_s
    while (left := _group(pgid)) and time.time() < deadline:
        time.sleep(0.2)
    if left:
        os.killpg(pgid, signal.SIGKILL)
        pytest.fail(f"processes left behind by the driver: {left}")


class Driver:
    """`python -m ray_jobs.spry ...` in its own process group (its Ray processes join that group),
    so the test can kill all of it and check nothing survives."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.spry", *args], cwd=REPO, env=_env(),
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"driver still running after {timeout}s; log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _assert_group_gone(self.proc.pid)

    def finish(self, timeout: float = 240) -> None:
        rc = self.wait(timeout)
        _assert_group_gone(self.proc.pid)
        assert rc == 0, self.log.read_text()[-3000:]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.xdist_group("ray")  # starts its own Ray: keep it off the cores other Ray tests use
def test_sigkill_then_resume_matches_the_uninterrupted_run(tmp_path, capsys, no_ray):
    # Checkpoints after rounds 0, 2, 4, 6: killed once round 3 is logged, the run has metrics rows
    # past its newest checkpoint, which the resume must drop rather than duplicate.
    args = ["--config", str(TINY), "--set", "fl.rounds=6", "--set", "fl.checkpoint_every=2"]

    killed = Driver([*args, "--set", f"run.root={tmp_path / 'killed'}"], tmp_path / "killed.log")
    try:
        deadline = time.time() + 240
        while True:  # until rounds 0..3 are logged; each round takes well under a second
            found = glob.glob(str(tmp_path / "killed" / "spry" / "*" / "metrics.jsonl"))
            if found and len(Path(found[0]).read_text().splitlines()) >= 4:
                break
            assert killed.proc.poll() is None, f"driver exited early:\n{killed.log.read_text()[-3000:]}"
            assert time.time() < deadline, f"no round 3 within 240s:\n{killed.log.read_text()[-3000:]}"
            time.sleep(0.02)
    finally:
        killed.kill()  # SIGKILL to the driver and its Ray processes; fails if any survive
    run = Path(found[0]).parent
    at_kill = C.load_latest(run / "checkpoints").round
    rows_at_kill = len(_rows(run))
    assert at_kill in (2, 4) and rows_at_kill > at_kill, "killed mid-way, or the test means nothing"

    Driver(["--resume", str(run)], tmp_path / "resume.log").finish()
    Driver([*args, "--set", f"run.root={tmp_path / 'full'}"], tmp_path / "full.log").finish()
    (full,) = (tmp_path / "full" / "spry").iterdir()

    a, b = C.load_latest(run / "checkpoints"), C.load_latest(full / "checkpoints")
    assert a.round == b.round == 6 and a.resumed_from == [at_kill] and b.resumed_from == []
    # Every round's randomness derives from (seed, round, client): bit-for-bit, not approximately.
    assert a.weights.keys() == b.weights.keys()
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert [r["round"] for r in _rows(run)] == list(range(7))  # no duplicate rows from the killed run
    assert _untimed(_rows(run)) == _untimed(_rows(full))
    assert f"Resumed from a checkpoint after round {at_kill}" in (run / "summary.md").read_text()

    capsys.readouterr()
    assert spry.main(["--resume", str(run)]) == 0  # in process: a finished run starts no Ray
    assert "already finished" in capsys.readouterr().out
