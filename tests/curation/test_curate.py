"""The curation job's embedding step: in the driver (embed.concurrency 0) it writes what Ray
Data's actors write, split into files that workers can share."""

import numpy as np

from curation.config import EmbedConfig
from curation.curate import write_embeddings, write_embeddings_local
from curation.sources import file_shapes, load_part, plan_shards
from tests.conftest import RAY

TEXTS = [f"review number {i}: {'good' if i % 3 else 'dull'} film, {i % 7} stars" for i in range(150)]


def _read(folder):
    parts = [p for group in plan_shards(str(folder), 1)[0] for p in group]
    rows, ids = zip(*(load_part(p) for p in parts))
    order = np.argsort(np.concatenate(ids))
    return np.concatenate(ids)[order], np.concatenate(rows)[order]


def test_driver_embeddings_are_written_in_files_workers_can_share(tmp_path):
    e = EmbedConfig(model="tiny-bert", max_length=32, batch_size=16, concurrency=0)
    folder = write_embeddings_local(TEXTS, e, tmp_path / "embeddings")
    assert not (tmp_path / "embeddings.tmp").exists()
    shapes = file_shapes(folder)
    assert len(shapes) == 150 // 16 and sum(n for _, n, _ in shapes) == 150  # one file per batch-sized block
    ids, rows = _read(folder)
    assert np.array_equal(ids, np.arange(150)) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    groups = plan_shards(str(folder), 2)[0]
    assert all(sum(p.rows for p in g) > 0 for g in groups)  # two workers each get rows


def test_driver_embeddings_equal_ray_datas(ray_session, tmp_path):
    import ray

    from core.encoders import embed_dataset

    e = EmbedConfig(model="tiny-bert", max_length=32, batch_size=16, concurrency=1, num_cpus=0.25)
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS)], override_num_blocks=4)
    ray_ids, ray_rows = _read(write_embeddings(embed_dataset(ds, e.model, e.max_length, e.batch_size, 1, 0.25),
                                               tmp_path / "ray"))
    ids, rows = _read(write_embeddings_local(TEXTS, e, tmp_path / "driver"))
    assert np.array_equal(ids, ray_ids)
    np.testing.assert_allclose(rows, ray_rows, atol=1e-5)


test_driver_embeddings_equal_ray_datas.pytestmark = RAY
