"""The renderer's HTML against its boxes: one box and text per `[]` cell, inside the image, and
laid out in the order the structure says (rows top to bottom, columns left to right)."""

import numpy as np
import pytest

from tables.data import render_tables
from tables.render import RenderConfig, render_table
from tables.structure import parse_cells, to_html
from tables.teds import teds


CFG = RenderConfig()


@pytest.mark.parametrize("seed", range(25))
def test_every_filled_cell_has_one_box_inside_the_image_in_grid_order(seed):
    t = render_table(CFG, seed)
    cells = parse_cells(t.tokens, t.name)
    full = [c for c in cells if c.filled]
    assert len(full) == len(t.boxes) == len(t.texts) and all(t.texts)
    h, w = t.image.shape
    for x1, y1, x2, y2 in t.boxes:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert t.image[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].min() < 128  # ink inside the box
    ys = {}
    xs = {}
    for c, (x1, y1, x2, y2) in zip(full, t.boxes):
        if c.rowspan == 1:
            ys.setdefault(c.row, []).append((y1 + y2) / 2)
        if c.colspan == 1:
            xs.setdefault(c.col, []).append((x1, x2))
    rows = sorted(ys)
    for a, b in zip(rows, rows[1:]):  # every text of a higher row sits above every text of a lower one
        assert max(ys[a]) < min(ys[b])
    cols = sorted(xs)
    for a, b in zip(cols, cols[1:]):  # and columns do not overlap, left to right
        assert max(x2 for _, x2 in xs[a]) <= min(x1 for x1, _ in xs[b])
    assert teds(to_html(t.tokens, t.texts), to_html(t.tokens, t.texts)) == 1.0


def test_rendering_is_a_function_of_the_seed_and_varies_with_it():
    a, b, c = render_table(CFG, 7), render_table(CFG, 7), render_table(CFG, 8)
    assert np.array_equal(a.image, b.image) and a.tokens == b.tokens and a.boxes == b.boxes
    assert a.tokens != c.tokens or not np.array_equal(a.image.shape, c.image.shape)


def test_the_renderer_draws_spans_headers_and_empty_cells():
    tables = [render_table(CFG, s) for s in range(60)]
    tokens = [tok for t in tables for tok in t.tokens]
    assert any("rowspan" in tok for tok in tokens) and any("colspan" in tok for tok in tokens)
    assert "<thead>" in tokens and "<td></td>" in tokens


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_ray_data_renders_the_same_tables_as_one_loop(ray_session):
    par = render_tables(12, CFG, 3, "train", use_ray=True, blocks=3)
    seq = render_tables(12, CFG, 3, "train", use_ray=False)
    assert [t.tokens for t in par] == [t.tokens for t in seq]
    assert all(np.array_equal(p.image, s.image) and p.boxes == s.boxes for p, s in zip(par, seq))
    small = render_tables(5, CFG, 3, "unlabelled", use_ray=True, blocks=2, image_size=64)
    assert small.shape == (5, 64, 64) and small.dtype == np.uint8


