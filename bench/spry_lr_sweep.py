"""The search behind configs/spry/laptop.yaml: Spry (or a baseline) rounds replayed in one
process (no Flower, no Ray) from fl's own functions, for speed.

    python -m bench.spry_lr_sweep --set fl.lr=0.01 --head shared --head-lr 0.001
    python -m bench.spry_lr_sweep --set data.name=tweets --set adapter.r=8 \
        --set "adapter.target_modules=[query,key,value,dense]" --set fl.method=fedavg --budget-s 480

--head: `split` (the head is a chunk like any LoRA pair), `shared` (trained on every sampled
client, with its own perturbation: fl.head_jvp), `frozen` (the prototype head is kept);
--no-prototype starts from the random head. Any config key can be set (dataset, LoRA rank and
targets, fl.method for the backprop reference). Stops after fl.rounds or --budget-s seconds
of training. Prints accuracy/loss every --every rounds and, at the end, the paired change
of test loss and accuracy from round 0 over the same test examples (mean, se, p). The
minibatch order differs from the Flower job's (seeded by another role), so the numbers are
the sweep's, not the demo's.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from core.config import load
from core.seeding import derive_seed
from fl.aggregate import ServerOptState, aggregate_per_tensor, server_update
from fl.config import SpryConfig
from core.models import prototype_head
from fl.evaluation import paired_change, per_example
from fl.local import batches, class_sums
from fl.methods import METHODS, head_lr_overrides, server_optimizer, train_client
from fl.runtime import Runtime
from fl.split import assign_chunks, group_tensors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--head", choices=["split", "shared", "frozen"], default="split")
    ap.add_argument("--head-lr", type=float, default=None)
    ap.add_argument("--no-prototype", action="store_true", help="keep the random head (no prototypes)")
    ap.add_argument("--budget-s", type=float, default=None, help="stop after this many seconds of training")
    ap.add_argument("--every", type=int, default=10, help="evaluate every this many rounds")
    args = ap.parse_args()
    cfg = load(SpryConfig, "configs/spry/laptop.yaml",
               ["fl.rounds=30", "data.max_test=1000", "fl.time_budget_s=null", *args.set])
    rt = Runtime(cfg)
    state = rt.state()
    sums = counts = 0
    for pid in range(cfg.partition.num_clients):
        s, c = class_sums(rt.model, rt.train_data, rt.partitions[pid], rt.num_labels)
        sums, counts = sums + s, counts + c
    if not args.no_prototype:
        state["head.weight"], state["head.bias"] = prototype_head(sums, counts, cfg.fl.head_scale)

    head = ["head.weight", "head.bias"]
    split = METHODS[cfg.fl.method].split
    shared = head if args.head == "shared" or not split and args.head != "frozen" else []
    split_names = [n for n in rt.trainable_names if n not in head] + (head if args.head == "split" else [])
    chunks = group_tensors(split_names, cfg.fl.per_client_layer_count) if split else []
    if not split:  # every client trains every tensor (the head unless frozen)
        shared = [n for n in rt.trainable_names if n not in head] + shared
    head_lr = args.head_lr if args.head_lr is not None else (cfg.fl.head_lr or cfg.fl.lr)
    fl = replace(cfg.fl, head_lr=head_lr, head_on_every_client=args.head == "shared")
    opt_state = ServerOptState()

    def ev(st):
        rt.load_state(st)
        return per_example(rt.model, rt.test_data)

    out = [(0, ev(state))]
    train_s = 0.0
    for r in range(1, cfg.fl.rounds + 1):
        t0 = time.perf_counter()
        rng = np.random.default_rng(derive_seed(cfg.seed, "sample", r))
        sampled = sorted(rng.choice(cfg.partition.num_clients, cfg.fl.clients_per_round, replace=False))
        assignment = assign_chunks(len(chunks), len(sampled), r) if chunks else [[]] * len(sampled)
        updates = []
        for pos, pid in enumerate(sampled):
            names = [n for c in assignment[pos] for n in chunks[c]] + shared
            rt.load_state(state)
            it = batches(rt.train_data, rt.partitions[pid], cfg.fl.batch_size, derive_seed(0, "b", r, pid))
            trained, _, _ = train_client(fl, rt.model, rt.params(names), it, cfg.fl.local_steps or 1,
                                         (0, "spry", r, pid), lr_overrides=head_lr_overrides(fl, names))
            updates.append((trained, float(len(rt.partitions[pid]))))
        avg, cnt = aggregate_per_tensor(state, updates)
        state = server_update(server_optimizer(fl), state, avg, opt_state, lr=fl.server_lr, beta1=fl.beta1,
                              beta2=fl.beta2, tau=fl.tau, trained={k for k, v in cnt.items() if v})
        train_s += time.perf_counter() - t0
        out_of_time = args.budget_s is not None and train_s >= args.budget_s
        if r % args.every == 0 or r == cfg.fl.rounds or out_of_time:
            out.append((r, ev(state)))
            m = out[-1][1]
            print(f"  round {r}: accuracy {m['correct'].mean():.4f} loss {m['loss'].mean():.4f} "
                  f"({train_s:.0f} s of training)", flush=True)
        if out_of_time:
            break
    loss = paired_change(out[0][1]["loss"], out[-1][1]["loss"])
    acc = paired_change(out[0][1]["correct"], out[-1][1]["correct"])
    print(" ".join(args.set), f"head={args.head} head_lr={head_lr} prototype={not args.no_prototype}",
          f"rounds={out[-1][0]} train_s={train_s:.0f}",
          f"accuracy {out[0][1]['correct'].mean():.4f}->{out[-1][1]['correct'].mean():.4f}",
          f"({100 * acc['mean']:+.2f} ± {100 * acc['se']:.2f} points, p={acc['p']:.2g})",
          f"loss {out[0][1]['loss'].mean():.4f}->{out[-1][1]['loss'].mean():.4f}",
          f"({loss['mean']:+.4f} ± {loss['se']:.4f}, p={loss['p']:.2g})", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
