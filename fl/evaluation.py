"""Spry's evaluation beyond central test accuracy: per-example results, clients' own test sets,
generalized and personalized accuracy, and paired tests between two evaluations.

Pure functions of arrays and a model: no Flower or Ray.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from core.runs import atomic_write
from core.seeding import derive_seed


@torch.no_grad()
def per_example(model: torch.nn.Module, data: dict[str, torch.Tensor], batch_size: int = 128) -> dict[str, np.ndarray]:
    """Per test example: cross-entropy `loss` and `correct` (0/1), in the data's order."""
    from fl.local import _to, trim_padding

    device = next(model.parameters()).device
    losses, correct = [], []
    n = len(data["labels"])
    for i in range(0, n, batch_size):
        batch = _to(trim_padding({k: v[i : i + batch_size] for k, v in data.items()}), device)
        logits = model(batch["input_ids"], batch["attention_mask"])
        losses.append(F.cross_entropy(logits.float(), batch["labels"], reduction="none").double().cpu().numpy())
        correct.append((logits.argmax(-1) == batch["labels"]).cpu().numpy().astype(np.float64))
    return {"loss": np.concatenate(losses), "correct": np.concatenate(correct)}


def client_test_sets(
    train_labels: np.ndarray, partitions: list[np.ndarray], test_labels: np.ndarray, seed: int
) -> list[np.ndarray]:
    """Each client's own test set: the test set dealt out, class by class, in proportion to
    each client's count of that class in its training partition (largest remainders).

    The sets are disjoint, together they are the whole test set (for classes some client
    holds), and each follows its client's label distribution: with a label-skewed (Dirichlet)
    split, a client is tested on the labels it sees.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    out: list[list[int]] = [[] for _ in partitions]
    for y in np.unique(test_labels):
        counts = np.array([int((train_labels[p] == y).sum()) for p in partitions], dtype=np.float64)
        if counts.sum() == 0:
            continue
        idx = np.random.default_rng(derive_seed(seed, "client-test", int(y))).permutation(np.flatnonzero(test_labels == y))
        share = counts / counts.sum() * len(idx)
        take = np.floor(share).astype(int)
        for c in np.argsort(-(share - take), kind="stable")[: len(idx) - take.sum()]:
            take[c] += 1
        edges = np.concatenate([[0], np.cumsum(take)])
        for c in range(len(partitions)):
            out[c].extend(idx[edges[c] : edges[c + 1]].tolist())
    return [np.sort(np.asarray(o, dtype=np.int64)) for o in out]


def generalized_accuracy(correct: np.ndarray, client_tests: list[np.ndarray]) -> float:
    """The global model on every client's own test set, averaged over clients (unweighted)."""
    accs = [float(correct[idx].mean()) for idx in client_tests if len(idx)]
    return float(np.mean(accs))


def paired_change(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """after - before on the same examples: mean, standard error, t and two-sided p (paired t test)."""
    d = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    n = len(d)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    if not se > 0:
        return {"mean": mean, "se": se, "t": float("nan"), "p": 1.0 if mean == 0 else 0.0, "n": n}
    t = mean / se
    return {"mean": mean, "se": se, "t": t, "p": float(2 * stats.t.sf(abs(t), df=n - 1)), "n": n}


def save_per_example(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def load_per_example(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def per_example_path(run_path: Path, server_round: int) -> Path:
    return Path(run_path) / "per_example" / f"round_{server_round:04d}.npz"


def personalize(
    cfg, runtime, state: dict[str, torch.Tensor], client_tests: list[np.ndarray],
    assigned: dict[int, list[str]], epochs: int,
) -> dict[str, float]:
    """Personalized accuracy: each client in `assigned` trains its tensors for `epochs` local
    epochs from the global `state` with its method's own client (fl.methods.train_client),
    then is tested on its own test set. Returns the mean over these clients of personalized
    and (for the same clients) generalized accuracy, and how many clients."""
    from fl.local import batches
    from fl.methods import client_seed_parts, train_client

    personal, general = [], []
    for pid, names in sorted(assigned.items()):
        idx = client_tests[pid]
        if not len(idx):
            continue
        test = {k: v[torch.as_tensor(idx)] for k, v in runtime.test_data.items()}
        runtime.load_state(state)
        general.append(float(per_example(runtime.model, test)["correct"].mean()))
        n = len(runtime.partitions[pid])
        steps = epochs * int(np.ceil(n / cfg.fl.batch_size))
        it = batches(runtime.train_data, runtime.partitions[pid], cfg.fl.batch_size,
                     derive_seed(cfg.seed, "personalize", pid))
        trained, _, _ = train_client(cfg.fl, runtime.model, runtime.params(names), it, steps,
                                     client_seed_parts(cfg.seed, -1, pid), lr_overrides=runtime.head_lr_overrides())
        runtime.load_state(trained)
        personal.append(float(per_example(runtime.model, test)["correct"].mean()))
    runtime.load_state(state)
    return {"personalized_accuracy": float(np.mean(personal)), "generalized_accuracy_same_clients": float(np.mean(general)),
            "personalized_clients": len(personal), "personalize_epochs": epochs}
