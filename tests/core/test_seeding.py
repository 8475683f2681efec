"""Seeds derived from roles, and counter-based draws that do not depend on which ids are drawn together."""

import torch

from core.seeding import derive_seed, hash_uniform


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "round", 1) == derive_seed(0, "round", 1)
    assert derive_seed(0, "round", 1) != derive_seed(0, "round", 2)
    assert 0 <= derive_seed("x") < 2**63


def test_hash_uniform_is_per_id_and_uniform():
    ids = torch.arange(200_000)
    u = hash_uniform(ids, 7, "role")
    assert u.dtype == torch.float64 and bool(((u >= 0) & (u < 1)).all())
    # the same draw for an id whatever else is drawn with it (a shard sees what one process sees)
    assert torch.equal(hash_uniform(ids[5000:5100], 7, "role"), u[5000:5100])
    assert not torch.equal(hash_uniform(ids[:100], 8, "role"), u[:100])
    # uniform: decile counts within 2% of 20,000
    counts = torch.bincount((u * 10).long(), minlength=10)
    assert bool(((counts - 20_000).abs() < 400).all())
    assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.01
