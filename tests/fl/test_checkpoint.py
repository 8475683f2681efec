"""fl.checkpoint: round trips, atomic writes under a kill, and clear errors for bad files (no Ray)."""

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.runs import RunDir
from fl import checkpoint as C
from fl.aggregate import ServerOptState

REPO = Path(__file__).resolve().parents[2]
NAMES = ["l0.q.lora_A.default.weight", "l0.q.lora_B.default.weight", "head.weight", "head.bias"]


def _ckpt(rnd: int) -> C.Checkpoint:
    g = torch.Generator().manual_seed(rnd)
    weights = {n: torch.randn(3, 2, generator=g) for n in NAMES}
    opt = ServerOptState(m={n: torch.randn(3, 2, generator=g) for n in NAMES[:2]},
                         v={n: torch.rand(3, 2, generator=g) for n in NAMES[:2]})
    history = [{"round": 0, "accuracy": 0.5, "loss": 0.7, "wall_s": 1.0}]
    history += [{"round": r, "train_loss": float("nan") if r == 1 else 0.6 / r, "clients": 4, "skipped": False,
                 "wall_s": 1.0 + r} for r in range(1, rnd + 1)]
    return C.Checkpoint(rnd, weights, opt, history, "seed: 0\nfl: {rounds: 6}\n", resumed_from=[1] if rnd > 2 else [])


def _same(a: C.Checkpoint, b: C.Checkpoint) -> None:
    assert a.round == b.round and a.config == b.config and a.resumed_from == b.resumed_from
    assert a.weights.keys() == b.weights.keys()
    assert all(torch.equal(a.weights[k], b.weights[k]) and a.weights[k].dtype == b.weights[k].dtype for k in a.weights)
    for which in ("m", "v"):
        x, y = getattr(a.opt_state, which), getattr(b.opt_state, which)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history):
        assert ra.keys() == rb.keys()
        assert all(ra[k] == rb[k] or (isinstance(ra[k], float) and math.isnan(ra[k]) and math.isnan(rb[k])) for k in ra)


def test_round_trip_weights_moments_round_history(tmp_path):
    ck = _ckpt(3)
    path = C.save_checkpoint(tmp_path, ck)
    assert path.name == "round-00003.pt"
    _same(C.read_checkpoint(path), ck)
    _same(C.load_latest(tmp_path), ck)


def test_keeps_the_latest_and_one_previous(tmp_path):
    for r in range(5):
        C.save_checkpoint(tmp_path, _ckpt(r))
    assert [r for r, _ in C.list_checkpoints(tmp_path)] == [3, 4]
    assert C.load_latest(tmp_path).round == 4


@pytest.mark.parametrize("every,expected", [(1, [0, 1, 2, 3, 4, 5]), (2, [0, 2, 4, 5]), (3, [0, 3, 5]), (0, [])])
def test_should_checkpoint(every, expected):
    assert [r for r in range(6) if C.should_checkpoint(r, 5, every)] == expected


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    C.save_checkpoint(tmp_path, _ckpt(2))

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)  # the temporary file was written, the rename fails
    with pytest.raises(OSError):
        C.save_checkpoint(tmp_path, _ckpt(3))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["round-00002.pt"]
    _same(C.load_latest(tmp_path), _ckpt(2))


_KILLED_WRITER = """
import os, signal, sys
from fl import checkpoint as C
from tests.fl.test_checkpoint import _ckpt

folder = sys.argv[1]
C.save_checkpoint(folder, _ckpt(1))
C.save_checkpoint(folder, _ckpt(2))

def fsync_then_die(fd):
    # A kill while the temporary file is half written: no cleanup handler runs.
    os.ftruncate(fd, os.fstat(fd).st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)

os.fsync = fsync_then_die
C.save_checkpoint(folder, _ckpt(3))
"""


def test_a_kill_during_a_write_leaves_the_previous_checkpoint(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".round-00003.pt.")]
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # the torn temporary is there...
    assert [r for r, _ in C.list_checkpoints(tmp_path)] == [1, 2]  # ...and is not a checkpoint
    _same(C.load_latest(tmp_path), _ckpt(2))
    C.save_checkpoint(tmp_path, _ckpt(3))  # the next write clears the leftover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-00002.pt", "round-00003.pt"]


def test_a_damaged_latest_checkpoint_is_a_clear_error_naming_the_fallback(tmp_path):
    C.save_checkpoint(tmp_path, _ckpt(1))
    path = C.save_checkpoint(tmp_path, _ckpt(2))
    path.write_bytes(path.read_bytes()[:200])  # e.g. a copy cut short
    with pytest.raises(C.CheckpointError, match=r"round-00002.pt is not a readable checkpoint.*previous checkpoint \(round 1\)"):
        C.load_latest(tmp_path)


def test_no_checkpoint_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(C.CheckpointError, match="no checkpoint in"):
        C.load_latest(tmp_path / "checkpoints")
    torch.save({"weights": {}}, tmp_path / "round-00001.pt")
    with pytest.raises(C.CheckpointError, match="not a Spry checkpoint"):
        C.load_latest(tmp_path)
    path = C.save_checkpoint(tmp_path, _ckpt(2))
    os.replace(path, tmp_path / "round-00007.pt")
    with pytest.raises(C.CheckpointError, match="holds round 2, not the round its name says"):
        C.load_latest(tmp_path)


def test_check_weights_names_the_mismatch():
    ck = _ckpt(1)
    C.check_weights(ck, {k: v.clone() for k, v in ck.weights.items()})
    with pytest.raises(C.CheckpointError, match="only in the model"):
        C.check_weights(ck, {**ck.weights, "extra.weight": torch.zeros(1)})
    with pytest.raises(C.CheckpointError, match="head.bias"):
        C.check_weights(ck, {**ck.weights, "head.bias": torch.zeros(2)})


def test_restore_metrics_cuts_rows_after_the_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    ck = _ckpt(2)
    for row in ck.history + [{"round": 3, "train_loss": 0.2}]:
        run.log_metrics(row)  # round 3 was logged, then the server died before its checkpoint
    with open(run.file("metrics.jsonl"), "a") as f:
        f.write('{"round": 4, "tra')  # and a torn line
    C.restore_metrics(run.file("metrics.jsonl"), ck.history)
    rows = run.read_metrics()
    assert [r["round"] for r in rows] == [0, 1, 2] and rows[1]["train_loss"] == "nan"
    assert run.file("metrics.jsonl").read_text().endswith("}\n")


def test_resume_allows_only_overrides_that_leave_the_math_alone():
    assert C.refused_overrides(["fl.rounds=10", "fl.checkpoint_every=2", "memory_report=false"]) == []
    assert C.refused_overrides(["fl.rounds=10", "fl.lr=0.1", "seed=3", "resources.num_cpus=2"]) == [
        "fl.lr", "seed", "resources.num_cpus"]
    a = "seed: 0\nfl: {rounds: 6, lr: 0.05}\n"
    assert C.config_differences(a, "seed: 0\nfl: {rounds: 9, lr: 0.05}\n") == []
    assert C.config_differences(a, "seed: 1\nfl: {rounds: 6, lr: 0.1}\n") == ["fl.lr", "seed"]
