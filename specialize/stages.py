"""The stage kinds: for each, its config, typed input ports and outputs, resource plan, and an
adapter that calls its job's library entry points in this process (never a subprocess).

Output formats (one folder per output inside the artifact):
- dataset: data.jsonl (text, and label index and source where known) and dataset.json (label names);
- model: model.json ("family": classifier, with the encoder, adapter and labels and weights.pt
  holding the trainable tensors; or causal_lm, with a Hugging Face folder hf/);
- index: sentences.jsonl, embeddings.npy and index.faiss;
- report: report.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.config import ConfigError, require, to_dict
from core.models import AdapterConfig, ModelConfig
from core.llm.config import PoolConfig
from core.runs import RunDir, atomic_write
from distill.config import GoldConfig, StudentConfig
from evals.config import DatasetEntry, SamplingConfig
from ie.config import ChatConfig, DatasetConfig as IEDatasetConfig

log = logging.getLogger("tailor.specialize")


@dataclass(frozen=True)
class Port:
    type: str
    optional: bool = False


@dataclass
class StageContext:
    """What an adapter gets: its stage, the recipe, its inputs' folders, where to write."""

    stage: Any  # specialize.recipe.Stage
    recipe: Any  # specialize.recipe.SpecializeConfig
    inputs: dict[str, Path]  # port -> the producer's output folder
    out: Path  # the artifact's temporary folder: outputs go to out/<output name>/
    work: Path  # scratch space (Ray Train/Tune storage, a job's own run folder); not part of the artifact

    @property
    def cfg(self) -> Any:
        return self.stage.cfg

    def output(self, name: str) -> Path:
        p = self.out / name
        p.mkdir(parents=True, exist_ok=True)
        return p


@dataclass
class StageKind:
    name: str
    config_cls: type
    inputs: dict[str, Port]
    outputs: dict[str, str]  # output name -> artifact type
    run: Callable[[StageContext], dict]  # returns the stage's metrics ({"metric": name, name: value, ...})
    plan: Callable[[Any, dict], tuple[list[str], float]]  # (printable lines, CPUs it holds while running)
    job: str  # the ray_jobs job whose library code it calls
    inject: Callable[[dict, Any], dict] = lambda raw, recipe: raw  # recipe-level defaults into the raw config
    uses: tuple[str, ...] = ()  # recipe-level settings its result depends on: "data", "probe"
    needs: tuple[str, ...] = ()  # recipe-level settings it cannot run without
    check_inputs: Callable[[Any, Any], None] | None = None  # (stage, recipe): cross-stage checks
    # Flower's simulation runs its own event loop: such a stage runs alone, in the driver's main thread.
    exclusive: bool = False


# --- shared formats ------------------------------------------------------------------------------

def write_dataset(folder: Path, rows: list[dict], label_names: list[str] | None) -> None:
    atomic_write(folder / "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write(folder / "dataset.json", json.dumps({"rows": len(rows), "label_names": label_names,
                                                      "labelled": sum(r.get("label") is not None for r in rows)}))


def read_dataset(folder: Path) -> tuple[list[dict], list[str] | None]:
    from core.data import read_jsonl

    meta = json.loads((folder / "dataset.json").read_text())
    return read_jsonl(folder / "data.jsonl", key=str(folder)), meta.get("label_names")


def labelled(rows: list[dict]) -> tuple[list[str], np.ndarray]:
    keep = [r for r in rows if r.get("label") is not None]
    return [r["text"] for r in keep], np.asarray([int(r["label"]) for r in keep], dtype=np.int64)


def save_classifier(folder: Path, model: ModelConfig, adapter: AdapterConfig, label_names: list[str], state: dict,
                    backbone_seed: int) -> None:
    """`backbone_seed`: the seed core.models.build_classifier built it with; a random tiny encoder's
    frozen weights come from it, so a loader must rebuild with the same seed."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    atomic_write(folder / "weights.pt", buf.getvalue())
    atomic_write(folder / "model.json", json.dumps({"family": "classifier", "model": to_dict(model),
                                                    "adapter": to_dict(adapter), "label_names": label_names,
                                                    "backbone_seed": int(backbone_seed)}))


def load_classifier(folder: Path):
    """(model.json, the trainable tensors) of a classifier model artifact."""
    import torch

    meta = json.loads((folder / "model.json").read_text())
    if meta.get("family") != "classifier":
        raise ConfigError(str(folder), f"is a {meta.get('family')} model, not a classifier")
    return meta, torch.load(folder / "weights.pt")


def student_from(folder: Path, student_cfg=None):
    """A distill Student holding a classifier artifact's weights (student_cfg: its training recipe)."""
    from core.config import from_dict
    from distill.config import StudentConfig
    from distill.student import Student

    meta, state = load_classifier(folder)
    model = from_dict(ModelConfig, meta["model"])
    adapter = from_dict(AdapterConfig, meta["adapter"])
    cfg = dataclasses.replace(student_cfg or StudentConfig(), model=model, adapter=adapter)
    student = build_student(cfg, meta["label_names"], meta["backbone_seed"])
    student.load_trainable_state(state)
    return student


