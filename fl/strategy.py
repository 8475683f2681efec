"""Spry's server strategy on Flower 1.42's Message API (its baselines use it too: fl/methods.py).

Flower's stock strategies send every client the same content and reject replies whose
array keys differ; Spry's clients each train a different chunk. So this strategy builds
per-client messages, averages per tensor over the clients that trained it, then applies
the server optimizer. Methods without the split assign every client every trainable tensor.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Callable

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from core.config import to_yaml
from core.runs import RunDir, progress
from core.seeding import derive_seed
from fl.aggregate import ServerOptState, aggregate_per_tensor, server_update
from fl.checkpoint import Checkpoint, check_weights, restore_metrics, save_checkpoint, should_checkpoint
from fl.config import SpryConfig
from fl.evaluation import per_example_path, save_per_example
from core.models import prototype_head
from fl.methods import METHODS, client_seed_parts, head_lr_overrides, replay_client, server_optimizer
from fl.split import assign_chunks, group_tensors

log = logging.getLogger(__name__)

# Round 0 waits for every node to start, load the model and (with prototypes) embed its data:
# fl.round_timeout, sized for one training round's stragglers, must not cut it short.
DISCOVERY_TIMEOUT_S = 600.0

EvaluateFn = Callable[[dict[str, torch.Tensor]], dict[str, float]]


class SpryStrategy(Strategy):
    def __init__(
        self,
        cfg: SpryConfig,
        trainable_names: list[str],
        evaluate_fn: EvaluateFn,
        run: RunDir | None = None,
        head_names: tuple[str, str] = ("head.weight", "head.bias"),
        resume: Checkpoint | None = None,
    ):
        self.cfg = cfg
        self.config_yaml = to_yaml(cfg)
        self.names = trainable_names
        self.method = METHODS[cfg.fl.method]
        if self.method.split:
            self.shared = [n for n in trainable_names if n in head_names] if cfg.fl.head_on_every_client else []
            split = [n for n in trainable_names if n not in self.shared]
            self.chunks = group_tensors(split, cfg.fl.per_client_layer_count) if split else []
        else:  # every client trains every tensor: one shared group, no chunks
            self.shared, self.chunks = list(trainable_names), []
        self.evaluate_fn = evaluate_fn
        self.run = run
        self.head_names = head_names
        self.opt_state = ServerOptState()
        self.node_of: dict[int, int] = {}  # partition-id -> Flower node id
        self.history: list[dict] = []
        self._round_start: dict[str, torch.Tensor] = {}  # the weights configure_train sent
        self._last_record: dict = {}
        self._attempt = 0  # retry attempt of the round in flight (fl.too_few_clients: retry)
        self.resume = resume  # continue after this checkpoint's round instead of starting afresh
        self.resumed_from: list[int] = []
        self.personalization: dict | None = None  # fl.app.run_server fills it after the last round

    # --- Flower's Strategy interface -------------------------------------------------------

    def summary(self) -> None:
        if self.method.split:
            split = f"in {len(self.chunks)} chunks" + (f" + {len(self.shared)} on every client" if self.shared else "")
        else:
            split = "all on every client"
        log.info("%s: %d trainable tensors %s; %d of %d clients per round", self.cfg.fl.method, len(self.names),
                 split, self.cfg.fl.clients_per_round, self.cfg.partition.num_clients)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._round_start = {k: v.clone() for k, v in arrays.to_torch_state_dict().items()}
        attempt = int(config.get("attempt", 0))
        self._attempt = attempt
        faults = self._faults(server_round, self.sample_clients(server_round, attempt), attempt)
        messages = []
        for pid, names in self.assigned_names(server_round, attempt).items():
            rec = ConfigRecord({
                "server-round": server_round,
                "assigned": names,
                "seed": self.cfg.seed,
                "config": self.config_yaml,
                "fault": faults.get(pid, ""),
                **{k: v for k, v in config.items()},
            })
            messages.append(Message(
                content=RecordDict({"arrays": arrays, "config": rec}),
                message_type=MessageType.TRAIN,
                dst_node_id=self.node_of[pid],
            ))
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Per-tensor average of the replies onto the weights this round sent, then the server
        optimizer. The round's starting weights are kept from configure_train: untrained
        tensors keep them, and the seed-only uplink replays from them."""
        state, record = self._aggregate(server_round, list(replies), self._round_start)
        self._last_record = record
        metrics = {k: float(v) for k, v in record.items() if isinstance(v, (int, float))}
        return ArrayRecord({k: v for k, v in state.items()}), MetricRecord(metrics)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return []  # evaluation is centralized, on the held-out test split

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None

    # --- the run ----------------------------------------------------------------------------

    def assigned_names(self, server_round: int, attempt: int = 0) -> dict[int, list[str]]:
        """Per sampled partition id, the tensors it trains this round. A function of the round
        (and retry attempt) alone: the seed-only uplink's replay needs it again when the
        replies come back."""
        sampled = self.sample_clients(server_round, attempt)
        assignment = assign_chunks(len(self.chunks), len(sampled), server_round) if self.chunks else [[]] * len(sampled)
        return {pid: [n for c in assignment[position] for n in self.chunks[c]] + self.shared
                for position, pid in enumerate(sampled)}

    def sample_clients(self, server_round: int, attempt: int = 0) -> list[int]:
        """The round's clients, by partition id: seeded by (seed, round[, retry attempt]), so runs repeat."""
        parts = (self.cfg.seed, "sample", server_round) + ((attempt,) if attempt else ())
        rng = np.random.default_rng(derive_seed(*parts))
        n, m = self.cfg.partition.num_clients, self.cfg.fl.clients_per_round
        return sorted(int(i) for i in rng.choice(n, size=m, replace=False))

    def _faults(self, server_round: int, sampled: list[int], attempt: int = 0) -> dict[int, str]:
        parts = (self.cfg.seed, "faults", server_round) + ((attempt,) if attempt else ())
        rng = np.random.default_rng(derive_seed(*parts))
        return {pid: f for pid in sampled if (f := self.cfg.faults.draw(float(rng.random())))}

    def _discover(self, grid: Grid, timeout: float, prototypes: bool) -> list[Message]:
        """Wait for every simulated node, then ask each for its partition id (and prototype sums)."""
        n = self.cfg.partition.num_clients
        deadline = time.time() + timeout
        while len(list(grid.get_node_ids())) < n:
            if time.time() > deadline:
                raise TimeoutError(f"only {len(list(grid.get_node_ids()))} of {n} client nodes connected")
            time.sleep(0.2)
        rec = ConfigRecord({"config": self.config_yaml, "prototypes": prototypes})
        msgs = [Message(content=RecordDict({"config": rec}), message_type=MessageType.QUERY, dst_node_id=node)
                for node in sorted(grid.get_node_ids())]
        replies = list(grid.send_and_receive(msgs, timeout=timeout))
        errors = [r.error.reason for r in replies if r.has_error()]
        if errors:
            raise RuntimeError(f"round 0 failed on {len(errors)} client(s): {errors[0]}")
        for r in replies:
            self.node_of[int(r.content["metrics"]["partition-id"])] = r.metadata.src_node_id
        missing = set(range(n)) - set(self.node_of)
        if missing:
            raise RuntimeError(f"no reply in round 0 from partitions {sorted(missing)}")
        return replies

    def _prototype_head(self, replies: list[Message], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum every client's per-class sums and counts; the head becomes the normalized means."""
        ordered = sorted(replies, key=lambda r: int(r.content["metrics"]["partition-id"]))
        sums = sum(r.content["arrays"]["sums"].numpy().astype(np.float64) for r in ordered)
        counts = sum(r.content["arrays"]["counts"].numpy().astype(np.float64) for r in ordered)
        weight, bias = prototype_head(torch.from_numpy(sums), torch.from_numpy(counts), self.cfg.fl.head_scale)
        w_name, b_name = self.head_names
        state = dict(state)
        state[w_name] = weight.to(state[w_name].dtype)
        state[b_name] = bias.to(state[b_name].dtype)
        return state

    def _aggregate(
        self, server_round: int, replies: list[Message], state: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict]:
        fl = self.cfg.fl
        ok, failed, rejected = [], 0, 0
        failed_ids: list[int] = []
        pid_of = {node: pid for pid, node in self.node_of.items()}
        bytes_up = 0
        for r in replies:
            if r.has_error():
                failed += 1
                failed_ids.append(pid_of.get(r.metadata.src_node_id, -1))
                log.warning("round %d: a client failed: %s", server_round, r.error.reason.splitlines()[-1][:200])
                continue
            arrays = r.content["arrays"]
            bytes_up += arrays.count_bytes()  # what travelled: tensors, or [steps, K] scalars
            metrics = r.content["metrics"]
            pid = int(metrics["partition-id"])
            received = arrays.to_torch_state_dict()
            finite = math.isfinite(float(metrics["loss"])) and all(torch.isfinite(t).all() for t in received.values())
            if not finite:
                rejected += 1
                log.warning("round %d: rejected partition %d (NaN/inf loss or update)", server_round, pid)
                continue
            tensors = self._replay(server_round, pid, received["scalars"], state) if fl.uplink == "seeds" else received
            ok.append((pid, tensors, metrics))
        ok.sort(key=lambda x: x[0])  # a fixed order makes the float sums reproducible
        record: dict = {
            "clients": len(ok), "failed": failed, "rejected": rejected, "bytes_up": bytes_up,
            # which partitions: a fault is then traced to its message, not only counted
            "succeeded_ids": [pid for pid, _, _ in ok], "failed_ids": sorted(failed_ids),
        }
        if len(ok) < fl.min_successful_clients:
            record["skipped"] = True
            log.warning("round %d skipped: %d successful clients < min_successful_clients=%d",
                        server_round, len(ok), fl.min_successful_clients)
            return state, record
        updates = [(tensors, float(m["num-examples"])) for _, tensors, m in ok]
        averaged, counts = aggregate_per_tensor(state, updates)
        trained = {k for k, c in counts.items() if c > 0}
        new_state = server_update(
            server_optimizer(fl), state, averaged, self.opt_state,
            lr=fl.server_lr, beta1=fl.beta1, beta2=fl.beta2, tau=fl.tau, trained=trained,
        )
        n_total = sum(float(m["num-examples"]) for _, _, m in ok)
        record.update({
            "train_loss": sum(float(m["loss"]) * float(m["num-examples"]) for _, _, m in ok) / n_total,
            "client_compute_s": sum(float(m["train_time"]) for _, _, m in ok),
            "tensors_trained": len(trained),
            "client_nodes": len({int(m["node"]) for _, _, m in ok if "node" in m}),
        })
        rss = [float(m["peak_rss_mb"]) for _, _, m in ok if "peak_rss_mb" in m]
        if rss:  # the largest worker process so far (its high-water mark), among this round's clients
            record["client_peak_rss_mb"] = max(rss)
        return new_state, record

    def _replay(
        self, server_round: int, pid: int, scalars: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Seed-only uplink: the client's trained tensors, rebuilt from the round's starting
        `state` (what this round sent), its names, its seeds and its [steps, K] scalars."""
        names = self.assigned_names(server_round, self._attempt)[pid]
        return replay_client(self.cfg.fl, {k: state[k] for k in names}, scalars.tolist(),
                             client_seed_parts(self.cfg.seed, server_round, pid),
                             head_lr_overrides(self.cfg.fl, self.names))

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn=None,
    ) -> Result:
        """Round 0 (node discovery, prototype head, evaluation), then rounds 1..num_rounds.

        With a run directory, the server state is checkpointed every fl.checkpoint_every rounds
        (fl.checkpoint). With `resume`, round 0 only rediscovers the nodes, and rounds
        resume.round+1..num_rounds continue from the checkpoint's weights, moments and history.
        """
        self.summary()
        fl = self.cfg.fl
        train_config = train_config or ConfigRecord()
        state = {k: v.clone() for k, v in initial_arrays.to_torch_state_dict().items()}
        result = Result()

        t0 = time.perf_counter()
        if self.resume is None:
            replies = self._discover(grid, max(timeout, DISCOVERY_TIMEOUT_S), prototypes=fl.prototype_head)
            if fl.prototype_head:
                state = self._prototype_head(replies, state)
            row = {"round": 0, "wall_s": time.perf_counter() - t0, **self._evaluate(0, state)}
            self._log(row, result)
            self._checkpoint(0, num_rounds, state)
            first = 1
        else:
            # Node ids are new in every run: ask again, but without prototypes (the head is in
            # the checkpoint, whatever rounds trained it since).
            self._discover(grid, max(timeout, DISCOVERY_TIMEOUT_S), prototypes=False)
            state = self._restore(self.resume, state, result)
            first = self.resume.round + 1
            # wall_s continues from the checkpoint's: the time between crash and resume is not in it.
            t0 -= float(self.history[-1].get("wall_s", 0.0))

        bar = progress(range(first, num_rounds + 1), total=num_rounds, initial=first - 1, desc="spry rounds")
        for server_round in bar:
            t_round = time.perf_counter()
            bytes_down, timed_out, failed, rejected = 0, 0, 0, 0
            timed_out_ids: list[int] = []
            for attempt in range(fl.max_retries + 1 if fl.too_few_clients == "retry" else 1):
                arrays = ArrayRecord({k: v for k, v in state.items()})
                config = ConfigRecord({**train_config, "attempt": attempt})
                messages = list(self.configure_train(server_round, arrays, config, grid))
                bytes_down += sum(m.content["arrays"].count_bytes() for m in messages)
                replies = list(grid.send_and_receive(messages, timeout=timeout))
                timed_out += len(messages) - len(replies)  # stragglers past fl.round_timeout
                answered = {r.metadata.src_node_id for r in replies}
                timed_out_ids += [pid for pid, node in self.node_of.items()
                                  if node in {m.metadata.dst_node_id for m in messages} and node not in answered]
                agg_arrays, _ = self.aggregate_train(server_round, replies)
                failed += self._last_record["failed"]
                rejected += self._last_record["rejected"]
                if not self._last_record.get("skipped"):
                    break
                if attempt < fl.max_retries and fl.too_few_clients == "retry":
                    log.warning("round %d: retrying with a fresh sample of clients (attempt %d)",
                                server_round, attempt + 2)
            state, record = agg_arrays.to_torch_state_dict(), self._last_record
            record.update({"round": server_round, "bytes_down": bytes_down, "timed_out": timed_out,
                           "timed_out_ids": sorted(timed_out_ids),
                           "failed": failed, "rejected": rejected,
                           "attempts": attempt + 1, "round_s": time.perf_counter() - t_round})
            train_s = float(self.history[-1].get("train_wall_s", 0.0)) + record["round_s"]
            out_of_time = fl.time_budget_s is not None and train_s >= fl.time_budget_s
            if server_round % fl.eval_every == 0 or server_round == num_rounds or out_of_time:
                record.update(self._evaluate(server_round, state))
            record["train_wall_s"] = train_s  # training rounds only: the axis of time-to-accuracy
            record["wall_s"] = time.perf_counter() - t0
            self._log(record, result)
            self._checkpoint(server_round, num_rounds, state)
            if "accuracy" in record and hasattr(bar, "set_postfix"):
                bar.set_postfix(acc=f"{record['accuracy']:.3f}")
            if out_of_time:
                log.info("time budget of %.0f s of training reached after round %d", fl.time_budget_s, server_round)
                break
        result.arrays = ArrayRecord({k: v for k, v in state.items()})
        self.final_state = state
        return result

    def _evaluate(self, server_round: int, state: dict[str, torch.Tensor]) -> dict:
        """evaluate_fn's numbers; its per-example arrays (the paired tests' input) go to
        <run dir>/per_example/round_NNNN.npz, not into the metrics."""
        out = dict(self.evaluate_fn(state))
        arrays = out.pop("per_example", None)
        if arrays is not None and self.run is not None:
            save_per_example(per_example_path(self.run.path, server_round), arrays)
        return out

    def _restore(self, ckpt: Checkpoint, state: dict[str, torch.Tensor], result: Result) -> dict[str, torch.Tensor]:
        """Take weights, server-optimizer moments and metrics history from `ckpt`."""
        check_weights(ckpt, state)
        self.opt_state = ServerOptState(m={k: v.clone() for k, v in ckpt.opt_state.m.items()},
                                        v={k: v.clone() for k, v in ckpt.opt_state.v.items()})
        self.resumed_from = [*ckpt.resumed_from, ckpt.round]
        if self.run is not None:
            # Rows of rounds after the checkpoint, logged before the crash, would appear twice.
            restore_metrics(self.run.file("metrics.jsonl"), ckpt.history)
        for row in ckpt.history:
            self._log(dict(row), result, write=False)
        log.info("resuming after round %d (checkpointed)", ckpt.round)
        return {k: ckpt.weights[k].clone() for k in state}

    def _checkpoint(self, server_round: int, num_rounds: int, state: dict[str, torch.Tensor]) -> None:
        if self.run is None or not should_checkpoint(server_round, num_rounds, self.cfg.fl.checkpoint_every):
            return
        save_checkpoint(self.run.file("checkpoints"), Checkpoint(
            server_round, state, self.opt_state, self.history, self.config_yaml, self.resumed_from,
        ))

    def _log(self, row: dict, result: Result, write: bool = True) -> None:
        self.history.append(row)
        if self.run is not None and write:
            self.run.log_metrics(row)
        metrics = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "accuracy" in row:
            result.evaluate_metrics_serverapp[row["round"]] = MetricRecord(metrics)
        if row["round"] > 0:
            result.train_metrics_clientapp[row["round"]] = MetricRecord(metrics)
        if not write:
            return  # a restored row: logged when its round ran
        parts = [f"round {row['round']:>3}"]
        for key, fmt in (("train_loss", "{:.4f}"), ("accuracy", "{:.4f}"), ("loss", "{:.4f}"),
                         ("clients", "{}"), ("failed", "{}"), ("rejected", "{}"), ("round_s", "{:.1f}s")):
            if key in row:
                parts.append(f"{key}=" + fmt.format(row[key]))
        log.info("  ".join(parts))
