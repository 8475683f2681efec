import pytest
import torch

from fl.aggregate import ServerOptState, aggregate_per_tensor, server_update


def _state():
    return {"a": torch.zeros(3), "b": torch.ones(2), "c": torch.full((2,), 5.0)}


def test_overlapping_assignments_are_weighted_by_examples():
    updates = [({"a": torch.full((3,), 1.0)}, 10.0), ({"a": torch.full((3,), 4.0), "b": torch.full((2,), 3.0)}, 30.0)]
    out, counts = aggregate_per_tensor(_state(), updates)
    assert torch.allclose(out["a"], torch.full((3,), (10 * 1 + 30 * 4) / 40))
    assert torch.allclose(out["b"], torch.full((2,), 3.0))  # only one client trained b
    assert torch.equal(out["c"], _state()["c"])  # nobody trained c
    assert counts == {"a": 2, "b": 1, "c": 0}


def test_disjoint_assignments_take_each_clients_tensor():
    updates = [({"a": torch.full((3,), 2.0)}, 5.0), ({"b": torch.full((2,), 7.0)}, 1.0)]
    out, _ = aggregate_per_tensor(_state(), updates)
    assert torch.allclose(out["a"], torch.full((3,), 2.0)) and torch.allclose(out["b"], torch.full((2,), 7.0))


def test_unknown_tensor_is_refused():
    with pytest.raises(KeyError):
        aggregate_per_tensor(_state(), [({"zz": torch.zeros(1)}, 1.0)])


@pytest.mark.parametrize("opt", ["fedavg", "fedadam", "fedyogi"])
def test_untrained_tensors_stay_unchanged_under_every_server_optimizer(opt):
    cur = _state()
    st = ServerOptState()
    avg = {**cur, "a": torch.full((3,), 1.0)}
    for _ in range(3):  # momentum from earlier rounds must not move c
        new = server_update(opt, cur, avg, st, lr=0.1, trained={"a"})
    assert torch.equal(new["c"], cur["c"]) and torch.equal(new["b"], cur["b"])
    assert (new["a"] > 0).all()


def test_fedavg_with_unit_lr_is_plain_averaging_and_yogi_matches_its_formula():
    cur = _state()
    avg = {"a": torch.tensor([1.0, -2.0, 0.5]), "b": cur["b"], "c": cur["c"]}
    assert torch.equal(server_update("fedavg", cur, avg, ServerOptState(), lr=1.0)["a"], avg["a"])
    st = ServerOptState()
    new = server_update("fedyogi", cur, avg, st, lr=0.01, beta1=0.9, beta2=0.99, tau=1e-3)
    d = avg["a"]
    m = 0.1 * d
    v = -(0.01) * d * d * torch.sign(-d * d)
    assert torch.allclose(new["a"], 0.01 * m / (v.sqrt() + 1e-3))
