"""The few-shot ReFusion experiment: config, data with cached neighbours, and one arm's run.

An arm is what a table row compares: "none" (no retrieval), "concat" (the retrieved sentences
appended to the input), "reranker" / "ordered_mask" (that candidate at every key/value),
"refusion" (the bi-level search, then fine-tuning with the chosen candidates),
"refusion_frozen" (ReFusion as released: alpha frozen at its random init, so the "search" keeps
that init's argmax) and "tuned_choices" (the per-module candidates given by Ray Tune's search
algorithm).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from core.config import require
from core.data import DataConfig, TextDataset, few_shot, load_splits
from core.models import ModelConfig
from core.runs import RunConfig
from retrieval.corpus import TRAIN_SPLIT, Corpus, CorpusConfig, build_corpus
from retrieval.index import fingerprint, load_neighbours, save_neighbours, search
from retrieval.model import Batchable, RetrievalClassifier, concatenated, encode, tokenizer_for
from retrieval.train import FitConfig, accuracy, calibrate_gains, init_head, train_arm

log = logging.getLogger("tailor.retrieval")

ARMS = ("none", "concat", "reranker", "ordered_mask", "refusion", "refusion_frozen", "tuned_choices")
# The integrator's mode per arm ("none" wraps nothing in effect: no retrievals reach it).
ARM_CHOICE = {"none": "none", "concat": "none", "reranker": "reranker", "ordered_mask": "ordered_mask",
              "refusion": "search", "refusion_frozen": "search", "tuned_choices": "none"}
SEARCHED = ("refusion", "refusion_frozen")


@dataclass
class TuneConfig:
    learning_rates: list[float] = field(default_factory=lambda: [3e-5])  # grid, picked per arm on dev accuracy
    choice_samples: int = 4  # per seed, for the tuned_choices arm (Tune's search algorithm)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    def validate(self) -> None:
        require(len(self.learning_rates) > 0, "learning_rates", "name at least one learning rate")
        require(self.choice_samples >= 1, "choice_samples", f"must be >= 1, got {self.choice_samples}")


@dataclass
class RefusionConfig:
    seeds: list[int] = field(default_factory=lambda: [13, 21, 42, 87, 100])  # LM-BFF's
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="minilm", max_length=64))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="rotten_tomatoes", max_test=500))
    per_class: int = 16  # K examples per class for train, and again for dev
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    k: int = 16
    concat_max_length: int = 256
    arms: list[Literal["none", "concat", "reranker", "ordered_mask", "refusion", "refusion_frozen", "tuned_choices"]] = field(
        default_factory=lambda: list(ARMS))
    fit: FitConfig = field(default_factory=FitConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    run: RunConfig = field(default_factory=RunConfig)
    latency_rounds: int = 5  # every arm timed once per round, in turns
    ray_num_cpus: int | None = None

    def validate(self) -> None:
        require(len(self.seeds) > 0, "seeds", "name at least one seed")
        require(self.latency_rounds >= 1, "latency_rounds", f"must be >= 1, got {self.latency_rounds}")
        require(self.k >= 1, "k", f"must be >= 1, got {self.k}")
        require(self.per_class >= 1, "per_class", f"must be >= 1, got {self.per_class}")


@dataclass
class Prepared:
    """Everything the trials share: texts, labels and neighbours (ids into the corpus)."""

    train_full: TextDataset  # the split the few-shot examples are drawn from, per seed
    train_pool: TextDataset  # the examples some seed draws: the ones with neighbours
    test: TextDataset
    train_neighbours: np.ndarray  # per train_pool example, k corpus ids
    test_neighbours: np.ndarray
    corpus_embeddings: np.ndarray
    corpus_sentences: list[str]


def neighbours_for(texts: list[str], corpus: Corpus, cfg: RefusionConfig, cache: Path) -> np.ndarray:
    """The k nearest corpus sentences of each text, computed once and cached with a fingerprint."""
    require(cfg.k <= corpus.index.ntotal, "k", f"k={cfg.k} is above the corpus size {corpus.index.ntotal}")
    fp = fingerprint(texts, corpus=corpus.fingerprint, k=cfg.k, encoder=cfg.corpus.encoder)
    if cache.is_file():
        return load_neighbours(cache, fp, len(texts), cfg.k)
    from core.encoders import Embedder

    q = Embedder(cfg.corpus.encoder, cfg.corpus.max_length).embed_all(texts, 128)
    ids = search(corpus.index, q, cfg.k)[1]
    save_neighbours(cache, ids, fp)
    return ids


def _few_shot_texts(cfg: RefusionConfig, train: TextDataset) -> set[str]:
    return {t for seed in cfg.seeds for part in few_shot(train, cfg.per_class, seed) for t in part.texts}


def corpus_pools(cfg: RefusionConfig, train: TextDataset, test: TextDataset,
                 extra: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The texts of the TRAIN_SPLIT corpus source: the training split without labels, without the
    examples any seed labels (a training example would retrieve itself, a test one cannot) and
    without any text that is also a test text. `extra` names more pools a caller owns (e.g. a
    curated pool, by ray_jobs.specialize), filtered the same way."""
    drop = _few_shot_texts(cfg, train) | set(test.texts)
    pools = {TRAIN_SPLIT: train.texts, **(extra or {})}
    return {name: [t for t in texts if t not in drop] for name, texts in pools.items()}