def build_student(cfg, label_names: list[str], backbone_seed: int):
    """A distill Student whose classifier is built with `backbone_seed` as Spry's runtime builds
    its own (core.models.build_classifier(..., seed)), so that weights carry over between them."""
    from core.models import build_classifier, load_tokenizer
    from distill.student import Student

    model = build_classifier(cfg.model, cfg.adapter, len(label_names), seed=backbone_seed)
    return Student(model, load_tokenizer(cfg.model.name), cfg, label_names)


RANDOM_ENCODERS = ("tiny-bert", "tiny-llama")  # built from a config: their frozen weights depend on the seed


def task_splits(recipe):
    from core.data import load_splits

    return load_splits(recipe.data)


def test_accuracy(student, recipe) -> float:
    _, test = task_splits(recipe)
    if list(student.label_names) != list(test.label_names):
        raise ConfigError("data", f"the model's labels {student.label_names} are not the task's {test.label_names}")
    return float(student.evaluate(test.texts, test.labels)["accuracy"])


def probe_accuracy(ctx: StageContext, texts: list[str], labels: np.ndarray, label_names: list[str]) -> float | None:
    """recipe.probe trained on (texts, labels) and scored on the task's test split; None without a probe."""
    from core.seeding import derive_seed
    from distill.gold import train_student

    p = ctx.recipe.probe
    if p is None or ctx.recipe.data is None or len(set(labels.tolist())) < 2:
        return None
    student = train_student(p, label_names, texts, labels, p.final_epochs,
                            build_seed=derive_seed(ctx.recipe.seed, "probe", ctx.stage.name),
                            train_seed=derive_seed(ctx.recipe.seed, "probe-train", ctx.stage.name))
    return test_accuracy(student, ctx.recipe)


def _with_data(raw: dict, recipe) -> dict:
    """The recipe's task data as the stage's `data`, unless the stage names its own."""
    if recipe.data is not None and "data" not in raw:
        raw["data"] = to_dict(recipe.data)
    return raw


def _stage_plan(job: str, cfg, resources: dict) -> list[str]:
    from ray_jobs import plans

    return getattr(plans, f"plan_{job}")(cfg, resources)


# --- load (core.data) ----------------------------------------------------------------------------

@dataclass
class LoadStageConfig:
    # "task": the recipe's task training split, with its labels; else a text pool (core.data.TEXT_POOLS),
    # a .csv/.jsonl file or a HF dataset, without labels
    source: str = "task"
    text_column: str = "text"
    limit: int | None = None  # the first rows only

    def validate(self) -> None:
        require(self.limit is None or self.limit > 0, "limit", f"must be > 0 or null, got {self.limit}")
        if self.source != "task":
            from curation.config import TextSource

            TextSource(self.source, self.text_column, self.limit).validate()


def _load_plan(cfg, resources):
    return [f"read {cfg.source if cfg.source != 'task' else 'the task training split'} in the driver"], 0.0


def run_load(ctx: StageContext) -> dict:
    """A dataset artifact straight from core.data: a recipe's raw text without curation."""
    from core.data import load_texts

    c = ctx.cfg
    if c.source == "task":
        require(ctx.recipe.data is not None, ctx.stage.key_of("config.source"), "'task' needs the recipe's data")
        train, _ = task_splits(ctx.recipe)
        n = len(train) if c.limit is None else min(c.limit, len(train))
        rows = [{"text": t, "label": int(y), "source": f"task:{ctx.recipe.data.name}"}
                for t, y in zip(train.texts[:n], train.labels[:n])]
        names = train.label_names
    else:
        rows = [{"text": t, "label": None, "source": c.source}
                for t in load_texts(c.source, c.text_column, c.limit, key=ctx.stage.key_of("config.source"))]
        names = None
    write_dataset(ctx.output("dataset"), rows, names)
    return {"rows": len(rows)}


