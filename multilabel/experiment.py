"""One seed of the comparison, without Ray: the baselines (BCE + 0.5, a global and per-label
thresholds tuned on dev, BCE with pos_weight, focal loss) and the meta-learner's final classifier
and prediction. Every method uses the same split, features and classifier initialisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.seeding import derive_seed
from multilabel.classifier import predict_proba, train_classifier
from multilabel.config import MultilabelJobConfig
from multilabel.data import Split, make_split
from multilabel.features import build_features
from multilabel.losses import focal_loss, pos_weight_bce, pos_weights, weighted_bce
from multilabel.metrics import summarize
from multilabel.policy import MetaLearner
from multilabel.thresholds import threshold_grid, tune_global_threshold, tune_label_thresholds


@dataclass
class Prepared:
    split: Split
    x: dict[str, np.ndarray]


def prepare(job: MultilabelJobConfig) -> Prepared:
    split = make_split(job.data)
    return Prepared(split, build_features(split.texts, job.features))


def _result(prep: Prepared, job: MultilabelJobConfig, probs: dict[str, np.ndarray], thresholds, weights=None) -> dict:
    s = prep.split
    test = summarize(s.y["test"], probs["test"], thresholds, s.train_counts, job.rare_fraction)
    dev = summarize(s.y["dev"], probs["dev"], thresholds, s.train_counts, job.rare_fraction)
    return {**test, "dev_micro_f1": dev["micro_f1"], "dev_macro_f1": dev["macro_f1"],
            "thresholds": np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (s.num_labels,)).tolist(),
            "weights": None if weights is None else np.asarray(weights, dtype=np.float64).tolist()}


def _probs(prep: Prepared, job: MultilabelJobConfig, loss_fn, seed: int) -> dict[str, np.ndarray]:
    s = prep.split
    model = train_classifier(prep.x["train"], s.y["train"], loss_fn, job.classifier, derive_seed(seed, "classifier"))
    return {k: predict_proba(model, prep.x[k]) for k in ("dev", "test")}


def run_baselines(prep: Prepared, job: MultilabelJobConfig, seed: int) -> dict[str, dict]:
    b, s = job.baselines, prep.split
    out: dict[str, dict] = {}
    grid = threshold_grid(b.threshold_points)
    if {"bce_0.5", "global_threshold", "per_label_thresholds"} & set(b.methods):
        probs = _probs(prep, job, weighted_bce, seed)
        if "bce_0.5" in b.methods:
            out["bce_0.5"] = _result(prep, job, probs, 0.5)
        if "global_threshold" in b.methods:
            out["global_threshold"] = _result(prep, job, probs, tune_global_threshold(probs["dev"], s.y["dev"], grid))
        if "per_label_thresholds" in b.methods:
            out["per_label_thresholds"] = _result(prep, job, probs,
                                                  tune_label_thresholds(probs["dev"], s.y["dev"], grid))
    if "pos_weight" in b.methods:
        pw = pos_weights(torch.as_tensor(s.y["train"]), b.pos_weight_cap)
        out["pos_weight"] = _result(prep, job, _probs(prep, job, lambda lo, yy: pos_weight_bce(lo, yy, pw.to(lo.device)),
                                                      seed), 0.5)
    if "focal" in b.methods:
        out["focal"] = _result(prep, job, _probs(prep, job, lambda lo, yy: focal_loss(lo, yy, b.focal_gamma,
                                                                                      b.focal_alpha), seed), 0.5)
    return out


def run_meta_final(prep: Prepared, job: MultilabelJobConfig, policy: MetaLearner, seed: int) -> dict:
    """The learned policy's mean: the classifier trained with its weights, predicting with its thresholds."""
    w, tau = policy.policy()
    wt = torch.as_tensor(w, dtype=torch.float32)
    probs = _probs(prep, job, lambda lo, yy: weighted_bce(lo, yy, wt.to(lo.device)), seed)
    return _result(prep, job, probs, tau, w)


__all__ = ["Prepared", "prepare", "run_baselines", "run_meta_final"]
