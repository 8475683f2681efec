"""Datasets for the job: synthetic tables rendered in parallel with Ray Data (or in-process), and
the arrays the training loops take (letterboxed images, token rows, cell crops)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.seeding import derive_seed
from tables.images import BadImage, crop_cell, letterbox, read_image
from tables.render import RenderConfig, Table, png_bytes, render_table
from tables.structure import StructureError, parse_cells
from tables.vocab import CharVocab, TableVocab, pad_sequences

log = logging.getLogger("tailor.tables")


def _render_rows(batch: dict, cfg: RenderConfig, seed: int, role: str, image_size: int | None) -> dict:
    out: dict[str, list] = {"id": [], "png": [], "tokens": [], "boxes": [], "texts": [], "small": []}
    for i in batch["id"]:
        t = render_table(cfg, derive_seed(seed, role, int(i)), name=f"{role}-{int(i)}")
        out["id"].append(int(i))
        out["tokens"].append("\x1f".join(t.tokens))
        out["boxes"].append(np.asarray(t.boxes, np.float32).ravel())
        out["texts"].append("\x1f".join(t.texts))
        if image_size is None:
            out["png"].append(png_bytes(t.image))
            out["small"].append(np.zeros((1, 1), np.uint8))
        else:  # unlabelled: only the letterboxed image is kept
            out["png"].append(b"")
            out["small"].append(letterbox(t.image, image_size)[0])
    return {k: (np.stack(v) if k == "small" and image_size is not None else np.asarray(v, dtype=object))
            for k, v in out.items()}


def render_tables(n: int, cfg: RenderConfig, seed: int, role: str, use_ray: bool = True, blocks: int = 8,
                  image_size: int | None = None):
    """n tables for `role` ('unlabelled', 'train', 'test'); each a pure function of (seed, role, i),
    so Ray Data's parallel blocks give the same tables as one loop. With image_size, returns only
    the letterboxed images [n, S, S]; else the list of Tables."""
    if n == 0:
        return np.zeros((0, image_size, image_size), np.uint8) if image_size else []
    if use_ray:
        import ray.data

        ds = ray.data.range(n, override_num_blocks=min(blocks, n)).map_batches(
            _render_rows, fn_kwargs={"cfg": cfg, "seed": seed, "role": role, "image_size": image_size},
            batch_size=64, batch_format="numpy")
        rows = sorted(ds.take_all(), key=lambda r: r["id"])
    else:
        res = _render_rows({"id": np.arange(n)}, cfg, seed, role, image_size)
        rows = [{k: res[k][j] for k in res} for j in range(n)]
    if image_size is not None:
        return np.stack([r["small"] for r in rows]).astype(np.uint8)
    tables = []
    for r in rows:
        boxes = np.asarray(r["boxes"], np.float32).reshape(-1, 4).tolist()
        texts = r["texts"].split("\x1f") if r["texts"] else []
        tables.append(Table(f"{role}-{r['id']}", read_image(bytes(r["png"])), r["tokens"].split("\x1f"), boxes, texts))
    return tables


@dataclass
class Prepared:
    """A set of tables ready for the model: letterboxed images, scales, token rows."""
    tables: list[Table]
    images: np.ndarray  # [N, S, S] uint8
    scales: np.ndarray  # model frame = image pixels * scale


def prepare(tables: list[Table], image_size: int, bad: list[tuple[str, str]] | None = None) -> Prepared:
    """Letterbox each table; one that is empty is reported in `bad` (name, reason) and skipped."""
    keep, imgs, scales = [], [], []
    for t in tables:
        if t.image.size == 0 or min(t.image.shape) == 0:
            if bad is None:
                raise BadImage(f"{t.name}: empty image")
            bad.append((t.name, "empty image"))
            continue
        canvas, s = letterbox(t.image, image_size)
        keep.append(t)
        imgs.append(canvas)
        scales.append(s)
    return Prepared(keep, np.stack(imgs) if imgs else np.zeros((0, image_size, image_size), np.uint8),
                    np.asarray(scales, np.float64))


def check_table(t: Table) -> None:
    """An HTML target with unbalanced tags, or boxes outside the image, is an error naming the table."""
    cells = parse_cells(t.tokens, t.name)
    full = sum(c.filled for c in cells)
    if full != len(t.boxes):
        raise StructureError(t.name, f"{full} non-empty cells but {len(t.boxes)} boxes")
    h, w = t.image.shape
    for k, (x1, y1, x2, y2) in enumerate(t.boxes):
        if not (0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h):
            raise StructureError(t.name, f"cell box {k} {[x1, y1, x2, y2]} lies outside the {w}x{h} image")


def seq2seq_rows(prep: Prepared, vocab: TableVocab, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Two training rows per table (structure, boxes): (image index [2N], tokens [2N, length])."""
    seqs, index = [], []
    for i, t in enumerate(prep.tables):
        check_table(t)
        seqs.append(vocab.encode_structure(t.tokens))
        seqs.append(vocab.encode_boxes(t.boxes, prep.scales[i]))
        index += [i, i]
    return np.asarray(index), pad_sequences(seqs, length).numpy()


def content_rows(tables: list[Table], chars: CharVocab, height: int, width: int, length: int,
                 limit: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cell crops from the true boxes and their character rows (a seeded subset of `limit`)."""
    crops, seqs = [], []
    for t in tables:
        for box, text in zip(t.boxes, t.texts):
            crops.append(crop_cell(t.image, box, height, width))
            seqs.append(chars.encode(text[:length - 2]))
    if limit is not None and len(crops) > limit:
        keep = np.sort(np.random.default_rng(derive_seed(seed, "crops")).choice(len(crops), limit, replace=False))
        crops, seqs = [crops[k] for k in keep], [seqs[k] for k in keep]
    return np.stack(crops), pad_sequences(seqs, length).numpy()


__all__ = ["Prepared", "check_table", "content_rows", "prepare", "render_tables", "seq2seq_rows"]
