"""The Ray actor pool: chunks of prompts spread over the actors, with the texts and scores the same
backend gives in-process (sampling is seeded per prompt, not per actor)."""

import pytest

from core.config import ConfigError, from_dict
from core.llm import LLMConfig, SamplingParams, build_backend, local_backend
from core.llm.pool import LLMPool, chunk_slices
from core.seeding import derive_seed
from tests.conftest import RAY

pytestmark = RAY

CHATS = [[{"role": "user", "content": f"Write review number {i}." + " Make it short." * (i % 3)}] for i in range(5)]


def _cfg(**pool) -> LLMConfig:
    return from_dict(LLMConfig, {"hf": {"model": {"name": "tiny-llama", "device": "cpu"}, "batch_size": 2},
                                 "pool": {"actors": 2, "batch_size": 2, "num_cpus": 1, **pool}})


def test_chunks_cover_the_batch_in_order():
    assert chunk_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert chunk_slices(0, 3) == []
    with pytest.raises(ValueError):
        chunk_slices(3, 0)


def test_the_pool_spreads_work_and_matches_the_backend_in_process(ray_session):
    cfg = _cfg()
    pool = build_backend(cfg)
    assert isinstance(pool, LLMPool) and len(pool.actors) == 2
    try:
        pool.check()
        local = local_backend(cfg)
        p = SamplingParams(max_new_tokens=5, top_k=20)
        seeds = [derive_seed("pool", i) for i in range(len(CHATS))]
        assert pool.generate(CHATS, p, seeds) == local.generate(CHATS, p, seeds)
        conts = [" fresh", " rotten", " fresh", " stale", " fine"]
        assert pool.score(CHATS, conts) == pytest.approx(local.score(CHATS, conts), abs=1e-4)
        served = pool.served()
        # two idle actors take the first two chunks of 2: both worked, and on every prompt once per call
        assert sum(served) == 2 * len(CHATS) and min(served) > 0
        options = [[" fresh", " rotten"]] * 4 + [[]]
        both = pool.generate_and_score(CHATS, p, seeds, options)
        assert [t for t, _ in both] == local.generate(CHATS, p, seeds)
        assert [s for _, s in both][:4] == [pytest.approx(local.score([c] * 2, o), abs=1e-4)
                                            for c, o in zip(CHATS[:4], options)] and both[4][1] == []
        assert pool.generate([], p, []) == []
    finally:
        pool.shutdown()


def test_more_gpus_per_actor_than_the_cluster_has_is_a_config_error(ray_session):
    with pytest.raises(ConfigError) as err:
        LLMPool(_cfg(num_gpus=1), key="teacher")
    assert err.value.key == "teacher.pool.num_gpus"


def test_a_failed_call_leaves_no_stale_error_for_the_next_one(ray_session):
    # ActorPool.map drains what an earlier call left pending and raises any error it finds there:
    # without the pool waiting out a failed call's other chunks, the second bad chunk below would
    # fail the next, healthy call (a caller's retry included)
    import time

    pool = build_backend(_cfg())
    try:
        p = SamplingParams(max_new_tokens=3)
        broken = {"role": "user"}  # no content: the actor's chat template raises KeyError
        bad = [CHATS[0], CHATS[1], [broken], CHATS[3], [broken]]
        with pytest.raises(KeyError):
            pool.generate(bad, p, list(range(5)))
        time.sleep(1.0)  # the last chunk has failed by now too
        seeds = [derive_seed("pool", i) for i in range(len(CHATS))]
        assert pool.generate(CHATS, p, seeds) == local_backend(_cfg()).generate(CHATS, p, seeds)
    finally:
        pool.shutdown()
