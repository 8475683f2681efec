"""A Backend whose work spreads over Ray actors, each holding one backend (one model load per
actor); a batch of prompts goes out in chunks of `pool.batch_size`, each to the next free actor.

Sampling is seeded per prompt, so the texts do not depend on which actor wrote which chunk:
a pool returns what the same backend returns in-process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ray
from ray.exceptions import RayActorError
from ray.util.actor_pool import ActorPool

from core.llm.base import LLMError, Prompt, SamplingParams, check_lengths, generate_and_score
from core.llm.config import LLMConfig
from core.ray import check_gpus


def chunk_slices(n: int, size: int) -> list[slice]:
    """[0, size), [size, 2 size), ... covering range(n)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return [slice(lo, min(lo + size, n)) for lo in range(0, n, size)]


class BackendActor:
    """Holds one backend for the actor's lifetime, so its model loads once."""

    def __init__(self, cfg: LLMConfig, key: str):
        from core.llm import local_backend

        self.backend = local_backend(cfg, key)
        self.prompts_done = 0  # how the work actually spread, for logs and tests

    def generate(self, prompts: list[Prompt], params: SamplingParams, seeds: list[int]) -> list[str]:
        out = self.backend.generate(prompts, params, seeds)
        self.prompts_done += len(prompts)
        return out

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        out = self.backend.score(prompts, continuations)
        self.prompts_done += len(prompts)
        return out

    def generate_and_score(self, prompts: list[Prompt], params: SamplingParams, seeds: list[int],
                           options: list[list[str]]) -> list[tuple[str, list[float]]]:
        out = generate_and_score(self.backend, prompts, params, seeds, options)
        self.prompts_done += len(prompts)
        return out

    def served(self) -> int:
        return self.prompts_done

    def check(self) -> None:
        self.backend.check()

    def close(self) -> None:
        """Stop what the backend runs (a llamacpp backend's server) before the actor goes."""
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


_RemoteBackendActor = ray.remote(BackendActor)


class LLMPool:
    """cfg.pool.actors actors running cfg's backend. Needs Ray started (core.ray.init_ray)."""

    def __init__(self, cfg: LLMConfig, key: str = "llm"):
        p = cfg.pool
        if p.actors < 1:
            raise ValueError(f"a pool needs >= 1 actor, got {p.actors}")
        if p.num_gpus > 0:
            check_gpus(p.num_gpus, ray.cluster_resources().get("GPU", 0), f"{key}.pool.num_gpus")
        if cfg.backend == "openai":
            # the actors may run on other machines: send them this process's URL and key, not its env var names
            o = cfg.openai
            cfg = dataclasses.replace(cfg, openai=dataclasses.replace(
                o, base_url=o.resolved_base_url(), api_key=o.resolved_api_key()))
        self.name = f"pool of {p.actors} {cfg.backend}"
        self.batch_size = p.batch_size
        self.actors = [_RemoteBackendActor.options(num_cpus=p.num_cpus, num_gpus=p.num_gpus).remote(cfg, key)
                       for _ in range(p.actors)]
        self._pool = ActorPool(self.actors)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        check_lengths("seeds", seeds, prompts)
        prompts, seeds = list(prompts), list(seeds)
        return self._map(lambda actor, s: actor.generate.remote(prompts[s], params, seeds[s]),
                         chunk_slices(len(prompts), self.batch_size))

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[float]:
        check_lengths("continuations", continuations, prompts)
        prompts, continuations = list(prompts), list(continuations)
        return self._map(lambda actor, s: actor.score.remote(prompts[s], continuations[s]),
                         chunk_slices(len(prompts), self.batch_size))

    def generate_and_score(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int],
                           options: Sequence[Sequence[str]]) -> list[tuple[str, list[float]]]:
        """A chunk's replies and option scores on one actor, so the scoring finds the prompts in the
        KV cache that its generation left there (core.llm.base.generate_and_score)."""
        check_lengths("seeds", seeds, prompts)
        check_lengths("option lists", options, prompts)
        prompts, seeds, options = list(prompts), list(seeds), [list(o) for o in options]
        return self._map(lambda actor, s: actor.generate_and_score.remote(prompts[s], params, seeds[s], options[s]),
                         chunk_slices(len(prompts), self.batch_size))

    def _map(self, fn, slices) -> list:
        """fn's chunks in order, flattened. When a chunk fails, the chunks still running are waited
        for before the error propagates: ActorPool.map drains what an earlier call left pending and
        would raise that call's stale error inside the next call, the caller's retry included."""
        try:
            return [x for part in self._pool.map(fn, slices) for x in part]
        except BaseException:
            while self._pool.has_next():
                try:
                    self._pool.get_next()
                except Exception:  # noqa: BLE001 - the first error is the one raised
                    pass
            raise

    def check(self) -> None:
        """Every actor has loaded its backend and that backend is usable."""
        try:
            ray.get([a.check.remote() for a in self.actors])
        except RayActorError as err:
            raise LLMError(f"an actor of the {self.name} pool could not start its backend: {err}") from None

    def served(self) -> list[int]:
        """Prompts each actor has generated for or scored so far."""
        return ray.get([a.served.remote() for a in self.actors])

    # A pool travels to Ray Tune trials (tune.with_parameters): the actor handles pickle, the
    # ActorPool's bookkeeping does not need to; each copy schedules its own calls on the same actors.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_pool")
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool = ActorPool(self.actors)

    def shutdown(self) -> None:
        try:  # a clean stop first; a killed actor's llama-server also dies with it (PDEATHSIG)
            ray.get([a.close.remote() for a in self.actors], timeout=30)
        except Exception:  # noqa: BLE001 - an actor already gone has nothing left to stop
            pass
        for a in self.actors:
            ray.kill(a)
        self.actors = []
