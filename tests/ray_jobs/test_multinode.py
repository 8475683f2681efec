"""Jobs on a multi-node Ray cluster, simulated on one machine (ray.cluster_utils.Cluster: a head
without CPUs plus two worker nodes). Each case runs in its own process, apart from the session's Ray."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import RAY

REPO = Path(__file__).resolve().parents[2]
# Serialised with the other Ray tests: a three-node cluster on two cores is load enough.
pytestmark = RAY


def _run(case: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.ray_jobs.multinode_script", case, str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_curation_spreads_over_both_worker_nodes_and_survives_losing_one(tmp_path):
    r = _run("curate", tmp_path)
    assert r["rc"] == 0
    assert sorted(set(r["placement"])) == r["worker_nodes"], "the shard workers are not spread over both nodes"
    assert r["removed"] in r["worker_nodes"] and r["finished_before_removal"] is False
    survivor = next(n for n in r["worker_nodes"] if n != r["removed"])
    assert r["nodes_at_end"] == [survivor, survivor], "the lost node's worker did not restart on the other"
    assert r["same_selection"], "losing a node changed the curated selection"
    assert r["selected"] == 100


def test_spry_clients_run_on_both_worker_nodes(tmp_path):
    r = _run("spry", tmp_path)
    assert r["rc"] == 0 and r["summary"]
    assert r["rounds"] == 3
    assert r["client_nodes"] == [2, 2, 2], "each round's 4 clients should use both nodes' actors"
    assert 0.0 <= r["final_accuracy"] <= 1.0
