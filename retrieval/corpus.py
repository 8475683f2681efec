"""The retrieval corpus: sentences from text pools, embedded once (Ray Data across workers) and
saved with their FAISS index in a cache folder named by what they depend on, then reused."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config import ConfigError, require
from core.data import load_texts
from core.models import check_model_name
from core.runs import atomic_write
from retrieval.index import IndexConfig, build_index, fingerprint, load_index, save_index

log = logging.getLogger("tailor.retrieval")

# A sentence ends at . ! ? before a capital, digit or quote, except after titles and initials.
_SENTENCE_END = re.compile(r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!Mrs\.)(?<!\bSt\.)(?<!\bJr\.)(?<!\bvs\.)"
                           r"(?<!\b[A-Z]\.)(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


# A source naming the job's own training split, read without its labels. Only the job knows its
# split, so it hands these texts in (without its labelled examples and without any test text).
TRAIN_SPLIT = "train_split"


@dataclass
class CorpusSource:
    name: str  # a text pool (core.data.TEXT_POOLS), TRAIN_SPLIT, a .csv/.jsonl file or a HF dataset
    text_column: str = "text"
    limit: int | None = None  # texts taken from the pool (before sentence splitting)


@dataclass
class CorpusConfig:
    sources: list[CorpusSource] = field(default_factory=lambda: [
        CorpusSource("halueval_qa", limit=3000), CorpusSource("halueval_dialogue", limit=2000),
        CorpusSource("halueval_summarization", limit=300), CorpusSource("rotten_tomatoes_plots")])
    min_chars: int = 20  # shorter fragments carry no content worth retrieving
    max_sentences: int | None = 40000
    encoder: str = "minilm"
    max_length: int = 64
    batch_size: int = 128
    concurrency: int = 1  # embedding actors
    index: IndexConfig = field(default_factory=IndexConfig)
    cache_dir: str = "runs/retrieval-cache"

    def validate(self) -> None:
        require(len(self.sources) > 0, "sources", "name at least one text pool")
        check_model_name(self.encoder, key="encoder")
        require(self.max_sentences is None or self.max_sentences > 0, "max_sentences",
                f"must be > 0 or null, got {self.max_sentences}")


def split_sentences(text: str, min_chars: int) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= min_chars]


def _source_texts(src: CorpusSource, pools: dict[str, list[str]]) -> list[str]:
    if src.name in pools:
        return pools[src.name][: src.limit]
    if src.name == TRAIN_SPLIT:
        raise ConfigError("corpus.sources", f"{TRAIN_SPLIT!r} is the job's training split; only a job that "
                                            "has one (refusion) can use it")
    return load_texts(src.name, src.text_column, src.limit, key=f"corpus.sources.{src.name}")


def corpus_sentences(cfg: CorpusConfig, pools: dict[str, list[str]] | None = None) -> list[str]:
    """Sentences of every source, in order, without duplicates, capped at max_sentences.

    `pools` gives the texts of sources the caller owns (TRAIN_SPLIT), by name.
    """
    seen: set[str] = set()
    out: list[str] = []
    for src in cfg.sources:
        for text in _source_texts(src, pools or {}):
            for s in split_sentences(text, cfg.min_chars):
                if s not in seen:
                    seen.add(s)
                    out.append(s)
    require(len(out) > 0, "corpus.sources", "the corpus is empty: no sentence of at least "
                                            f"{cfg.min_chars} characters in {', '.join(s.name for s in cfg.sources)}")
    return out[: cfg.max_sentences] if cfg.max_sentences is not None else out


@dataclass
class Corpus:
    sentences: list[str]
    embeddings: np.ndarray  # n x D, unit rows
    index: object  # faiss index
    fingerprint: str


def _embed(sentences: list[str], cfg: CorpusConfig) -> np.ndarray:
    import ray

    if ray.is_initialized():  # across Ray Data workers
        from core.encoders import embed_dataset

        ds = ray.data.from_items([{"id": i, "text": s} for i, s in enumerate(sentences)])
        ds = embed_dataset(ds, cfg.encoder, cfg.max_length, cfg.batch_size, cfg.concurrency)
        rows = sorted(ds.select_columns(["id", "embedding"]).iter_rows(), key=lambda r: r["id"])
        return np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])
    from core.encoders import Embedder

    return Embedder(cfg.encoder, cfg.max_length).embed_all(sentences, cfg.batch_size)


def build_corpus(cfg: CorpusConfig, pools: dict[str, list[str]] | None = None) -> Corpus:
    """Load the cached corpus for this config, or build and cache it (atomically, as one folder)."""
    sentences = corpus_sentences(cfg, pools)
    fp = fingerprint(sentences, encoder=cfg.encoder, max_length=cfg.max_length, index=asdict(cfg.index))
    folder = Path(cfg.cache_dir) / f"corpus-{fp}"
    if (folder / "index.faiss").is_file():
        log.info("corpus: reusing %s (%d sentences)", folder, len(sentences))
        return Corpus(sentences, np.load(folder / "embeddings.npy"), load_index(folder / "index.faiss"), fp)
    log.info("corpus: embedding %d sentences with %s", len(sentences), cfg.encoder)
    emb = _embed(sentences, cfg)
    index = build_index(emb, cfg.index)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "embeddings.npy", emb)
    atomic_write(tmp / "sentences.jsonl", "".join(json.dumps(s) + "\n" for s in sentences))
    save_index(index, tmp / "index.faiss")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Corpus(sentences, emb, index, fp)


__all__ = ["TRAIN_SPLIT", "Corpus", "CorpusConfig", "CorpusSource", "build_corpus", "corpus_sentences", "split_sentences"]
