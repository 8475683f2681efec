"""Spry and its baselines, chosen by `fl.method`: what each method's client and server do.

`central_diff` is plain central differences averaged over K Gaussian perturbations. It is
not FwdLLM (no adaptive number of perturbations, no discriminative sampling): FwdLLM is not
covered.

All methods share one client (fl.client) and one strategy (fl.strategy); they differ only in
the fields of their row in METHODS. Plain functions here, no Flower or Ray: the client calls
`train_client`, the server calls `replay_client` for the seed-only uplink, and both derive the
perturbation seeds from `client_seed_parts`, so the two sides cannot drift apart.

    method        trainer   split  steps  server optimizer   seed uplink
    spry          forward   yes    -      fl.server_optimizer  yes
    fedavg        backprop  no     -      fedavg             no
    fedyogi       backprop  no     -      fedyogi            no
    fedsgd        backprop  no     1      fedavg             no   (client optimizer sgd)
    fedavg_split  backprop  yes    -      fl.server_optimizer  no
    fedfgd        forward   no     -      fl.server_optimizer  yes
    fedmezo       spsa      no     -      fl.server_optimizer  yes  (K = 1)
    central_diff  central   no     -      fl.server_optimizer  yes  (K = fl.num_perturbations)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Literal

import torch

from core.config import require
from fl.local import backprop_train, spry_train
from fl.seed_replay import replay_spry_steps
from fl.zeroth_order import zeroth_order_train

if TYPE_CHECKING:
    from fl.config import FLConfig

Trainer = Literal["forward", "backprop", "spsa", "central"]


@dataclass(frozen=True)
class Method:
    # forward: jvp forward gradient; backprop: autograd; spsa / central: finite differences.
    trainer: Trainer
    # True: each client trains only its chunk of Spry's split; False: every trainable tensor.
    split: bool
    # Local steps per round whatever fl.local_steps / local_epochs say (FedSGD: one).
    fixed_steps: int | None = None
    # A method named after its server rule owns it: FedAvg averages, FedYogi steps Yogi.
    # None: fl.server_optimizer decides (fedavg when that is null).
    server_optimizer: str | None = None
    # A method defined with one client optimizer (FedSGD: a plain SGD step) requires it.
    optimizer: str | None = None
    # SPSA is one perturbation by definition: K must be 1 (central_diff averages K).
    num_perturbations: int | None = None

    @property
    def perturbation(self) -> bool:
        """Updates are a function of (seed, per-step scalars): the seed-only uplink applies."""
        return self.trainer != "backprop"


METHODS: dict[str, Method] = {
    "spry": Method("forward", split=True),
    "fedavg": Method("backprop", split=False, server_optimizer="fedavg"),
    "fedyogi": Method("backprop", split=False, server_optimizer="fedyogi"),
    "fedsgd": Method("backprop", split=False, fixed_steps=1, server_optimizer="fedavg", optimizer="sgd"),
    "fedavg_split": Method("backprop", split=True),
    "fedfgd": Method("forward", split=False),
    "fedmezo": Method("spsa", split=False, num_perturbations=1),
    "central_diff": Method("central", split=False),
}


def validate(fl: "FLConfig") -> None:
    """The combinations of fl.method with other keys that contradict the method (ConfigError)."""
    m = METHODS[fl.method]
    if m.server_optimizer is not None:
        require(fl.server_optimizer in (None, m.server_optimizer), "server_optimizer",
                f"method {fl.method} uses the {m.server_optimizer} server optimizer, got {fl.server_optimizer}; "
                f"set it to {m.server_optimizer} or null")
    if m.optimizer is not None:
        require(fl.optimizer == m.optimizer, "optimizer",
                f"method {fl.method} is defined with the {m.optimizer} client optimizer, got {fl.optimizer}")
    if m.num_perturbations is not None:
        require(fl.num_perturbations == m.num_perturbations, "num_perturbations",
                f"method {fl.method} uses {m.num_perturbations} perturbation(s) per step, got "
                f"{fl.num_perturbations}; central_diff averages K central differences")
    require(fl.uplink == "tensors" or m.perturbation, "uplink",
            f"the seed-only uplink needs a perturbation method "
            f"({', '.join(k for k, v in METHODS.items() if v.perturbation)}); {fl.method} trains by backprop")


def server_optimizer(fl: "FLConfig") -> str:
    return METHODS[fl.method].server_optimizer or fl.server_optimizer or "fedavg"


def client_seed_parts(seed: int, server_round: int, partition_id: int) -> tuple:
    """The perturbation seed of one client in one round: the client trains with it and the
    server replays with it (seed-only uplink). "spry" for every method keeps Spry's seeds as
    they were before the baselines existed."""
    return (seed, "spry", server_round, partition_id)


def head_lr_overrides(fl: "FLConfig", names: list[str]) -> dict[str, float] | None:
    """fl.head_lr for the head's tensors among `names`: the client and the replay share it."""
    if fl.head_lr is None:
        return None
    return {n: fl.head_lr for n in names if is_head(n)}


