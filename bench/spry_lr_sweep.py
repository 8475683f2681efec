"""The sweep behind configs/spry/laptop.yaml's learning rates: Spry rounds replayed in one
process (no Flower, no Ray) from fl's own functions, for speed; 1,000 test reviews.

    .venv/bin/python -m bench.spry_lr_sweep --set fl.lr=0.01 --head shared --head-lr 0.001

--head: `split` (the head is a chunk like any LoRA pair), `shared` (trained on every sampled
client), `frozen` (the prototype head is kept). Prints accuracy/loss every 10 rounds. The
minibatch order differs from the Flower job's (seeded by another role), so the numbers are
the sweep's, not the demo's. One setting takes about 7 minutes on one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from core.config import load
from core.seeding import derive_seed
from fl.aggregate import ServerOptState, aggregate_per_tensor, server_update
from fl.config import SpryConfig
from core.models import prototype_head
from fl.local import batches, class_sums, evaluate, spry_train
from fl.runtime import Runtime
from fl.split import assign_chunks, group_tensors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--head", choices=["split", "shared", "frozen"], default="split")
    ap.add_argument("--head-lr", type=float, default=None)
    args = ap.parse_args()
    cfg = load(SpryConfig, "configs/spry/laptop.yaml", ["fl.rounds=30", "data.max_test=1000", *args.set])
    rt = Runtime(cfg)
    state = rt.state()
    sums = counts = 0
    for pid in range(cfg.partition.num_clients):
        s, c = class_sums(rt.model, rt.train_data, rt.partitions[pid], rt.num_labels)
        sums, counts = sums + s, counts + c
    state["head.weight"], state["head.bias"] = prototype_head(sums, counts, cfg.fl.head_scale)

    head = ["head.weight", "head.bias"]
    split_names = rt.trainable_names if args.head == "split" else [n for n in rt.trainable_names if n not in head]
    shared = head if args.head == "shared" else []
    chunks = group_tensors(split_names, cfg.fl.per_client_layer_count)
    head_lr = args.head_lr if args.head_lr is not None else cfg.fl.lr
    opt_state = ServerOptState()

    def ev(st):
        rt.load_state(st)
        return evaluate(rt.model, rt.test_data)

    out = [(0, ev(state))]
    t0 = time.time()
    for r in range(1, cfg.fl.rounds + 1):
        rng = np.random.default_rng(derive_seed(cfg.seed, "sample", r))
        sampled = sorted(rng.choice(cfg.partition.num_clients, cfg.fl.clients_per_round, replace=False))
        assignment = assign_chunks(len(chunks), len(sampled), r)
        updates = []
        for pos, pid in enumerate(sampled):
            names = [n for c in assignment[pos] for n in chunks[c]] + shared
            rt.load_state(state)
            it = batches(rt.train_data, rt.partitions[pid], cfg.fl.batch_size, derive_seed(0, "b", r, pid))
            trained, _, _ = spry_train(rt.model, rt.params(names), it, cfg.fl.local_steps, cfg.fl.num_perturbations,
                                       cfg.fl.optimizer, cfg.fl.lr, 0.0, (0, "spry", r, pid),
                                       lr_overrides={n: head_lr for n in head})
            updates.append((trained, float(len(rt.partitions[pid]))))
        avg, cnt = aggregate_per_tensor(state, updates)
        state = server_update("fedavg", state, avg, opt_state, lr=1.0, trained={k for k, v in cnt.items() if v})
        if r % 10 == 0:
            out.append((r, ev(state)))
    print(" ".join(args.set), f"head={args.head} head_lr={head_lr}", f"{time.time() - t0:.0f}s",
          " ".join(f"r{r}:{m['accuracy']:.4f}/{m['loss']:.4f}" for r, m in out), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
