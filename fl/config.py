"""The Spry job's config: typed dataclasses, loaded by core.config from configs/spry/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.config import require
from core.data import DataConfig
from core.models import AdapterConfig, ModelConfig
from core.partition import PartitionConfig
from fl import methods
from core.runs import RunConfig


@dataclass
class FLConfig:
    # Spry or a baseline sharing its client and strategy: see the table in fl/methods.py.
    method: Literal["spry", "fedavg", "fedyogi", "fedsgd", "fedavg_split", "fedfgd", "fedmezo", "central_diff"] = "spry"
    rounds: int = 20
    clients_per_round: int = 5
    # Tensors per chunk of Spry's split: 2 keeps a LoRA A/B pair (or the head's weight+bias) together.
    per_client_layer_count: int = 2
    # K: perturbations per step; the gradient estimate averages K jvp·v products.
    num_perturbations: int = 1
    # Local work per round: `local_steps` minibatches when set, else `local_epochs` passes.
    local_steps: int | None = 10
    local_epochs: int = 1
    batch_size: int = 16
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    # Learning rate of the head (null: fl.lr). The prototype head starts near its optimum, so
    # forward-gradient noise costs it more than the signal gives (see configs/spry/laptop.yaml).
    head_lr: float | None = None
    weight_decay: float = 0.0
    # null: the method's own (fedyogi for fl.method=fedyogi), else fedavg. The baselines named
    # after their server rule (fedavg, fedyogi, fedsgd) refuse any other.
    server_optimizer: Literal["fedavg", "fedadam", "fedyogi"] | None = None
    server_lr: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    # Step of the finite differences of fedmezo (SPSA) and central_diff: p = (L(w+εz) - L(w-εz)) / 2ε.
    zo_eps: float = 1e-3
    # What a client sends back: its trained tensors, or ("seeds", perturbation methods only) its
    # per-step scalars, from which the server replays the steps (fl.seed_replay).
    uplink: Literal["tensors", "seeds"] = "tensors"
    eval_every: int = 1
    # Save the server's state to <run dir>/checkpoints/ every this many rounds (and after round
    # 0 and the last round), so `python -m ray_jobs.spry --resume <run dir>` can continue after
    # a crash. 0: no checkpoints.
    checkpoint_every: int = 1
    # Round 0: set the head from federated class prototypes (see README: forward gradients
    # cannot train a random head within a demo's budget).
    prototype_head: bool = True
    # Split methods only (fl/methods.py): train the head on every sampled client (averaged
    # over them) instead of splitting it out like a LoRA chunk. With a label-skewed split, a head trained by one client per round
    # is pulled towards that client's labels (measured: the test loss then rises).
    head_on_every_client: bool = True
    # With the head on every client: `separate` gives the head its own perturbation and jvp
    # (2 jvps per step), so its gradient does not leak into the chunk's estimate; `joint`
    # perturbs chunk and head together (one jvp; the head's g_h·v_h then adds noise to every
    # chunk's estimate). bench.estimator measures both: see docs/spry.md.
    head_jvp: Literal["separate", "joint"] = "separate"
    # How a forward-gradient client computes its jvps (fl.forward_grad): `fused` (forward_ad
    # dual tensors; a frozen linear layer takes the primal and the tangent through one matrix
    # product) or `func` (torch.func.jvp). Both give the same values (tested); bench.memory
    # times them against backprop.
    jvp_impl: Literal["fused", "func"] = "fused"
    # After the last round: this many of its clients (0: none) train their tensors for
    # personalize_epochs local epochs from the global model, and are tested on their own test
    # sets (fl.evaluation): the spec's personalized accuracy.
    personalize_clients: int = 0
    personalize_epochs: int = 5
    # Logits are head_scale * cosine(embedding, prototype): a softmax temperature.
    head_scale: float = 20.0
    round_timeout: float = 600.0
    # Stop after the round in which the summed round times (training only, not evaluation)
    # reach this many seconds, evaluating that round: equal-wall-time comparisons of methods.
    time_budget_s: float | None = None
    # A round with fewer successful clients than this is retried with a fresh sample of
    # clients (up to max_retries times) or skipped, leaving the weights unchanged.
    min_successful_clients: int = 1
    too_few_clients: Literal["skip", "retry"] = "skip"
    max_retries: int = 2

    def validate(self) -> None:
        require(self.rounds > 0, "rounds", f"must be > 0, got {self.rounds}")
        require(self.clients_per_round > 0, "clients_per_round", f"must be > 0, got {self.clients_per_round}")
        require(self.per_client_layer_count > 0, "per_client_layer_count", f"must be > 0, got {self.per_client_layer_count}")
        require(self.num_perturbations > 0, "num_perturbations", f"must be > 0, got {self.num_perturbations}")
        require(self.local_steps is None or self.local_steps > 0, "local_steps", f"must be > 0 or null, got {self.local_steps}")
        require(self.local_epochs > 0, "local_epochs", f"must be > 0, got {self.local_epochs}")
        require(self.batch_size > 0, "batch_size", f"must be > 0, got {self.batch_size}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(self.head_lr is None or self.head_lr >= 0, "head_lr", f"must be >= 0 or null, got {self.head_lr}")
        require(self.zo_eps > 0, "zo_eps", f"must be > 0, got {self.zo_eps}")
        require(self.server_lr > 0, "server_lr", f"must be > 0, got {self.server_lr}")
        require(self.personalize_clients >= 0, "personalize_clients", f"must be >= 0 (0: off), got {self.personalize_clients}")
        require(self.personalize_epochs > 0, "personalize_epochs", f"must be > 0, got {self.personalize_epochs}")
        require(self.eval_every > 0, "eval_every", f"must be > 0, got {self.eval_every}")
        require(self.checkpoint_every >= 0, "checkpoint_every", f"must be >= 0 (0: off), got {self.checkpoint_every}")
        require(self.round_timeout > 0, "round_timeout", f"must be > 0, got {self.round_timeout}")
        require(self.time_budget_s is None or self.time_budget_s > 0, "time_budget_s",
                f"must be > 0 or null, got {self.time_budget_s}")
        require(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        require(self.min_successful_clients >= 1, "min_successful_clients", f"must be >= 1, got {self.min_successful_clients}")
        methods.validate(self)


@dataclass
class FaultConfig:
    """Fault injection, for tests and robustness studies. Each round, each sampled client
    independently (seeded by seed, round, attempt) returns NaN tensors, raises, hangs past the
    round timeout, or kills its worker process, with these probabilities."""

    nan_fraction: float = 0.0
    raise_fraction: float = 0.0
    hang_fraction: float = 0.0
    kill_fraction: float = 0.0
    # How long a hanging client sleeps before it trains; above fl.round_timeout it misses the round.
    hang_seconds: float = 30.0

    def validate(self) -> None:
        keys = ("nan_fraction", "raise_fraction", "hang_fraction", "kill_fraction")
        for key in keys:
            v = getattr(self, key)
            require(0.0 <= v <= 1.0, key, f"must be in [0, 1], got {v}")
        total = sum(getattr(self, k) for k in keys)
        require(total <= 1.0, "nan_fraction", f"the four fractions add up to {total:g}; allowed: at most 1")
        require(self.hang_seconds > 0, "hang_seconds", f"must be > 0, got {self.hang_seconds}")

    def draw(self, u: float) -> str:
        """The fault for a uniform draw u in [0, 1): '' (none), 'nan', 'raise', 'hang' or 'kill'."""
        edge = 0.0
        for name in ("nan", "raise", "hang", "kill"):
            edge += getattr(self, f"{name}_fraction")
            if u < edge:
                return name
        return ""


@dataclass
class ResourcesConfig:
    # Per simulated client (Flower's client_resources); Ray packs actors by these.
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    # CPUs for an embedded local Ray (null: all cores). Ignored when joining a cluster.
    ray_num_cpus: int | None = None

    def validate(self) -> None:
        require(self.num_cpus > 0, "num_cpus", f"must be > 0, got {self.num_cpus}")
        require(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")


@dataclass
class SpryConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    fl: FLConfig = field(default_factory=FLConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # After training, measure one Spry client step against one backprop step (fresh processes).
    memory_report: bool = True

    def validate(self) -> None:
        require(
            self.fl.clients_per_round <= self.partition.num_clients,
            "fl.clients_per_round",
            f"{self.fl.clients_per_round} clients per round but partition.num_clients is "
            f"{self.partition.num_clients}; allowed: 1 to {self.partition.num_clients}",
        )
