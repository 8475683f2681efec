"""The retrieval corpus: sentence splitting, an empty corpus named, the cache reused."""

import numpy as np
import pytest

from core.config import ConfigError
from core.data import few_shot
from retrieval.corpus import TRAIN_SPLIT, CorpusConfig, CorpusSource, build_corpus, corpus_sentences, split_sentences


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


def test_train_split_source_needs_the_jobs_texts():
    cfg = CorpusConfig(sources=[CorpusSource(TRAIN_SPLIT)])
    with pytest.raises(ConfigError, match="corpus.sources"):
        corpus_sentences(cfg)
    texts = ["A first review that is long enough.", "A second one, also long enough.", "A third, long enough too."]
    cfg = CorpusConfig(sources=[CorpusSource(TRAIN_SPLIT, limit=2)])
    assert corpus_sentences(cfg, {TRAIN_SPLIT: texts}) == texts[:2]


def test_train_split_pool_leaves_out_labelled_and_test_texts():
    from core.data import DataConfig, load_splits
    from retrieval.experiment import RefusionConfig, corpus_pools

    cfg = RefusionConfig(seeds=[1, 2], per_class=4, data=DataConfig(name="rotten_tomatoes", max_train=300, max_test=50))
    train, test = load_splits(cfg.data)
    pool = corpus_pools(cfg, train, test)[TRAIN_SPLIT]
    labelled = {t for seed in cfg.seeds for part in few_shot(train, cfg.per_class, seed) for t in part.texts}
    assert 16 < len(labelled) <= 2 * 2 * 2 * 4  # seeds x (train, dev) x classes x per_class; seeds may share one
    assert not set(pool) & (labelled | set(test.texts))
    assert set(pool) == set(train.texts) - labelled - set(test.texts)
