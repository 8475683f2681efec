"""Run by test_distributed.py in its own process: a two-node `ray.cluster_utils.Cluster` loses
the node holding some shard workers mid-run; they restart on the head and the k-means result
equals the single-process one. Prints OK."""

import torch

import ray
from ray.cluster_utils import Cluster

from core.seeding import generator
from curation.distributed import ShardedPoints
from curation.kmeans import kmeans, lloyd_step


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3})
    node = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        x = torch.randn(3000, 8, generator=generator("cpu", "node-loss"), dtype=torch.float64)
        init = x[:12].clone()
        ref = kmeans(x, 12, init=init, dtype="float64", iters=12, tol=0.0)
        with ShardedPoints(x.numpy(), 3, dtype="float64", num_cpus=1) as pts:
            head = cluster.head_node.node_id
            moved = [i["index"] for i in pts.call("info") if i["node"] != head]
            assert moved, "SPREAD placed no worker on the second node"
            version, stats = pts.stats(init)
            c = init
            for it in range(12):
                if it == 4:
                    cluster.remove_node(node)
                c = lloyd_step(c, [stats])
                version, stats = pts.stats(c)
            after = pts.call("info")
        assert all(i["node"] == head for i in after), after
        torch.testing.assert_close(c, ref.centroids, rtol=0, atol=1e-10)
        print(f"OK: workers {moved} moved to the head node")
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
