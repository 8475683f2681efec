"""Join a Ray cluster (RAY_ADDRESS) or start an embedded local Ray; check resources."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from core.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_ATTEMPTS = 4


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None, verbose: bool = False) -> dict:
    """ray.init once per process. With RAY_ADDRESS set, join that cluster; else start locally.

    Returns ray.cluster_resources().
    """
    import ray

    import warnings

    # Keep Ray's current behaviour, hiding GPUs from actors that asked for none (with
    # model.device=auto such an actor must run on CPU, not on a GPU it did not reserve),
    # without the FutureWarning announcing that this will change.
    warnings.filterwarnings("ignore", message=".*RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*")
    if not ray.is_initialized():
        kwargs: dict = dict(
            logging_level=logging.INFO if verbose else logging.WARNING,
            log_to_driver=verbose,
            configure_logging=True,
        )
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
        else:
            # Actors import our packages from the repo root, whatever their working directory.
            pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
            for attempt in range(STARTUP_ATTEMPTS):
                try:
                    ray.init(
                        # "local": a fresh embedded Ray, even when a `ray start` cluster runs on this
                        # machine (plain ray.init() would silently join that one).
                        address="local",
                        num_cpus=num_cpus,
                        num_gpus=num_gpus,
                        include_dashboard=False,
                        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                        **kwargs,
                    )
                    break
                except Exception as err:  # noqa: BLE001 - Ray raises a bare Exception for this
                    # Ray gives its raylet a fixed 30 s to register; on an overloaded machine it
                    # can miss that and succeed on the next try.
                    if "timed out during startup" not in str(err) or attempt == STARTUP_ATTEMPTS - 1:
                        raise
                    logging.getLogger(__name__).warning("Ray's node timed out starting (attempt %d of %d); "
                                                        "retrying", attempt + 1, STARTUP_ATTEMPTS)
                    ray.shutdown()
    return dict(ray.cluster_resources())


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def check_gpus(requested: float, available: float, key: str) -> None:
    """A per-actor GPU request the cluster cannot meet leaves Flower's actor pool empty: refuse it."""
    if requested > available:
        raise ConfigError(
            key,
            f"asks for {requested:g} GPU(s) per actor but the cluster has {available:g}; "
            f"allowed: 0 to {available:g}",
        )