# --- curate (curation) ---------------------------------------------------------------------------

def _curate_plan(cfg, resources):
    return _stage_plan("curate", cfg, resources), cfg.workers.num_workers * cfg.workers.num_cpus


def run_curate(ctx: StageContext) -> dict:
    """Hierarchical k-means curation of the pool: the task's training split (labels kept aside)
    followed by the configured sources; the selection keeps each text's label where it has one."""
    from curation.config import TextSource
    from curation.curate import check_inputs, curate, load_pool

    cfg, recipe = ctx.cfg, ctx.recipe
    train_labels, names, sources = None, None, list(cfg.data)
    if recipe.data is not None:
        train, _ = task_splits(recipe)
        pool_file = ctx.work / "task_train.jsonl"
        atomic_write(pool_file, "".join(json.dumps({"text": t}) + "\n" for t in train.texts))
        sources = [TextSource(name=str(pool_file)), *sources]
        train_labels, names = train.labels, train.label_names
    cfg = dataclasses.replace(cfg, data=sources)
    pool = load_pool(cfg)
    check_inputs(cfg, pool)
    numbers = curate(cfg, pool, RunDir(ctx.work / "curation"))
    from core.data import read_jsonl

    selected = read_jsonl(next((ctx.work / "curation").glob("selected.jsonl")))
    rows = []
    for r in selected:
        i = int(r["id"])
        from_task = train_labels is not None and i < len(train_labels)
        rows.append({"text": r["text"], "label": int(train_labels[i]) if from_task else None,
                     "source": f"task:{recipe.data.name}" if from_task else r["source"], "cluster": r["cluster"]})
    write_dataset(ctx.output("dataset"), rows, names)
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    metrics = {"selected": len(rows), "pool": pool.n, "by_source": by_source,
               "largest_cluster_before": numbers["levels"][0]["largest_before"],
               "largest_cluster_after": numbers["levels"][0]["largest_after"]}
    if names is not None:
        texts, labels = labelled(rows)
        acc = probe_accuracy(ctx, texts, labels, names)
        if acc is not None:
            metrics.update(metric="test_accuracy", test_accuracy=acc, probe_examples=len(texts),
                           note=f"probe trained on the {len(texts)} curated labelled examples")
    return metrics


# --- gold (distill) ------------------------------------------------------------------------------

@dataclass
class GoldStageConfig:
    gold: GoldConfig = field(default_factory=GoldConfig)
    # curated labelled examples (after gold.task.seed_examples are taken for the prompts) used as
    # the dev set that GOLD's per-iteration student is scored on
    dev_size: int = 20

    def validate(self) -> None:
        require(self.dev_size >= 0, "dev_size", f"must be >= 0, got {self.dev_size}")


def _gold_plan(cfg, resources):
    from ray_jobs.plans import _actor_line, fits

    p = cfg.gold.teacher.pool
    lines, cpus = [], 1.0  # the student trains in the driver
    if p.actors:
        n = fits(resources, p.num_cpus, p.num_gpus, "gold.teacher.pool.num_cpus", "gold.teacher.pool.num_gpus")
        lines.append(_actor_line(f"teacher actors ({cfg.gold.teacher.backend})", p.actors, p.num_cpus, p.num_gpus, n))
        cpus += p.actors * p.num_cpus
    lines.append(f"{cfg.gold.iterations} GOLD iteration(s), feedback {cfg.gold.feedback.strategy}; "
                 "student in the driver")
    return lines, cpus


def _classifier_signature(stage) -> tuple[str, dict] | None:
    c = stage.cfg
    if stage.kind.name == "gold":
        return c.gold.student.model.name, to_dict(c.gold.student.adapter)
    if stage.kind.name == "central":
        return c.student.model.name, to_dict(c.student.adapter)
    if stage.kind.name == "spry":
        return c.model.name, to_dict(c.adapter)
    return None


def _check_init(stage, recipe) -> None:
    """A fine-tuning stage that starts from another stage's classifier must build the same one."""
    if "init" not in stage.inputs:
        return
    producer = recipe.by_name[stage.inputs["init"][0]]
    theirs, ours = _classifier_signature(producer), _classifier_signature(stage)
    if theirs is not None and theirs != ours:
        raise ConfigError(stage.key_of("inputs.init"),
                          f"stage {producer.name!r} builds a {theirs[0]} classifier with adapter {theirs[1]}, "
                          f"but {stage.name!r} ({stage.kind.name}) builds {ours[0]} with {ours[1]}: "
                          "the weights cannot carry over; use the same encoder and adapter")


