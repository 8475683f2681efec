"""Server checkpoints: what `python -m ray_jobs.spry --resume <run dir>` needs to continue a run.

A checkpoint is one `torch.save`d dict in `<run dir>/checkpoints/round-NNNNN.pt`:

    format        "tailor.spry.checkpoint"      version  1
    round         the last finished round r (0: after the round-0 discovery and prototypes)
    weights       {name: tensor}: the global trainable tensors after round r (head included)
    server_opt    {"m": {name: tensor}, "v": {name: tensor}}: FedAdam/FedYogi moments
    history       the metrics rows of rounds 0..r, as logged to metrics.jsonl
    config        the run's config as YAML (checked against config.yaml on resume)
    resumed_from  the rounds earlier resumes of this run started after

Not saved: the partition-id -> node-id map (Flower draws new node ids each run, so a resume
asks the nodes again) and RNG state, because there is none: client sampling, fault
injection, minibatch order and perturbations are each drawn from
core.seeding.derive_seed(seed, role, round, ...), the client optimizers start afresh every
round, and the models run in eval mode (no dropout). Round r's randomness is a function of
the config and r alone.

Writes are atomic (a temporary file in the same folder, fsync, os.replace), so a kill mid-write
leaves the previous checkpoint and a stray `.round-*` temporary file, which readers ignore.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from core.runs import _jsonable, atomic_write
from fl.aggregate import ServerOptState

log = logging.getLogger(__name__)

FORMAT = "tailor.spry.checkpoint"
VERSION = 1
KEEP = 2  # the latest and one previous: a fallback if the latest is ever damaged
_NAME = re.compile(r"^round-(\d+)\.pt$")

# Config keys a resume may change: none of them changes a round's arithmetic. fl.rounds extends
# (never shortens) a run; eval_every only picks the rounds evaluated on the server. Not here:
# resources.num_cpus, which sets each client actor's torch thread count and so can change the
# order of float reductions; and everything else, which changes the math outright.
RESUME_SAFE_KEYS = (
    "fl.rounds",
    "fl.checkpoint_every",
    "fl.eval_every",
    "fl.round_timeout",
    "resources.ray_num_cpus",
    "memory_report",
)


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, or does not fit the run: the message says which."""


@dataclass
class Checkpoint:
    round: int
    weights: dict[str, torch.Tensor]
    opt_state: ServerOptState
    history: list[dict]
    config: str
    resumed_from: list[int] = field(default_factory=list)


def checkpoint_path(folder: str | Path, server_round: int) -> Path:
    return Path(folder) / f"round-{server_round:05d}.pt"


def should_checkpoint(server_round: int, last_round: int, every: int) -> bool:
    """Every `every` rounds (round 0 included) and after the last; never when every is 0."""
    return every > 0 and (server_round % every == 0 or server_round == last_round)


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(round, path) of the finished checkpoint files, oldest first; temporaries are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def _plain(v):
    # weights_only loading accepts Python scalars and containers, not numpy or tensor scalars.
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    return v


