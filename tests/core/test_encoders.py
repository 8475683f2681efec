"""The embedding stage's batch function: unit rows, independent of batch composition."""

import numpy as np

from core.encoders import Embedder


def test_embeddings_are_unit_rows_and_do_not_depend_on_the_batch():
    emb = Embedder("tiny-bert", max_length=16, device="cpu")
    texts = ["a fine film", "a dull, overlong film with no point at all", "the prosecutor said"]
    together = emb({"text": np.array(texts, dtype=object)})["embedding"]
    assert together.shape == (3, 32) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    alone = np.concatenate([emb.embed([t]) for t in texts])  # padding must not leak into the mean
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_embed_all_batches_every_text_in_order():
    emb = Embedder("tiny-bert", max_length=16, device="cpu")
    texts = [f"review {i}: {'fine' if i % 2 else 'dull'} film" for i in range(7)]
    out = emb.embed_all(texts, batch_size=3, desc="embed")
    assert out.shape == (7, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, emb.embed(texts), atol=1e-5)
