"""Flower ClientApp: the client of Spry and its baselines (fl/methods.py). Receives every trainable
tensor and the names it is to train; returns those tensors, or with fl.uplink=seeds its per-step
scalars."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from core.seeding import derive_seed
from fl.local import batches, class_sums
from fl.memory import peak_rss_mb
from fl.methods import client_seed_parts, train_client
from fl.runtime import get_runtime

client_app = ClientApp()


def _partition_id(context: Context) -> int:
    # Flower gives simulated nodes random node ids: partitions key on partition-id.
    return int(context.node_config["partition-id"])


@client_app.query()
def query(msg: Message, context: Context) -> Message:
    """Round 0: per-class sums and counts of this client's embeddings (for prototypes)."""
    cfg_rec = msg.content["config"]
    rt = get_runtime(str(cfg_rec["config"]))
    pid = _partition_id(context)
    metrics = MetricRecord({"partition-id": pid, "num-examples": len(rt.partitions[pid])})
    content = RecordDict({"metrics": metrics})
    if bool(cfg_rec.get("prototypes", False)):
        sums, counts = class_sums(rt.model, rt.train_data, rt.partitions[pid], rt.num_labels)
        content["arrays"] = ArrayRecord({"sums": sums.float(), "counts": counts.float()})
    return Message(content=content, reply_to=msg)


def _node_tag() -> int:
    """The first 32 bits of this process's Ray node id (a MetricRecord holds numbers, not
    strings): enough for the server to count the nodes a round's clients ran on."""
    import ray

    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    return int(node[:8], 16) if node else 0


def died_before(msg: Message) -> bool:
    """Whether an injected kill already ended a worker on this message; marks it if not.

    The mark is a file in the node's temp dir, keyed by run and message id: a rerun on a
    restarted actor of the same node finds it."""
    marks = Path(tempfile.gettempdir()) / "tailor-fl-kills"
    marks.mkdir(exist_ok=True)
    mark = marks / f"{msg.metadata.run_id}-{msg.metadata.message_id or id(msg)}"
    if mark.exists():
        return True
    mark.touch()
    return False


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    t0 = time.perf_counter()
    cfg_rec: ConfigRecord = msg.content["config"]
    if str(cfg_rec.get("fault", "")) == "kill" and died_before(msg):
        # Ray reran the message on the restarted actor (max_task_retries, fl.app): it fails,
        # once, as a real crash's would, and at once, before the restarted process loads a model.
        raise RuntimeError(f"injected kill: the worker died on this message (partition {_partition_id(context)}, "
                           f"round {int(cfg_rec['server-round'])})")
    rt = get_runtime(str(cfg_rec["config"]))
    cfg = rt.cfg
    pid = _partition_id(context)
    server_round = int(cfg_rec["server-round"])
    assigned = [str(k) for k in cfg_rec["assigned"]]

    # Downlink: every trainable tensor (the client needs the whole current model);
    # never the frozen base, which this process loaded once.
    rt.load_state(msg.content["arrays"].to_torch_state_dict())
    params = rt.params(assigned)
    fault = str(cfg_rec.get("fault", ""))
    if fault == "kill":  # a worker process dying mid-round (OOM killer, preempted node)
        os._exit(1)
    if fault == "hang":  # a straggler: it trains, but after the server stopped waiting
        time.sleep(cfg.faults.hang_seconds)
    seed = int(cfg_rec["seed"])
    it = batches(rt.train_data, rt.partitions[pid], cfg.fl.batch_size, derive_seed(seed, "batches", server_round, pid))
    trained, metrics, scalars = train_client(
        cfg.fl, rt.model, params, it, rt.local_steps(pid), client_seed_parts(seed, server_round, pid),
        lr_overrides=rt.head_lr_overrides(),
    )
    if cfg.fl.uplink == "seeds":
        # [steps, K] directional derivatives: with the seed, the whole update (fl.seed_replay).
        # They are float32 values already (jvp / loss differences in float32), so nothing is lost.
        uplink = {"scalars": torch.tensor(scalars, dtype=torch.float32)}
    else:
        uplink = {k: v.cpu() for k, v in trained.items()}
    if fault == "nan":  # fault injection for tests: a diverged client
        uplink = {k: torch.full_like(v, float("nan")) for k, v in uplink.items()}
        metrics["loss"] = float("nan")
    elif fault == "raise":
        raise RuntimeError(f"injected client failure (partition {pid}, round {server_round})")
    metrics.update({"num-examples": len(rt.partitions[pid]), "partition-id": pid,
                    "client_time": time.perf_counter() - t0, "node": _node_tag(),
                    # this worker process's high-water RSS so far: what clients in flight cost (bench.fl_scale)
                    "peak_rss_mb": peak_rss_mb()})
    content = RecordDict({
        "arrays": ArrayRecord(uplink),
        "metrics": MetricRecord(metrics),
    })
    return Message(content=content, reply_to=msg)