def save_checkpoint(folder: str | Path, ckpt: Checkpoint, keep: int = KEEP) -> Path:
    """Write `ckpt` atomically, then drop all but the `keep` newest checkpoints."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "round": int(ckpt.round),
        "weights": {k: v.detach().cpu() for k, v in ckpt.weights.items()},
        "server_opt": {"m": {k: v.detach().cpu() for k, v in ckpt.opt_state.m.items()},
                       "v": {k: v.detach().cpu() for k, v in ckpt.opt_state.v.items()}},
        "history": _plain(ckpt.history),
        "config": ckpt.config,
        "resumed_from": [int(r) for r in ckpt.resumed_from],
    }
    buf = io.BytesIO()  # trainable tensors only (adapters, head): small enough to hold twice
    torch.save(payload, buf)
    path = atomic_write(checkpoint_path(folder, ckpt.round), buf.getvalue())
    _fsync_dir(path.parent)  # make the rename itself durable
    _prune(Path(folder), keep)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


def _prune(folder: Path, keep: int) -> None:
    for _, path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)
    # Temporaries of writes that a kill interrupted (one server writes here, and it just finished).
    for p in folder.glob(".round-*.pt.*"):
        p.unlink(missing_ok=True)


def _tensor_dict(obj, what: str, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: '{what}' is not a mapping of tensor names to tensors")
    return obj


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load and check one checkpoint file; CheckpointError says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, overwritten or foreign: torch raises several types
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Spry checkpoint (no format tag {FORMAT!r})")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in ("round", "weights", "server_opt", "history", "config", "resumed_from") if k not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    rnd = obj["round"]
    if not isinstance(rnd, int) or rnd < 0:
        raise CheckpointError(f"{path}: round {rnd!r} is not a round number")
    m = _NAME.match(path.name)
    if m and int(m.group(1)) != rnd:
        raise CheckpointError(f"{path} holds round {rnd}, not the round its name says")
    weights = _tensor_dict(obj["weights"], "weights", path)
    if not weights:
        raise CheckpointError(f"{path} holds no weights")
    opt = obj["server_opt"]
    if not isinstance(opt, dict) or set(opt) != {"m", "v"}:
        raise CheckpointError(f"{path}: 'server_opt' must hold the moments 'm' and 'v'")
    for which in ("m", "v"):
        for k, t in _tensor_dict(opt[which], f"server_opt.{which}", path).items():
            if k not in weights or t.shape != weights[k].shape:
                raise CheckpointError(f"{path}: server_opt.{which}[{k!r}] fits no saved weight")
    history = obj["history"]
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise CheckpointError(f"{path}: 'history' is not a list of metrics rows")
    rounds = [r.get("round") for r in history]
    if rounds != list(range(rnd + 1)):
        raise CheckpointError(f"{path}: history covers rounds {rounds}, expected 0..{rnd}")
    if not isinstance(obj["config"], str) or not isinstance(obj["resumed_from"], list):
        raise CheckpointError(f"{path}: 'config' or 'resumed_from' has the wrong type")
    return Checkpoint(rnd, weights, ServerOptState(m=dict(opt["m"]), v=dict(opt["v"])), history,
                      obj["config"], [int(r) for r in obj["resumed_from"]])


def load_latest(folder: str | Path) -> Checkpoint:
    """The newest checkpoint in `folder`. A damaged newest one is an error, not a silent fallback:
    resuming from the previous one would redo rounds the user may not expect to lose."""
    found = list_checkpoints(folder)
    if not found:
        raise CheckpointError(
            f"no checkpoint in {folder}: the run stopped before its first checkpoint, or ran with "
            f"fl.checkpoint_every=0; start it again"
        )
    rnd, path = found[-1]
    try:
        return read_checkpoint(path)
    except CheckpointError as err:
        if len(found) > 1:
            raise CheckpointError(
                f"{err}. To resume from the previous checkpoint (round {found[-2][0]}), move {path.name} out of {folder}"
            ) from None
        raise


def check_weights(ckpt: Checkpoint, expected: dict[str, torch.Tensor]) -> None:
    """The checkpoint's tensors are exactly the model's trainable tensors (names, shapes, dtypes)."""
    if set(ckpt.weights) != set(expected):
        extra, lacking = sorted(set(ckpt.weights) - set(expected)), sorted(set(expected) - set(ckpt.weights))
        raise CheckpointError(
            f"the checkpoint's tensors do not match the model's trainable tensors "
            f"(only in the checkpoint: {extra[:3]}; only in the model: {lacking[:3]})"
        )
    for k, t in expected.items():
        c = ckpt.weights[k]
        if c.shape != t.shape or c.dtype != t.dtype:
            raise CheckpointError(f"checkpoint tensor {k!r} is {tuple(c.shape)} {c.dtype}, the model's is "
                                  f"{tuple(t.shape)} {t.dtype}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(a_yaml: str, b_yaml: str, ignore: tuple[str, ...] = RESUME_SAFE_KEYS) -> list[str]:
    """Dotted keys whose values differ between two configs, besides the `ignore`d ones."""
    a, b = _flatten(yaml.safe_load(a_yaml) or {}), _flatten(yaml.safe_load(b_yaml) or {})
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def refused_overrides(overrides: list[str]) -> list[str]:
    """The keys of `--set key=value` overrides that a resume must refuse (not in RESUME_SAFE_KEYS)."""
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    return [k for k in keys if k not in RESUME_SAFE_KEYS]


def restore_metrics(path: str | Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl as the checkpoint's rows: rows of rounds after the checkpoint (logged
    before a crash) go, so the resumed rounds do not appear twice."""
    atomic_write(path, "".join(json.dumps(_jsonable(row)) + "\n" for row in history))
