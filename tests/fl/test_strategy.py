"""SpryStrategy's per-client messages and aggregation, without Ray (messages built, not sent)."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from core.config import from_dict
from fl.config import SpryConfig
from fl.strategy import SpryStrategy

@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    # Messages are only built inside a Flower run; stand in the identity a run would set.
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


NAMES = [f"l{i}.{m}.lora_{ab}.default.weight" for i in range(3) for m in ("q", "v") for ab in "AB"] + \
    ["head.weight", "head.bias"]


def _strategy(*overrides):
    cfg = from_dict(SpryConfig, {}, ["partition.num_clients=10", "fl.clients_per_round=4", *overrides])
    s = SpryStrategy(cfg, NAMES, evaluate_fn=lambda state: {})
    s.node_of = {pid: 1000 + pid for pid in range(10)}
    return s


def _state():
    return {n: torch.zeros(2) for n in NAMES}


def _assigned(messages):
    return [list(m.content["config"]["assigned"]) for m in messages]


def test_every_tensor_assigned_each_round_and_head_on_every_client():
    s = _strategy()
    for rnd in range(1, 6):
        msgs = list(s.configure_train(rnd, ArrayRecord(_state()), ConfigRecord(), grid=None))
        assigned = _assigned(msgs)
        assert len(msgs) == 4 and {m.metadata.dst_node_id for m in msgs} == {1000 + p for p in s.sample_clients(rnd)}
        assert set().union(*map(set, assigned)) == set(NAMES)
        assert all({"head.weight", "head.bias"} <= set(a) for a in assigned)
        lora = [sorted(n for n in a if not n.startswith("head.")) for a in assigned]
        assert sum(len(x) for x in lora) == len(NAMES) - 2  # LoRA pairs split, none twice
        # downlink carries every trainable tensor, never frozen weights
        assert all(set(m.content["arrays"].keys()) == set(NAMES) for m in msgs)


def test_head_can_be_split_like_any_chunk():
    s = _strategy("fl.head_on_every_client=false")
    assigned = _assigned(s.configure_train(1, ArrayRecord(_state()), ConfigRecord(), grid=None))
    assert sum("head.weight" in a for a in assigned) == 1


def test_sampling_is_seeded():
    assert _strategy().sample_clients(3) == _strategy().sample_clients(3)
    assert _strategy().sample_clients(3) != _strategy("seed=1").sample_clients(3) or \
        _strategy().sample_clients(4) != _strategy("seed=1").sample_clients(4)


def _reply(pid, tensors, loss=0.5, n=10):
    content = RecordDict({"arrays": ArrayRecord(tensors),
                          "metrics": MetricRecord({"partition-id": pid, "num-examples": n, "loss": loss,
                                                   "train_time": 0.1})})
    out = Message(content=content, dst_node_id=0, message_type="train")
    return out


def test_aggregate_rejects_nan_and_keeps_untrained_tensors():
    s = _strategy("fl.server_optimizer=fedavg")
    state = _state()
    good = _reply(1, {"l0.q.lora_A.default.weight": torch.ones(2)})
    bad = _reply(2, {"l0.v.lora_A.default.weight": torch.tensor([float("nan"), 0.0])})
    new, rec = s._aggregate(1, [good, bad], state)
    assert rec["clients"] == 1 and rec["rejected"] == 1
    assert torch.equal(new["l0.q.lora_A.default.weight"], torch.ones(2))
    assert torch.equal(new["l0.v.lora_A.default.weight"], torch.zeros(2))


def test_round_with_too_few_clients_is_skipped():
    s = _strategy("fl.min_successful_clients=2")
    state = _state()
    new, rec = s._aggregate(1, [_reply(1, {"head.bias": torch.ones(2)}, loss=float("inf"))], state)
    assert rec.get("skipped") and all(torch.equal(new[k], state[k]) for k in state)


def test_client_runtime_is_built_once_per_process(tiny_yaml):
    # Each client actor loads the frozen base model once and reuses it across rounds.
    from core.config import load, to_yaml
    from fl.runtime import get_runtime

    text = to_yaml(load(SpryConfig, tiny_yaml))
    assert get_runtime(text) is get_runtime(text)
