"""Multi-label text data: Reuters-21578 ModApte (90 topics), FIGER entity typing, and any JSONL with
`text` and a `labels` list; a seeded train/dev/test split in which every label seen in dev or test
also has a training example."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import ConfigError, require



def shared_data() -> Path:
    """$TAILOR_SHARED_DATA, else the first `shared/data` folder beside the repo or above it (the
    project keeps its evaluation slices there: /work/shared/data for /work/main and worktrees)."""
    import os

    if os.environ.get("TAILOR_SHARED_DATA"):
        return Path(os.environ["TAILOR_SHARED_DATA"])
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return Path("shared/data")
BUILTIN = ("reuters", "figer")


@dataclass
class DataConfig:
    # "reuters", "figer" (the shared slices; `path` points elsewhere), or a .jsonl file path
    name: str = "reuters"
    path: str | None = None  # folder or file for a built-in set; null = ../shared/data/<set>
    text_field: str = "text"
    labels_field: str = "labels"
    test_path: str | None = None  # a separate test JSONL: then `name` is split into train/dev only
    train_fraction: float = 0.5
    dev_fraction: float = 0.25
    split_seed: int = 0
    max_examples: int | None = None  # keep the first N (after a seeded shuffle) for fast runs
    min_label_count: int = 1  # labels with fewer examples (all splits) are dropped

    def validate(self) -> None:
        require(0.0 < self.train_fraction < 1.0, "train_fraction", f"must be in (0, 1), got {self.train_fraction}")
        require(0.0 < self.dev_fraction < 1.0, "dev_fraction", f"must be in (0, 1), got {self.dev_fraction}")
        total = self.train_fraction + self.dev_fraction
        require(total < 1.0 or (self.test_path is not None and abs(total - 1.0) < 1e-9), "dev_fraction",
                f"train_fraction + dev_fraction must be < 1 (the rest is test), got {total:g}")
        require(self.max_examples is None or self.max_examples >= 10, "max_examples",
                f"must be >= 10 or null, got {self.max_examples}")
        require(self.min_label_count >= 1, "min_label_count", f"must be >= 1, got {self.min_label_count}")
        if self.name not in BUILTIN:
            p = Path(self.name).expanduser()
            if p.suffix not in (".jsonl", ".json"):
                raise ConfigError("name", f"unknown dataset {self.name!r}; allowed: {', '.join(BUILTIN)}, "
                                          "or a .jsonl file with a text field and a labels list")
            require(p.is_file(), "name", f"file not found: {p}")
        if self.test_path is not None:
            require(Path(self.test_path).expanduser().is_file(), "test_path", f"file not found: {self.test_path}")


@dataclass
class MultiLabelSet:
    texts: list[str]
    labels: list[list[str]]
    source: str
    lines: list[int] = field(default_factory=list)  # 1-based line of each example in its file
    skipped_empty_lines: int = 0

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Split:
    """Label-indicator matrices (n x L, float32) over one label vocabulary, ordered as `label_names`."""

    texts: dict[str, list[str]]  # "train", "dev", "test"
    y: dict[str, np.ndarray]
    label_names: list[str]
    train_counts: np.ndarray
    fingerprint: str
    notes: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def read_jsonl(path: str | Path, text_field: str = "text", labels_field: str = "labels") -> MultiLabelSet:
    """Rows {text_field: str, labels_field: [str, ...]}; empty lines are skipped and counted. A missing
    text, a labels value that is not a list, or a file where every labels list is empty is an error
    naming the field, the file and the line."""
    path = Path(path).expanduser()
    texts, labels, lines, empty = [], [], [], 0
    with open(path, encoding="utf-8") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                empty += 1
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ConfigError("data.name", f"{path} line {i} is not JSON: {err.msg}") from None
            if not isinstance(row, dict):
                raise ConfigError("data.name", f"{path} line {i} is not a JSON object")
            if text_field not in row or not isinstance(row[text_field], str):
                raise ConfigError("data.text_field", f"{path} line {i} has no string field {text_field!r}; "
                                                     f"its fields: {', '.join(row) or 'none'}")
            labs = row.get(labels_field)
            if not isinstance(labs, list) or not all(isinstance(x, str) for x in labs):
                raise ConfigError("data.labels_field", f"{path} line {i}: {labels_field!r} must be a list of "
                                                       f"strings, got {labs!r}")
            texts.append(row[text_field])
            labels.append(sorted(set(labs)))
            lines.append(i)
    require(bool(texts), "data.name", f"{path} has no examples")
    require(any(labels), "data.labels_field", f"{path}: the {labels_field!r} list is empty on every line "
                                              f"(lines 1-{lines[-1]}); nothing to learn")
    return MultiLabelSet(texts, labels, str(path), lines, empty)


def reuters(folder: str | Path | None = None) -> MultiLabelSet:
    """Reuters-21578 ModApte test documents (title + body), topics restricted to the 90 categories."""
    folder = Path(folder).expanduser() if folder else shared_data() / "reuters21578"
    require(folder.is_dir(), "data.path", f"Reuters folder not found: {folder}")
    cats = set(json.loads((folder / "modapte_90_categories.json").read_text()))
    texts, labels, lines = [], [], []
    with open(folder / "modapte_test_90cat.jsonl", encoding="utf-8") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            texts.append(f"{row.get('title') or ''}\n{row.get('body') or ''}".strip())
            labels.append(sorted(t for t in row["topics"] if t in cats))
            lines.append(i)
    return MultiLabelSet(texts, labels, str(folder), lines)


def figer(folder: str | Path | None = None) -> MultiLabelSet:
    """FIGER gold mentions: input "mention ; sentence", labels the type paths (/organization/company)."""
    folder = Path(folder).expanduser() if folder else shared_data() / "figer_test"
    require(folder.is_dir(), "data.path", f"FIGER folder not found: {folder}")
    texts, labels, lines = [], [], []
    with open(folder / "figer_test.jsonl", encoding="utf-8") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            sentence = " ".join(row["tokens"])
            for m in row["mentions"]:
                texts.append(f"{m['text']} ; {sentence}")
                labels.append(sorted(set(m["labels"])))
                lines.append(i)
    return MultiLabelSet(texts, labels, str(folder), lines)


def load_set(cfg: DataConfig) -> MultiLabelSet:
    if cfg.name == "reuters":
        return reuters(cfg.path)
    if cfg.name == "figer":
        return figer(cfg.path)
    return read_jsonl(cfg.name, cfg.text_field, cfg.labels_field)


def indicator(labels: list[list[str]], names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    y = np.zeros((len(labels), len(names)), dtype=np.float32)
    for r, labs in enumerate(labels):
        for lab in labs:
            if lab in index:
                y[r, index[lab]] = 1.0
    return y


def make_split(cfg: DataConfig) -> Split:
    """The seeded split (`split_seed`, independent of the run's seeds). Labels with fewer than
    `min_label_count` examples are dropped. Every kept label gets a training example: when the
    shuffle puts all of a label's examples outside train, its first one moves to train (the
    counts of moves are in `notes`). With `test_path`, a test label training never saw is an error."""
    full = load_set(cfg)
    notes = []
    if full.skipped_empty_lines:
        notes.append(f"{full.skipped_empty_lines} empty line(s) skipped in {full.source}")
    rng = np.random.default_rng(cfg.split_seed)
    order = rng.permutation(len(full))
    if cfg.max_examples is not None:
        order = order[: cfg.max_examples]
    counts: dict[str, int] = {}
    for i in order:
        for lab in full.labels[i]:
            counts[lab] = counts.get(lab, 0) + 1
    dropped = sorted(k for k, c in counts.items() if c < cfg.min_label_count)
    if dropped:
        notes.append(f"{len(dropped)} label(s) with fewer than {cfg.min_label_count} examples dropped")
    n = len(order)
    if cfg.test_path is not None:
        n_train = int(round(cfg.train_fraction / (cfg.train_fraction + cfg.dev_fraction) * n))
        n_dev = n - n_train
    else:
        n_train = int(round(cfg.train_fraction * n))
        n_dev = int(round(cfg.dev_fraction * n))
    parts = {"train": list(order[:n_train]), "dev": list(order[n_train:n_train + n_dev]),
             "test": list(order[n_train + n_dev:])}
    require(len(parts["train"]) > 0 and len(parts["dev"]) > 0, "data.train_fraction",
            f"{n} examples leave an empty train or dev split")
    in_train = {lab for i in parts["train"] for lab in full.labels[i]}
    moved = 0
    for lab in sorted(k for k in counts if k not in dropped and k not in in_train):
        for part in ("dev", "test"):
            hit = next((i for i in parts[part] if lab in full.labels[i]), None)
            if hit is not None:
                parts[part].remove(hit)
                parts["train"].append(hit)
                in_train.update(full.labels[hit])
                moved += 1
                break
    if moved:
        notes.append(f"{moved} example(s) moved to train so that every label has a training example")
    names = sorted(k for k in counts if k not in dropped)
    texts = {k: [full.texts[i] for i in v] for k, v in parts.items()}
    y = {k: indicator([full.labels[i] for i in v], names) for k, v in parts.items()}
    if cfg.test_path is not None:
        test = read_jsonl(cfg.test_path, cfg.text_field, cfg.labels_field)
        known = set(names)
        for labs, line in zip(test.labels, test.lines):
            unseen = [lab for lab in labs if lab not in known]
            if unseen:
                raise ConfigError("data.test_path", f"{test.source} line {line}: label {unseen[0]!r} never "
                                                    "occurs in training data")
        texts["test"], y["test"] = test.texts, indicator(test.labels, names)
        if test.skipped_empty_lines:
            notes.append(f"{test.skipped_empty_lines} empty line(s) skipped in {test.source}")
    require(len(texts["test"]) > 0, "data.dev_fraction", "the test split is empty")
    train_counts = y["train"].sum(0).astype(np.int64)
    key = f"{full.source}|{cfg.split_seed}|{cfg.train_fraction}|{cfg.dev_fraction}|{cfg.max_examples}|" \
          f"{cfg.min_label_count}|{cfg.test_path}|{n}"
    fp = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Split(texts, y, names, train_counts, fp, notes)


def hierarchy_depth(names: list[str]) -> np.ndarray:
    """Depth of each type path (/a -> 1, /a/b -> 2); 0 for flat label names."""
    return np.asarray([n.strip("/").count("/") + 1 if n.startswith("/") else 0 for n in names], dtype=np.float32)


def is_hierarchical(names: list[str]) -> bool:
    return all(n.startswith("/") for n in names)


__all__ = ["DataConfig", "MultiLabelSet", "Split", "figer", "hierarchy_depth", "indicator", "is_hierarchical",
           "load_set", "make_split", "read_jsonl", "reuters"]
