"""SpryStrategy.start() checkpoints and resumes, on a fake Grid (no Ray, no model): a run that
crashes and resumes ends where the uninterrupted run ends, FedYogi moments included."""

import pytest
import torch
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict

from core.config import from_dict
from core.runs import RunDir
from fl import checkpoint as C
from fl.config import SpryConfig
from fl.strategy import SpryStrategy

NAMES = [f"l{i}.{m}.lora_{ab}.default.weight" for i in range(2) for m in ("q", "v") for ab in "AB"] + \
    ["head.weight", "head.bias"]
TIMING = ("wall_s", "round_s", "client_compute_s", "train_wall_s")


@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    # Messages are only built inside a Flower run; stand in the identity a run would set.
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


class Crash(Exception):
    pass


class FakeGrid:
    """Four nodes whose 'training' is a seeded function of (round, partition): what Spry's
    clients guarantee. Node ids differ per grid, as they do per Flower run."""

    def __init__(self, node_base: int, crash_in_round: int | None = None):
        self.pid_of = {node_base + 7 * p: p for p in range(4)}
        self.crash_in_round = crash_in_round
        self.prototype_queries: list[bool] = []

    def get_node_ids(self):
        return list(self.pid_of)

    def send_and_receive(self, messages, timeout=None):
        return [self._reply(m) for m in messages]

    def _reply(self, msg: Message) -> Message:
        pid = self.pid_of[msg.metadata.dst_node_id]
        cfg = msg.content["config"]
        if msg.metadata.message_type == MessageType.QUERY:
            prototypes = bool(cfg["prototypes"])
            self.prototype_queries.append(prototypes)
            content = RecordDict({"metrics": MetricRecord({"partition-id": pid, "num-examples": 10 + pid})})
            if prototypes:
                g = torch.Generator().manual_seed(pid)
                content["arrays"] = ArrayRecord({"sums": torch.randn(2, 3, generator=g), "counts": torch.tensor([4.0, 6.0])})
            return Message(content=content, reply_to=msg)
        rnd = int(cfg["server-round"])
        if rnd == self.crash_in_round:
            raise Crash(f"server killed in round {rnd}")
        state = msg.content["arrays"].to_torch_state_dict()
        g = torch.Generator().manual_seed(1000 * rnd + pid)
        trained = {k: state[k] - 0.1 * torch.randn(state[k].shape, generator=g) for k in cfg["assigned"]}
        metrics = {"loss": 1.0 / rnd + 0.01 * pid, "num-examples": 10 + pid, "partition-id": pid, "train_time": 0.5}
        return Message(content=RecordDict({"arrays": ArrayRecord(trained), "metrics": MetricRecord(metrics)}),
                       reply_to=msg)


def _cfg(*overrides) -> SpryConfig:
    return from_dict(SpryConfig, {}, ["partition.num_clients=4", "fl.clients_per_round=3", "fl.rounds=5",
                                      "fl.server_optimizer=fedyogi", "fl.server_lr=0.1", "fl.prototype_head=true",
                                      *overrides])


def _initial():
    g = torch.Generator().manual_seed(0)
    shapes = {n: (2, 3) for n in NAMES}
    shapes["head.bias"] = (2,)
    return {n: torch.randn(*s, generator=g) for n, s in shapes.items()}


def _evaluate(state):
    return {"accuracy": float(sum(v.sum() for v in state.values())), "loss": float(state["head.bias"].abs().sum())}


def _start(cfg, run, grid, resume=None):
    s = SpryStrategy(cfg, NAMES, _evaluate, run=run, resume=resume)
    s.start(grid=grid, initial_arrays=ArrayRecord(_initial()), num_rounds=cfg.fl.rounds, timeout=5)
    return s


def _run_dir(path):
    path.mkdir()
    return RunDir(path)


def _untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_crash_then_resume_equals_the_uninterrupted_run(tmp_path):
    full = _start(_cfg(), _run_dir(tmp_path / "full"), FakeGrid(100))

    # checkpoint_every=2: checkpoints after rounds 0, 2, 4, 5. The server dies in round 4, after
    # round 3's metrics row was written but with round 2 as the newest checkpoint.
    run = _run_dir(tmp_path / "crashed")
    cfg = _cfg("fl.checkpoint_every=2")
    with pytest.raises(Crash):
        _start(cfg, run, FakeGrid(100, crash_in_round=4))
    assert [r["round"] for r in run.read_metrics()] == [0, 1, 2, 3]
    ckpt = C.load_latest(run.file("checkpoints"))
    assert ckpt.round == 2 and ckpt.opt_state.m and ckpt.opt_state.v  # FedYogi moments saved

    grid = FakeGrid(500)  # new node ids
    resumed = _start(cfg, run, grid, resume=ckpt)
    assert grid.prototype_queries == [False] * 4  # rediscovered nodes, no prototypes recomputed
    assert all(torch.equal(resumed.final_state[k], full.final_state[k]) for k in NAMES)
    assert all(torch.equal(resumed.opt_state.v[k], full.opt_state.v[k]) for k in full.opt_state.v)
    assert _untimed(resumed.history) == _untimed(full.history)
    rows = run.read_metrics()
    assert [r["round"] for r in rows] == [0, 1, 2, 3, 4, 5]  # round 3 once, not twice
    assert _untimed(rows) == _untimed(full.run.read_metrics())
    assert resumed.resumed_from == [2]
    assert rows[3]["wall_s"] >= rows[2]["wall_s"]  # training time keeps counting from the checkpoint
    final = C.load_latest(run.file("checkpoints"))
    assert final.round == 5 and final.resumed_from == [2]
    assert all(torch.equal(final.weights[k], full.final_state[k]) for k in NAMES)


def test_a_finished_run_extends_to_more_rounds(tmp_path):
    full = _start(_cfg(), _run_dir(tmp_path / "full"), FakeGrid(100))
    run = _run_dir(tmp_path / "short")
    _start(_cfg("fl.rounds=3"), run, FakeGrid(100))
    extended = _start(_cfg(), run, FakeGrid(300), resume=C.load_latest(run.file("checkpoints")))
    assert all(torch.equal(extended.final_state[k], full.final_state[k]) for k in NAMES)
    assert [r["round"] for r in run.read_metrics()] == [0, 1, 2, 3, 4, 5]


def test_no_checkpoints_when_checkpoint_every_is_0(tmp_path):
    run = RunDir(tmp_path)
    _start(_cfg("fl.rounds=2", "fl.checkpoint_every=0"), run, FakeGrid(100))
    assert C.list_checkpoints(run.file("checkpoints")) == []


def test_checkpoint_every_is_validated():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="fl.checkpoint_every"):
        _cfg("fl.checkpoint_every=-1")