def prepare(cfg: RefusionConfig, cache_dir: Path, extra_pools: dict[str, list[str]] | None = None) -> Prepared:
    train, test = load_splits(cfg.data)
    corpus = build_corpus(cfg.corpus, corpus_pools(cfg, train, test, extra_pools))
    # only the examples some seed's few-shot split uses need neighbours
    used_set = _few_shot_texts(cfg, train)
    pool_idx = [i for i, t in enumerate(train.texts) if t in used_set]
    pool = TextDataset([train.texts[i] for i in pool_idx], train.labels[pool_idx], train.label_names,
                       train.fingerprint + "-fewshot")
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Prepared(train, pool, test, neighbours_for(pool.texts, corpus, cfg, cache_dir / "train_neighbours.npz"),
                    neighbours_for(test.texts, corpus, cfg, cache_dir / "test_neighbours.npz"),
                    corpus.embeddings, corpus.sentences)


def _batchable(ds: TextDataset, nb: np.ndarray, prep: Prepared, cfg: RefusionConfig, arm: str) -> Batchable:
    tok = tokenizer_for(cfg.model)
    if arm == "concat":
        return encode(concatenated(ds.texts, nb, prep.corpus_sentences), ds.labels, tok, cfg.concat_max_length)
    if arm == "none":
        return encode(ds.texts, ds.labels, tok, cfg.model.max_length)
    return encode(ds.texts, ds.labels, tok, cfg.model.max_length, prep.corpus_embeddings[nb])


def seed_data(prep: Prepared, cfg: RefusionConfig, seed: int, arm: str) -> tuple[Batchable, Batchable, Batchable]:
    """(train, dev, test) of one seed's few-shot split, encoded for `arm`."""
    train, dev = few_shot(prep.train_full, cfg.per_class, seed)
    where = {t: i for i, t in enumerate(prep.train_pool.texts)}
    pick = lambda ds: prep.train_neighbours[[where[t] for t in ds.texts]]  # noqa: E731
    return (_batchable(train, pick(train), prep, cfg, arm), _batchable(dev, pick(dev), prep, cfg, arm),
            _batchable(prep.test, prep.test_neighbours, prep, cfg, arm))


def run_arm(cfg: RefusionConfig, prep: Prepared, arm: str, seed: int, lr: float,
            choices: dict[str, str] | None = None, on_eval=None) -> dict:
    """Train one arm on one seed's split; returns dev and test accuracy and the chosen candidates."""
    model, history, test = train_model(cfg, prep, arm, seed, lr, choices, on_eval)
    return {"arm": arm, "seed": seed, "lr": lr, "dev_accuracy": history[-1]["dev_accuracy"],
            "test_accuracy": accuracy(model, test), "choices": model.integrator.choices(), "history": history}


def train_model(cfg: RefusionConfig, prep: Prepared, arm: str, seed: int, lr: float,
                choices: dict[str, str] | None = None, on_eval=None) -> tuple[RetrievalClassifier, list[dict], Batchable]:
    """One arm trained on one seed's split: (the model, its dev history, the test data encoded for the arm)."""
    train, dev, test = seed_data(prep, cfg, seed, arm)
    fit_cfg = FitConfig(**{**cfg.fit.__dict__, "lr": lr})
    num_labels = len(prep.train_pool.label_names)
    model = RetrievalClassifier(cfg.model, num_labels, cfg.k, prep.corpus_embeddings.shape[1], ARM_CHOICE[arm], seed)
    if arm == "tuned_choices":
        require(choices is not None, "choices", "the tuned_choices arm needs per-module choices")
        model.integrator.set_choices(choices)
    if arm == "refusion_frozen":
        from core.seeding import derive_seed

        model.integrator.freeze_alpha(derive_seed(seed, "alpha-init") % 2**63)
    if fit_cfg.fusion_scale > 0 and train.z is not None:
        calibrate_gains(model, train, fit_cfg.fusion_scale)
    if fit_cfg.head_init == "prototype":
        init_head(model, train, fit_cfg.head_scale)
    history = train_arm(model, train, dev, fit_cfg, seed, searched=arm in SEARCHED, on_eval=on_eval,
                        train_alpha=arm == "refusion")
    return model, history, test


def arm_costs(cfg: RefusionConfig, prep: Prepared, agg: dict[str, dict]) -> dict[str, dict]:
    """Latency and FLOPs per example of every aggregated arm (ReFusion with the choice most seeds
    made per module). Both depend on the architecture, not the weights; the arms are timed in
    turns, so that the CPU's drift cancels in `latency_vs_none`, the median per-round ratio."""
    from core.timing import ratio_in_turns
    from retrieval.report import majority_choices
    from retrieval.train import flops_per_example, latencies_in_turns

    models, tests = {}, {}
    for arm, a in agg.items():
        tests[arm] = seed_data(prep, cfg, cfg.seeds[0], arm)[2]
        models[arm] = RetrievalClassifier(cfg.model, len(prep.train_pool.label_names), cfg.k,
                                          prep.corpus_embeddings.shape[1], ARM_CHOICE[arm], cfg.seeds[0])
        if arm in (*SEARCHED, "tuned_choices"):
            models[arm].integrator.set_choices(majority_choices(a["runs"]))
    times = latencies_in_turns(models, tests, rounds=cfg.latency_rounds)
    cost = {arm: {"latency_s": statistics.median(times[arm]), "flops": flops_per_example(models[arm], tests[arm])}
            for arm in agg}
    if "none" in times:
        for arm in agg:
            cost[arm]["latency_vs_none"] = ratio_in_turns(times, arm, "none")
    return cost


__all__ = ["ARMS", "arm_costs", "Prepared", "RefusionConfig", "TuneConfig", "corpus_pools", "neighbours_for", "prepare", "run_arm", "seed_data", "train_model"]