def run_gold(ctx: StageContext) -> dict:
    """GOLD's loop (distill.gold) with the teacher on core.llm (an actor pool with pool.actors > 0),
    its prompts seeded with curated real examples, then the final student (distill's SCE)."""
    from core.data import TextDataset
    from core.llm import build_backend
    from core.seeding import derive_seed
    from distill.gold import EmptyGenerationError, gold_iteration, initial_state
    from distill.student import Student
    from distill.task import task_from_data

    g = ctx.cfg.gold
    rows, names = read_dataset(ctx.inputs["seeds"])
    _, test = task_splits(ctx.recipe)
    if names != test.label_names:
        raise ConfigError(ctx.stage.key_of("inputs.seeds"), f"the seeds' labels {names} are not the task's {test.label_names}")
    texts, labels = labelled(rows)
    seeds = TextDataset(texts, labels, names, f"curated-{len(texts)}")
    task = task_from_data(g.task, seeds, g.seed)
    used = {e.text for e in task.examples}
    rest = [i for i in np.random.default_rng(g.seed).permutation(len(texts)) if texts[i] not in used]
    dev = ([texts[i] for i in rest[: ctx.cfg.dev_size]], [int(labels[i]) for i in rest[: ctx.cfg.dev_size]]) \
        if ctx.cfg.dev_size and rest else None
    backend = build_backend(g.teacher, f"{ctx.stage.key_of('config')}.gold.teacher")
    history = []
    try:
        student = Student.build(g.student, task.label_names, seed=derive_seed(g.seed, "student", "gold"))
        state = initial_state(task)
        from core.runs import progress

        for _ in progress(range(g.iterations), desc=f"{ctx.stage.name}: GOLD iterations"):
            state, m = gold_iteration(state, task, backend, student, g, dev=dev)
            history.append(m)
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()
    if not state.pool:
        raise EmptyGenerationError("the pool is empty: nothing to distil")
    # distill.gold.train_final_student's recipe (a fresh student, final_epochs, final_loss), its
    # classifier built with the recipe's seed so that a later stage can rebuild it exactly
    # the dataset's label names (gold.task.label_names are only the prompts' words for them)
    final = build_student(g.final_student(), list(names), ctx.recipe.seed)
    final.train([s.text for s in state.pool], [s.label for s in state.pool], g.student.final_epochs,
                seed=derive_seed(g.seed, "final-train"))
    save_classifier(ctx.output("model"), g.student.model, g.student.adapter, list(names),
                    final.trainable_state(), ctx.recipe.seed)
    write_dataset(ctx.output("dataset"), [{"text": s.text, "label": int(s.label), "source": s.kind}
                                          for s in state.pool], list(names))
    acc = test_accuracy(final, ctx.recipe)
    return {"metric": "test_accuracy", "test_accuracy": acc, "generated": len(state.pool),
            "seed_examples": len(task.examples), "dev_examples": len(dev[0]) if dev else 0,
            "last_dev_accuracy": history[-1].get("dev_accuracy") if history else None}


# --- spry and central (fl, distill's student) ----------------------------------------------------

def _spry_inject(raw: dict, recipe) -> dict:
    raw.setdefault("seed", recipe.seed)  # the classifier's build seed, as the other stages'
    return _with_data(raw, recipe)


def _spry_plan(cfg, resources):
    return _stage_plan("spry", cfg, resources), cfg.fl.clients_per_round * cfg.resources.num_cpus