def estimate_groups(fl: "FLConfig", names: list[str]) -> list[list[str]] | None:
    """The tensor groups a forward-gradient client perturbs and estimates separately, for the
    tensors `names` it trains (in their order); None: one group, all of them.

    Spry with the head on every client (fl.head_on_every_client) and fl.head_jvp=separate: the
    chunk and the head each get their own jvp and perturbation, so the head's gradient adds no
    noise to the chunk's estimate (bench.estimator measures the difference). The client and
    the seed-only uplink's replay both call this, so they cannot disagree."""
    m = METHODS[fl.method]
    if m.trainer != "forward" or not m.split or not fl.head_on_every_client or fl.head_jvp != "separate":
        return None
    head = [n for n in names if is_head(n)]
    rest = [n for n in names if not is_head(n)]
    return [rest, head] if head and rest else None


def is_head(name: str) -> bool:
    """The classifier head's tensors (core.models names them head.weight and head.bias)."""
    return name.startswith("head.")


def train_client(
    fl: "FLConfig",
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    batch_iter: Iterator[dict[str, torch.Tensor]],
    steps: int,
    seed_parts: tuple,
    lr_overrides: dict[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float], list[list[float]] | None]:
    """One client's local work for fl.method on `params` (the tensors it was assigned).

    `steps` is the configured budget; a method with fixed_steps takes that many instead.
    Returns (trained tensors, metrics, per-step scalars); the scalars are None for backprop,
    whose update is not a function of a seed.
    """
    m = METHODS[fl.method]
    steps = m.fixed_steps if m.fixed_steps is not None else steps
    common = dict(optimizer=fl.optimizer, lr=fl.lr, weight_decay=fl.weight_decay, lr_overrides=lr_overrides)
    if m.trainer == "backprop":
        trained, metrics = backprop_train(model, params, batch_iter, steps, **common)
        return trained, metrics, None
    if m.trainer == "forward":
        return spry_train(model, params, batch_iter, steps, fl.num_perturbations, seed_parts=seed_parts,
                          groups=estimate_groups(fl, list(params)), jvp_impl=fl.jvp_impl, **common)
    return zeroth_order_train(model, params, batch_iter, steps, m.trainer, fl.zo_eps, fl.num_perturbations,
                              seed_parts=seed_parts, **common)


def replay_client(
    fl: "FLConfig",
    start: dict[str, torch.Tensor],
    scalars: list[list[float]],
    seed_parts: tuple,
    lr_overrides: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors train_client ended at for a perturbation method, rebuilt on the server from
    the tensors it sent (`start`, in the client's key order), the client's per-step scalars
    and its seed_parts."""
    if not METHODS[fl.method].perturbation:
        raise ValueError(f"method {fl.method} trains by backprop: nothing to replay")
    return replay_spry_steps(start, scalars, seed_parts, fl.optimizer, fl.lr, fl.weight_decay, lr_overrides,
                             groups=estimate_groups(fl, list(start)))
