"""Spry's baselines (fl/methods.py): each method's client update rule on a tiny model, the
config combinations they refuse, which tensors the strategy assigns each client, and the
seed-only uplink's server replay. No Ray: messages are built and aggregated, not sent.
The estimators of fedmezo/central_diff are tested on quadratics in test_zeroth_order.py; here only
that the methods dispatch to them."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from core.config import ConfigError, from_dict
from core.seeding import generator
from fl.config import FLConfig, SpryConfig
from fl.local import classification_loss, spry_train
from fl.methods import METHODS, client_seed_parts, head_lr_overrides, server_optimizer, train_client
from fl.report import results_table
from fl.seed_replay import regenerate_gradient
from fl.strategy import SpryStrategy
from fl.zeroth_order import zeroth_order_train
from tests.fl.tiny import random_batches, tiny_model

SEED_PARTS = client_seed_parts(0, 1, 3)


@pytest.fixture
def flower_task_identity(monkeypatch):
    # Messages are only built inside a Flower run; stand in the identity a run would set.
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


@pytest.fixture(scope="module")
def tiny():
    return (*tiny_model(), random_batches(3))


def _fl(method, **kw):
    return FLConfig(method=method, **{"optimizer": "sgd", "lr": 0.05, **kw})


def _grad(model, params, batch):
    leaves = {k: p.clone().requires_grad_(True) for k, p in params.items()}
    loss = classification_loss(model, leaves, batch)
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


# --- config ----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,key", [
    (["fl.method=fedyogi", "fl.server_optimizer=fedavg"], "fl.server_optimizer"),
    (["fl.method=fedavg", "fl.server_optimizer=fedyogi"], "fl.server_optimizer"),
    (["fl.method=fedsgd", "fl.optimizer=adamw"], "fl.optimizer"),
    (["fl.method=fedmezo", "fl.num_perturbations=2"], "fl.num_perturbations"),
    (["fl.method=fedavg_split", "fl.uplink=seeds"], "fl.uplink"),
    (["fl.method=fedsgd", "fl.optimizer=sgd", "fl.uplink=seeds"], "fl.uplink"),
    (["fl.zo_eps=0"], "fl.zo_eps"),
    (["fl.method=fedprox"], "fl.method"),
    # central differences are not FwdLLM (no adaptive K, no discriminative sampling): no arm by that name
    (["fl.method=fwdllm"], "fl.method"),
])
def test_conflicting_combinations_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        from_dict(SpryConfig, {}, overrides)
    assert e.value.key == key


def test_server_optimizer_comes_from_the_method_or_the_config():
    def resolved(*o):
        return server_optimizer(from_dict(SpryConfig, {}, list(o)).fl)

    assert resolved() == "fedavg" and resolved("fl.method=fedyogi") == "fedyogi"
    assert resolved("fl.method=fedyogi", "fl.server_optimizer=fedyogi") == "fedyogi"
    assert resolved("fl.server_optimizer=fedadam") == "fedadam"  # spry: any server optimizer
    assert resolved("fl.method=central_diff", "fl.num_perturbations=4", "fl.uplink=seeds") == "fedavg"


# --- client update rules ---------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fedavg", "fedyogi"])
def test_backprop_sgd_step_is_w_minus_lr_grad(tiny, method):
    model, params, batches = tiny
    trained, metrics, scalars = train_client(_fl(method), model, params, iter(batches[:1]), 1, SEED_PARTS)
    grad = _grad(model, params, batches[0])
    assert scalars is None and metrics["steps"] == 1 and list(trained) == list(params)
    for k in params:
        assert torch.allclose(trained[k], params[k] - 0.05 * grad[k], atol=1e-6), k


def test_fedsgd_takes_exactly_one_step_whatever_the_budget(tiny):
    model, params, batches = tiny
    it = iter(batches)
    trained, metrics, _ = train_client(_fl("fedsgd"), model, params, it, 10, SEED_PARTS)
    assert metrics["steps"] == 1 and next(it) is batches[1]  # one batch drawn, not ten
    grad = _grad(model, params, batches[0])
    for k in params:
        assert torch.allclose(trained[k], params[k] - 0.05 * grad[k], atol=1e-6), k
    again, metrics, _ = train_client(_fl("fedavg"), model, params, iter(batches), 3, SEED_PARTS)
    assert metrics["steps"] == 3  # fedavg keeps the configured budget


@pytest.mark.parametrize("method", ["spry", "fedavg_split"])
def test_split_methods_train_only_the_assigned_chunk(tiny, method):
    model, params, batches = tiny
    chunk = [k for k in params if ".layer.1.attention.self.value." in k]  # one LoRA A/B pair
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained, _, _ = train_client(_fl(method), model, {k: params[k] for k in chunk}, iter(batches), 3, SEED_PARTS)
    assert list(trained) == chunk
    assert any(not torch.equal(trained[k], params[k]) for k in chunk)
    # the rest of the model (other chunks, frozen base) is read, never written
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _own_direction(model, params, batch, trained, lr):
    """Per step of SGD: ĝ = (w - w') / lr and the true gradient g of the same tensors."""
    g = _grad(model, params, batch)
    g_hat = {k: (params[k] - trained[k]) / lr for k in params}
    return lambda keys: float(sum((g[k].double() * g_hat[k].double()).sum() for k in keys))


@pytest.mark.parametrize("head_jvp", ["separate", "joint"])
def test_spry_head_on_every_client_gets_its_own_perturbation(tiny, head_jvp):
    # A chunk's estimate is d·v_c. With its own jvp, d = g_c·v_c, so g_c·ĝ_c = d²; sharing the
    # head's perturbation makes d = g_c·v_c + g_h·v_h, and the head's gradient leaks into the
    # LoRA estimate (g_c·ĝ_c = d·(g_c·v_c) != d²).
    model, params, batches = tiny
    lora = [k for k in params if ".layer.1.attention.self.value." in k]
    head = [k for k in params if k.startswith("head.")]
    chunk = {k: params[k] for k in lora + head}
    fl = _fl("spry", lr=1.0, head_jvp=head_jvp)
    trained, _, scalars = train_client(fl, model, chunk, iter(batches[:1]), 1, SEED_PARTS)
    dot = _own_direction(model, chunk, batches[0], trained, 1.0)
    if head_jvp == "separate":
        assert len(scalars[0]) == 2  # one directional derivative per group: the chunk's, the head's
        d_lora, d_head = scalars[0]
        assert dot(lora) == pytest.approx(d_lora ** 2, rel=1e-3)
        assert dot(head) == pytest.approx(d_head ** 2, rel=1e-3)
    else:  # the joint estimate, kept as an option for bench.estimator
        (d,) = scalars[0]
        assert dot(lora + head) == pytest.approx(d ** 2, rel=1e-3)
        assert dot(lora) != pytest.approx(d ** 2, rel=0.05)


def test_spry_chunk_without_the_head_is_one_group(tiny):
    model, params, batches = tiny
    lora = {k: params[k] for k in params if ".layer.1.attention.self.value." in k}
    trained, _, scalars = train_client(_fl("spry", lr=1.0), model, lora, iter(batches[:1]), 1, SEED_PARTS)
    assert len(scalars[0]) == 1
    assert _own_direction(model, lora, batches[0], trained, 1.0)(list(lora)) == pytest.approx(scalars[0][0] ** 2, rel=1e-3)


def test_fedfgd_perturbs_and_steps_every_tensor(tiny):
    model, params, batches = tiny
    trained, _, scalars = train_client(_fl("fedfgd", num_perturbations=2), model, params,
                                       iter(batches[:1]), 1, SEED_PARTS)
    g_hat = regenerate_gradient(params, scalars[0], generator("cpu", *SEED_PARTS, "step", 0))
    assert len(scalars) == 1 and len(scalars[0]) == 2
    for k in params:
        assert torch.allclose(trained[k], params[k] - 0.05 * g_hat[k], atol=1e-7), k
        # every tensor moves, LoRA A included, whose true gradient is 0 while B is 0
        assert not torch.equal(trained[k], params[k]), k


def test_perturbation_methods_dispatch_to_their_estimators(tiny):
    model, params, batches = tiny
    sgd = dict(optimizer="sgd", lr=0.05, weight_decay=0.0, seed_parts=SEED_PARTS)
    expected = {
        # spry trains the head on every client, perturbed apart from the LoRA tensors
        "spry": spry_train(model, params, iter(batches), 2, 3, **sgd,
                           groups=[[k for k in params if not k.startswith("head.")],
                                   [k for k in params if k.startswith("head.")]]),
        "fedfgd": spry_train(model, params, iter(batches), 2, 3, **sgd),
        "fedmezo": zeroth_order_train(model, params, iter(batches), 2, "spsa", 1e-2, 1, **sgd),
        "central_diff": zeroth_order_train(model, params, iter(batches), 2, "central", 1e-2, 3, **sgd),
    }
    for method, (want, _, want_scalars) in expected.items():
        k = 1 if method == "fedmezo" else 3
        got, _, scalars = train_client(_fl(method, num_perturbations=k, zo_eps=1e-2), model, params,
                                       iter(batches), 2, SEED_PARTS)
        per_step = 2 * k if method == "spry" else k  # spry: K for the LoRA tensors, K for the head
        assert scalars == want_scalars and len(scalars) == 2 and all(len(s) == per_step for s in scalars), method
        assert all(torch.equal(got[n], want[n]) for n in params), method


# --- the strategy ----------------------------------------------------------------------------

NAMES = [f"l{i}.{m}.lora_{ab}.default.weight" for i in range(3) for m in ("q", "v") for ab in "AB"] + \
    ["head.weight", "head.bias"]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("head_on_every_client", [True, False])
def test_strategy_assigns_all_tensors_unless_the_method_splits(flower_task_identity, method, head_on_every_client):
    extra = ["fl.optimizer=sgd"] if method == "fedsgd" else []
    cfg = from_dict(SpryConfig, {}, ["partition.num_clients=10", "fl.clients_per_round=4", f"fl.method={method}",
                                     f"fl.head_on_every_client={head_on_every_client}", *extra])
    s = SpryStrategy(cfg, NAMES, evaluate_fn=lambda state: {})
    s.node_of = {pid: 1000 + pid for pid in range(10)}
    msgs = list(s.configure_train(1, ArrayRecord({n: torch.zeros(2) for n in NAMES}), ConfigRecord(), grid=None))
    assigned = [list(m.content["config"]["assigned"]) for m in msgs]
    assert len(msgs) == 4 and assigned == list(s.assigned_names(1).values())
    assert all(set(m.content["arrays"].keys()) == set(NAMES) for m in msgs)  # downlink: everything
    if not METHODS[method].split:
        assert all(a == NAMES for a in assigned)  # head_on_every_client plays no part
    else:
        assert set().union(*map(set, assigned)) == set(NAMES)
        lora = [n for a in assigned for n in a if not n.startswith("head.")]
        assert sorted(lora) == sorted(NAMES[:-2])  # each LoRA tensor on exactly one client
        heads = sum("head.weight" in a for a in assigned)
        assert heads == (4 if head_on_every_client else 1)


def _reply(pid, arrays, metrics):
    content = RecordDict({"arrays": ArrayRecord(arrays),
                          "metrics": MetricRecord({**metrics, "partition-id": pid, "num-examples": 10 + pid})})
    return Message(content=content, dst_node_id=0, message_type="train")


@pytest.mark.parametrize("method,overrides", [
    ("spry", ["fl.optimizer=adamw", "fl.lr=0.01", "fl.head_lr=0.03", "fl.weight_decay=0.01"]),
    ("central_diff", ["fl.num_perturbations=2", "fl.server_optimizer=fedyogi"]),
])
def test_seed_uplink_aggregates_to_the_tensor_uplink(flower_task_identity, tiny, method, overrides):
    # Each client trains as fl.client would; the server, given only [steps, K] scalars, must
    # land where the tensor uplink lands, and count the far smaller bytes that travelled.
    model, params, batches = tiny
    base = ["partition.num_clients=3", "fl.clients_per_round=3", f"fl.method={method}", "seed=5", *overrides]
    out = {}
    for uplink in ("tensors", "seeds"):
        cfg = from_dict(SpryConfig, {}, [*base, f"fl.uplink={uplink}"])
        s = SpryStrategy(cfg, list(params), evaluate_fn=lambda state: {})
        replies = []
        for pid, names in s.assigned_names(2).items():
            trained, metrics, scalars = train_client(
                cfg.fl, model, {k: params[k] for k in names}, iter(batches), 2, client_seed_parts(5, 2, pid),
                lr_overrides=head_lr_overrides(cfg.fl, list(params)))
            arrays = trained if uplink == "tensors" else {"scalars": torch.tensor(scalars, dtype=torch.float32)}
            replies.append(_reply(pid, arrays, metrics))
        out[uplink] = s._aggregate(2, replies, dict(params))
    (tensors_state, tensors_rec), (seeds_state, seeds_rec) = out["tensors"], out["seeds"]
    assert seeds_rec["clients"] == tensors_rec["clients"] == 3
    assert seeds_rec["tensors_trained"] == tensors_rec["tensors_trained"] == len(params)
    assert any(not torch.equal(tensors_state[k], params[k]) for k in params)
    for k in params:
        assert torch.allclose(seeds_state[k], tensors_state[k], atol=1e-6, rtol=0), k
    assert seeds_rec["bytes_up"] < tensors_rec["bytes_up"] / 5


def test_seed_uplink_rejects_nan_scalars(flower_task_identity, tiny):
    _, params, _ = tiny
    cfg = from_dict(SpryConfig, {}, ["partition.num_clients=2", "fl.clients_per_round=2", "fl.uplink=seeds"])
    s = SpryStrategy(cfg, list(params), evaluate_fn=lambda state: {})
    bad = _reply(0, {"scalars": torch.full((3, 1), float("nan"))}, {"loss": 0.5, "train_time": 0.1})
    new, rec = s._aggregate(1, [bad], dict(params))
    assert rec["rejected"] == 1 and rec.get("skipped")


def test_report_names_the_method():
    history = [{"round": 0, "accuracy": 0.5, "loss": 0.7}, {"round": 1, "accuracy": 0.6, "loss": 0.6, "train_loss": 0.65}]
    assert "fedmezo round 1" in results_table(history, 0.5, method="fedmezo")
    assert "spry round 1" in results_table(history, 0.5)