def run_spry(ctx: StageContext) -> dict:
    """Spry on Flower's Ray simulation (fl.app.run_spry), the clients holding shards of the task's
    training split; with an `init` model, the federation starts from its weights (round 0's
    prototype head is then off: the head is the model's own)."""
    from fl.app import run_spry as fl_run_spry
    from fl.runtime import Runtime

    cfg = ctx.cfg
    if "init" in ctx.inputs:
        cfg = dataclasses.replace(cfg, fl=dataclasses.replace(cfg.fl, prototype_head=False))
    runtime = Runtime(cfg)
    carried = 0
    if "init" in ctx.inputs:
        meta, state = load_classifier(ctx.inputs["init"])
        if cfg.model.name in RANDOM_ENCODERS and meta["backbone_seed"] != cfg.seed:
            raise ConfigError(ctx.stage.key_of("config.seed"), f"{cfg.model.name} is a random encoder built from the "
                              f"seed: the init model's was built with {meta['backbone_seed']}, this stage's with {cfg.seed}")
        own = runtime.state()
        if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
            raise ConfigError(ctx.stage.key_of("inputs.init"), "the init model's trainable tensors do not match "
                              "this stage's classifier (encoder, adapter or labels differ)")
        runtime.load_state(state)
        carried = len(state)
    result = fl_run_spry(cfg, runtime, RunDir(ctx.work / "spry"))
    save_classifier(ctx.output("model"), cfg.model, cfg.adapter, runtime.label_names, result.final_state, cfg.seed)
    acc = test_accuracy(student_from(ctx.output("model")), ctx.recipe)
    return {"metric": "test_accuracy", "test_accuracy": acc, "rounds": len(result.history),
            "method": cfg.fl.method, "clients": cfg.partition.num_clients, "tensors_from_init": carried,
            "history_final_accuracy": result.history[-1].get("accuracy") if result.history else None}


@dataclass
class CentralStageConfig:
    # central backprop on the whole training split (every client's shard pooled): Spry's baseline
    student: StudentConfig = field(default_factory=StudentConfig)
    epochs: int = 1
    seed: int = 0

    def validate(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.student.ray_train is None, "student.ray_train",
                "the central stage trains in the driver; remove ray_train (null)")


def _central_plan(cfg, resources):
    return [f"central backprop in the driver: {cfg.epochs} epoch(s) over the training split"], 1.0


def run_central(ctx: StageContext) -> dict:
    """Central backprop (distill.student) over the pooled training split; from `init` when given."""
    from core.seeding import derive_seed

    c = ctx.cfg
    train, _ = task_splits(ctx.recipe)
    seed = derive_seed(c.seed, "central")
    if "init" in ctx.inputs:
        student = student_from(ctx.inputs["init"], c.student)
        student.train(train.texts, train.labels, c.epochs, seed=seed)
        backbone_seed = json.loads((ctx.inputs["init"] / "model.json").read_text())["backbone_seed"]
    else:
        student = build_student(c.student, train.label_names, ctx.recipe.seed)
        student.train(train.texts, train.labels, c.epochs, seed=seed)
        backbone_seed = ctx.recipe.seed
    save_classifier(ctx.output("model"), c.student.model, c.student.adapter, train.label_names,
                    student.trainable_state(), backbone_seed)
    return {"metric": "test_accuracy", "test_accuracy": test_accuracy(student, ctx.recipe),
            "train_examples": len(train), "epochs": c.epochs}


# --- refusion (retrieval) ------------------------------------------------------------------------

def _refusion_plan(cfg, resources):
    return _stage_plan("refusion", cfg, resources), cfg.tune.cpus_per_trial


CURATED_POOL = "curated"


def _refusion_inject(raw: dict, recipe) -> dict:
    raw = _with_data(raw, recipe)
    # the curated pool is the corpus unless the stage names its own sources
    raw.setdefault("corpus", {}).setdefault("sources", [{"name": CURATED_POOL}])
    return raw


def run_refusion(ctx: StageContext) -> dict:
    """ReFusion's few-shot arms (retrieval.tune on Ray Tune) with the curated pool as the corpus
    (its texts that are few-shot examples or test texts left out); writes the index."""
    from retrieval.experiment import prepare
    from retrieval.index import build_index, save_index
    from retrieval.integrator import RetrievalIntegrator
    from retrieval.report import aggregate
    from retrieval.tune import run_trials
    from core.models import load_backbone

    cfg = ctx.cfg
    rows, _ = read_dataset(ctx.inputs["corpus"])
    prep = prepare(cfg, ctx.work / "cache", extra_pools={CURATED_POOL: [r["text"] for r in rows]})
    probe = load_backbone(cfg.model)
    names = RetrievalIntegrator(probe, cfg.k, probe.config.hidden_size).names
    del probe
    trials = run_trials(cfg, prep, names, ctx.work / "tune")
    agg = aggregate(trials)
    idx = ctx.output("index")
    np.save(idx / "embeddings.npy", prep.corpus_embeddings)
    atomic_write(idx / "sentences.jsonl", "".join(json.dumps(s) + "\n" for s in prep.corpus_sentences))
    save_index(build_index(prep.corpus_embeddings, cfg.corpus.index), idx / "index.faiss")
    table = {a: {k: v for k, v in r.items() if k != "runs"} for a, r in agg.items()}
    atomic_write(ctx.output("report") / "report.json", json.dumps({"arms": table, "corpus_sentences": len(prep.corpus_sentences)}, indent=2))
    best = "refusion" if "refusion" in agg else max(agg, key=lambda a: agg[a]["mean"])
    out = {"metric": "test_accuracy", "test_accuracy": agg[best]["mean"], "arm": best,
           "corpus_sentences": len(prep.corpus_sentences), "per_class": cfg.per_class, "seeds": len(cfg.seeds)}
    out.update({f"{a}_test_accuracy": r["mean"] for a, r in agg.items()})
    return out


