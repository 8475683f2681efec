"""Run by test_multinode.py in a process of its own (a Ray cluster apart from the test session's):
a head with no CPUs plus two 2-CPU worker nodes from `ray.cluster_utils.Cluster`, and a tailor job
joining it as a submitted job would (RAY_ADDRESS).

    python -m tests.ray_jobs.multinode_script curate OUT   # shards on both nodes; one node removed mid-run
    python -m tests.ray_jobs.multinode_script spry OUT     # one client actor per node

Prints a JSON line of what it saw, for the test to check.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

CURATE = ["--config", "configs/curation/tiny.yaml", "--set", "workers.num_workers=2", "--set", "workers.num_cpus=1"]


def _run_dir(root: Path) -> Path:
    (path,) = [p for p in root.iterdir() if p.is_dir()]
    return path


def _selected(run: Path) -> list[int]:
    return [json.loads(line)["id"] for line in (run / "selected.jsonl").read_text().splitlines()]


def curate_case(cluster: Cluster, nodes: list, out: Path) -> dict:
    from ray_jobs import curate

    assert curate.main([*CURATE, "--set", f"run.root={out / 'whole'}"]) == 0
    reference = _run_dir(out / "whole" / "curate")

    # The same job again; once its shard workers are placed, the node holding worker 0 goes.
    seen: dict = {}

    def remove_a_node() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            found = list((out / "cut" / "curate").glob("*/workers.json")) if (out / "cut" / "curate").is_dir() else []
            if found:
                placement = json.loads(found[0].read_text())
                seen["placement"] = [w["node"] for w in placement]
                victim = next(n for n in nodes if n.node_id == placement[0]["node"])
                seen["finished_before_removal"] = (found[0].parent / "summary.md").exists()
                cluster.remove_node(victim)
                seen["removed"] = victim.node_id
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=remove_a_node, daemon=True)
    watcher.start()
    rc = curate.main([*CURATE, "--set", f"run.root={out / 'cut'}"])
    watcher.join(timeout=60)
    cut = _run_dir(out / "cut" / "curate")
    metrics = json.loads((cut / "metrics.json").read_text())
    return {
        "rc": rc,
        "worker_nodes": sorted(n.node_id for n in nodes),
        "placement": seen.get("placement"),
        "removed": seen.get("removed"),
        "finished_before_removal": seen.get("finished_before_removal"),
        "nodes_at_end": [m["node"] for m in metrics["worker_memory"]],
        "same_selection": _selected(reference) == _selected(cut),
        "selected": len(_selected(cut)),
    }


def spry_case(cluster: Cluster, nodes: list, out: Path) -> dict:
    from ray_jobs import spry

    # 2 CPUs per client on 2-CPU nodes: Flower's pool gets one actor per node.
    rc = spry.main(["--config", "configs/spry/tiny.yaml", "--set", "resources.num_cpus=2",
                    "--set", f"run.root={out}"])
    run = _run_dir(out / "spry")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "client_nodes" in r]
    return {"rc": rc, "client_nodes": [r["client_nodes"] for r in train], "rounds": len(train),
            "final_accuracy": next(r["accuracy"] for r in reversed(rows) if "accuracy" in r),
            "summary": (run / "summary.md").is_file()}


def main(case: str, out: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    os.environ["RAY_ADDRESS"] = cluster.address  # what `ray job submit` gives a job
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        result = {"curate": curate_case, "spry": spry_case}[case](cluster, nodes, Path(out))
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
