"""Flower's Ray backend, minus its `ray.shutdown()`.

Flower 1.42's `RayBackend.terminate()` ends the simulation by shutting Ray down, whoever started
it. `fl.app.run_spry` runs on a Ray that its caller initialized, and that caller may have more
to do: a specialize recipe runs other stages in the same driver, at the same time, and a test
session shares one Ray instance. After Flower's shutdown their next Ray call silently started a
fresh default Ray, and the driver died at exit waiting for the first session's GCS (exit 1 after
every stage had finished). `install` swaps in a backend whose `terminate()` ends its own actors
and leaves Ray to its owner (which shuts it down, or lets the process exit do so).
"""

from __future__ import annotations


def install() -> None:
    """Make Flower's simulation engine build `KeepRayBackend`s (idempotent)."""
    from flwr.server.superlink.fleet.vce.backend import raybackend

    if getattr(raybackend.RayBackend, "keeps_ray", False):
        return

    class KeepRayBackend(raybackend.RayBackend):
        keeps_ray = True

        def terminate(self) -> None:
            if self.pool:
                self.pool.terminate_all_actors()

    # vce_api imports RayBackend from this module each time it builds a backend
    raybackend.RayBackend = KeepRayBackend


__all__ = ["install"]