# --- compress (compression, Basel) ---------------------------------------------------------------

def _compress_inject(raw: dict, recipe) -> dict:
    # the target text comes from the `domain` input; a placeholder keeps the config's own check quiet
    raw.setdefault("data", {}).setdefault("target", "rotten_tomatoes")
    return raw


def _compress_plan(cfg, resources):
    return _stage_plan("compress", cfg, resources), cfg.train.num_workers * cfg.train.cpus_per_worker


def _domain_config(cfg, folder: Path):
    """cfg with the domain dataset's texts as its target text."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, target=str(folder / "data.jsonl"),
                                                              text_column="text"))


def _check_compress(stage, recipe) -> None:
    c = stage.cfg
    require(len(c.methods) == 1, stage.key_of("config.methods"),
            f"a compress stage makes one model: name one method, got {c.methods}")
    require(len(c.keep_ratios) == 1, stage.key_of("config.keep_ratios"),
            f"a compress stage makes one model: name one keep ratio, got {c.keep_ratios}")


def run_compress(ctx: StageContext) -> dict:
    """One compressed model (compression.pipeline.compress: Basel on Ray Train, or a baseline) of
    the LLM on the domain text, scored with the job's own perplexities and written as an HF folder."""
    from compression.pipeline import check_steps, compress, evaluate, load_lm_data, target_stats
    from core.models import load_tokenizer

    cfg = _domain_config(ctx.cfg, ctx.inputs["domain"])
    tokenizer = load_tokenizer(cfg.model.name)
    data = load_lm_data(cfg, tokenizer)
    check_steps(cfg, data.train.shape[0])
    method, ratio = cfg.methods[0], cfg.keep_ratios[0]
    model, info = compress(cfg, method, ratio, data, target_stats(cfg, data), ctx.work / "ray_train")
    folder = ctx.output("model")
    row = evaluate(model, data, cfg, folder / "hf", tokenizer, keep=True)
    atomic_write(folder / "model.json", json.dumps({"family": "causal_lm", "base": cfg.model.name, "method": method,
                                                    "keep_ratio": ratio, "seed": cfg.seed}))
    return {"metric": "domain_ppl", "domain_ppl": row["target_ppl"], "off_domain_ppl": row["off_target_ppl"],
            "params": row["params"], "file_mb": row.get("file_mb"), "method": method, "keep_ratio": ratio,
            "train_blocks": int(data.train.shape[0])}


# --- lm_eval (compression's perplexity, evals' hallucination evaluators) -------------------------

@dataclass
class LMEvalConfig:
    # the model when the stage has no `model` input (the dense base); its weights seed for tiny models
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="smollm2-135m", max_length=64))
    seed: int = 0
    off_target: str = "halueval_summarization"  # text off the domain
    seq_len: int = 64
    eval_blocks: int = 16  # held-out blocks per perplexity, as the compress stage's
    # the hallucination evaluators (evals); an empty list skips them
    datasets: list[DatasetEntry] = field(default_factory=list)
    prompt_format: str = "chat"
    pool: PoolConfig = field(default_factory=PoolConfig)
    batch_size: int = 8
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    keywords: str = "model"
    similarity: str = "none"
    chunk_items: int = 8

    def validate(self) -> None:
        require(self.prompt_format in ("chat", "raw"), "prompt_format", f"allowed: chat, raw; got {self.prompt_format!r}")
        require(self.keywords in ("model", "jieba"), "keywords", f"allowed: model, jieba; got {self.keywords!r}")
        require(self.similarity in ("minilm", "none"), "similarity", f"allowed: minilm, none; got {self.similarity!r}")
        require(self.eval_blocks >= 1, "eval_blocks", f"must be >= 1, got {self.eval_blocks}")


