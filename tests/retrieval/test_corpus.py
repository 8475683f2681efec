"""The retrieval corpus: sentence splitting, an empty corpus named, the cache reused."""

import numpy as np
import pytest

from core.config import ConfigError
from retrieval.corpus import CorpusConfig, CorpusSource, build_corpus, corpus_sentences, split_sentences


def test_sentences_split_at_sentence_ends_only():
    text = "Dr. Who aired in 1963. J. K. Rowling wrote! Did it end? Yes. The 3.5 rating held."
    assert split_sentences(text, 1) == ["Dr. Who aired in 1963.", "J. K. Rowling wrote!", "Did it end?", "Yes.",
                                        "The 3.5 rating held."]
    assert split_sentences(text, 12) == ["Dr. Who aired in 1963.", "J. K. Rowling wrote!", "The 3.5 rating held."]


def test_empty_corpus_is_named():
    cfg = CorpusConfig(sources=[CorpusSource("halueval_qa", limit=3)], min_chars=100_000)
    with pytest.raises(ConfigError, match="the corpus is empty"):
        corpus_sentences(cfg)


def test_corpus_is_built_once_and_reused(tmp_path):
    cfg = CorpusConfig(sources=[CorpusSource("halueval_qa", limit=20), CorpusSource("rotten_tomatoes_plots", limit=5)],
                       encoder="tiny-bert", max_length=16, cache_dir=str(tmp_path))
    first = build_corpus(cfg)
    n = len(first.sentences)
    assert n == len(set(first.sentences)) > 20 and first.embeddings.shape == (n, 32)
    np.testing.assert_allclose(np.linalg.norm(first.embeddings, axis=1), 1.0, rtol=1e-5)
    (folder,) = tmp_path.iterdir()
    stamp = (folder / "embeddings.npy").stat().st_mtime_ns
    again = build_corpus(cfg)
    assert (folder / "embeddings.npy").stat().st_mtime_ns == stamp and again.fingerprint == first.fingerprint
    assert again.index.ntotal == n