def _halueval_config(c: LMEvalConfig, label: str, model_name: str):
    from core.config import from_dict
    from evals.config import HaluEvalJobConfig

    llm = {"backend": "hf", "hf": {"model": {"name": model_name}, "batch_size": c.batch_size, "seed": c.seed},
           "pool": to_dict(c.pool)}
    return from_dict(HaluEvalJobConfig, {
        "seed": c.seed, "models": [{"name": label, "llm": llm, "prompt_format": c.prompt_format}],
        "datasets": [to_dict(d) for d in c.datasets], "sampling": to_dict(c.sampling), "keywords": c.keywords,
        "similarity": c.similarity, "chunk_items": c.chunk_items})


def _lm_eval_plan(cfg, resources):
    lines = [f"perplexity on the domain and on {cfg.off_target}: {cfg.eval_blocks} blocks of {cfg.seq_len} tokens"]
    cpus = 1.0
    if cfg.datasets:
        lines += _stage_plan("halueval", _halueval_config(cfg, "model", cfg.model.name), resources)
        cpus = max(cpus, cfg.pool.actors * cfg.pool.num_cpus)
    return lines, cpus


def run_lm_eval(ctx: StageContext) -> dict:
    """Perplexity on the held-out domain blocks (the compress stage's split) and off the domain,
    and the hallucination evaluators (evals.experiment on its actor pool), of the `model` input
    or, without one, of the configured base model."""
    from compression.config import CompressionConfig, LMDataConfig
    from compression.data import perplexity
    from compression.pipeline import load_lm_data
    from core.models import load_causal_lm, load_tokenizer
    from evals.experiment import evaluate as halu_evaluate, load_datasets

    c = ctx.cfg
    if "model" in ctx.inputs:
        meta = json.loads((ctx.inputs["model"] / "model.json").read_text())
        require(meta.get("family") == "causal_lm", ctx.stage.key_of("inputs.model"),
                f"needs a causal LM, got a {meta.get('family')} model")
        name, label = str((ctx.inputs["model"] / "hf").resolve()), f"{meta['base']} {meta['method']}@{meta['keep_ratio']}"
    else:
        name, label = c.model.name, f"{c.model.name} dense"
    mcfg = dataclasses.replace(c.model, name=name)
    lm = CompressionConfig(model=mcfg, methods=["svd"], seed=c.seed,
                           data=LMDataConfig(target=str(ctx.inputs["domain"] / "data.jsonl"), off_target=c.off_target,
                                             seq_len=c.seq_len, eval_blocks=c.eval_blocks, calibration_blocks=1))
    tokenizer = load_tokenizer(name)
    data = load_lm_data(lm, tokenizer)
    model = load_causal_lm(mcfg, seed=c.seed)
    out = {"metric": "domain_ppl", "model": label, "domain_ppl": perplexity(model, data.eval_target),
           "off_domain_ppl": perplexity(model, data.eval_off_target), "params": sum(p.numel() for p in model.parameters())}
    del model
    report: dict[str, Any] = {"perplexity": dict(out)}
    if c.datasets:
        hcfg = _halueval_config(c, label, name)
        res = halu_evaluate(hcfg, RunDir(ctx.work / "halueval"), load_datasets(hcfg))
        report["halueval"] = res["rows"]
        for r in res["rows"]:  # by parsed text and by likelihood (a small model's text is often unparseable)
            out[f"{r['dataset']}/{r['evaluator']}/{r['by']}"] = r["score"]
            out[f"{r['dataset']}/{r['evaluator']}/{r['by']}/invalid_share"] = r["invalid_share"]
    atomic_write(ctx.output("report") / "report.json", json.dumps(report, indent=2, default=str))
    return out


# --- chatie (ie) ----------------------------------------------------------------------------------

@dataclass
class ChatIEStageConfig:
    # the model when the stage has no `model` input (the dense base)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="smollm2-135m"))
    seed: int = 0
    chat: ChatConfig = field(default_factory=ChatConfig)
    datasets: list[IEDatasetConfig] = field(default_factory=list)
    pool: PoolConfig = field(default_factory=PoolConfig)
    batch_size: int = 8

    def validate(self) -> None:
        require(len(self.datasets) >= 1, "datasets", "give at least one dataset (name, task, path, schema)")


def _chatie_config(c: ChatIEStageConfig, model_name: str):
    from core.config import from_dict
    from ie.config import ChatIEJobConfig

    llm = {"backend": "hf", "hf": {"model": {**to_dict(c.model), "name": model_name}, "batch_size": c.batch_size,
                                   "seed": c.seed}, "pool": to_dict(c.pool)}
    return from_dict(ChatIEJobConfig, {"llm": llm, "chat": to_dict(c.chat), "datasets": [to_dict(d) for d in c.datasets]})


def _chatie_plan(cfg, resources):
    return _stage_plan("chatie", _chatie_config(cfg, cfg.model.name), resources), max(1.0, cfg.pool.actors * cfg.pool.num_cpus)


def run_chatie(ctx: StageContext) -> dict:
    """ChatIE and the configured baselines (ie.experiment.run_experiment) with the `model` input,
    or the configured base model, on core.llm (an actor pool with pool.actors > 0)."""
    from core.llm import build_backend
    from ie.config import tokenizer_name
    from ie.experiment import load_datasets, run_experiment
    from ie.tokens import TokenCounter

    c = ctx.cfg
    name = str((ctx.inputs["model"] / "hf").resolve()) if "model" in ctx.inputs else c.model.name
    cfg = _chatie_config(c, name)
    datasets = load_datasets(cfg)
    backend = build_backend(cfg.llm, ctx.stage.key_of("config.model"))
    try:
        results = run_experiment(cfg, datasets, backend, RunDir(ctx.work / "chatie"), TokenCounter.from_name(tokenizer_name(cfg)))
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()
    atomic_write(ctx.output("report") / "report.json", json.dumps([r.__dict__ for r in results], indent=2, default=str))
    out: dict[str, Any] = {"metric": "chatie_f1", "model": name}
    for r in results:
        out[f"{r.dataset}/{r.method}_f1"] = float(r.metrics["f1"])
    chatie = [float(r.metrics["f1"]) for r in results if r.method == "chatie"]
    out["chatie_f1"] = float(np.mean(chatie)) if chatie else None
    if not chatie:
        out["metric"] = None
    return out


# --- the registry --------------------------------------------------------------------------------

def _kinds() -> dict[str, StageKind]:
    from compression.config import CompressionConfig
    from curation.config import CurationConfig
    from fl.config import SpryConfig
    from retrieval.experiment import RefusionConfig

    return {k.name: k for k in [
        StageKind("load", LoadStageConfig, {}, {"dataset": "dataset"}, run_load, _load_plan, "core.data",
                  uses=("data",)),
        StageKind("curate", CurationConfig, {}, {"dataset": "dataset"}, run_curate, _curate_plan, "curate",
                  uses=("data", "probe")),
        StageKind("gold", GoldStageConfig, {"seeds": Port("dataset")}, {"model": "model", "dataset": "dataset"},
                  run_gold, _gold_plan, "gold", uses=("data",), needs=("data",)),
        StageKind("spry", SpryConfig, {"init": Port("model", optional=True)}, {"model": "model"}, run_spry, _spry_plan,
                  "spry", inject=_spry_inject, uses=("data",), needs=("data",), check_inputs=_check_init, exclusive=True),
        StageKind("central", CentralStageConfig, {"init": Port("model", optional=True)}, {"model": "model"},
                  run_central, _central_plan, "spry", uses=("data",), needs=("data",), check_inputs=_check_init),
        StageKind("refusion", RefusionConfig, {"corpus": Port("dataset")}, {"index": "index", "report": "report"},
                  run_refusion, _refusion_plan, "refusion", inject=_refusion_inject, uses=("data",), needs=("data",)),
        StageKind("compress", CompressionConfig, {"domain": Port("dataset")}, {"model": "model"}, run_compress,
                  _compress_plan, "compress", inject=_compress_inject, check_inputs=_check_compress),
        StageKind("lm_eval", LMEvalConfig, {"domain": Port("dataset"), "model": Port("model", optional=True)},
                  {"report": "report"}, run_lm_eval, _lm_eval_plan, "halueval"),
        StageKind("chatie", ChatIEStageConfig, {"model": Port("model", optional=True)}, {"report": "report"},
                  run_chatie, _chatie_plan, "chatie"),
    ]}


KINDS: dict[str, StageKind] = _kinds()

__all__ = ["KINDS", "Port", "StageContext", "StageKind", "load_classifier", "read_dataset", "save_classifier",
           "student_from", "write_dataset"]
