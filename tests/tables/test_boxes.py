"""The joint alignment on structure and box outputs that disagree on the number of cells, and AP50."""

import numpy as np
import pytest

from tables.boxes import _bands, align_boxes, average_precision_50, iou
from tables.structure import parse_cells

GRID = ["<tbody>"] + ["<tr>", "<td>[]</td>", "<td>[]</td>", "<td>[]</td>", "</tr>"] * 3 + ["</tbody>"]
TRUE = [[10 + 50 * c, 10 + 30 * r, 40 + 50 * c, 25 + 30 * r] for r in range(3) for c in range(3)]


def test_agreeing_outputs_pass_through():
    boxes, info = align_boxes(parse_cells(GRID), TRUE)
    assert boxes == [list(map(float, b)) for b in TRUE]
    assert info == {"cells": 9, "boxes": 9, "dropped": 0, "filled_in": 0}


@pytest.mark.parametrize("missing", [0, 4, 8])
def test_a_missing_box_is_filled_in_from_its_row_and_column(missing):
    pred = [b for k, b in enumerate(TRUE) if k != missing]
    boxes, info = align_boxes(parse_cells(GRID), pred)
    assert len(boxes) == 9 and info["filled_in"] == 1 and info["dropped"] == 0
    for k in range(9):
        if k != missing:
            assert boxes[k] == list(map(float, TRUE[k]))  # every other cell keeps its own box
    assert iou(boxes[missing], TRUE[missing]) > 0.9


def test_an_extra_box_is_dropped_and_the_rest_stay_matched():
    spurious = [12, 70, 38, 78]  # between rows 1 and 2, under the first column
    pred = TRUE[:5] + [spurious] + TRUE[5:]
    boxes, info = align_boxes(parse_cells(GRID), pred)
    assert boxes == [list(map(float, b)) for b in TRUE] and info["dropped"] == 1


def test_a_whole_missing_row_and_spans():
    tokens = ["<thead>", "<tr>", "<td", ' colspan="3"', ">[]</td>", "</tr>", "</thead>"] + GRID
    cells = parse_cells(tokens)
    header = [10, 0, 140, 8]
    pred = [header] + TRUE[:3] + TRUE[6:]  # the middle body row was not boxed
    boxes, info = align_boxes(cells, pred)
    assert len(boxes) == 10 and info["filled_in"] == 3
    assert boxes[0] == list(map(float, header)) and boxes[7] == list(map(float, TRUE[6]))
    assert all(b[1] > boxes[3][3] - 1 for b in boxes[4:7])  # filled-in boxes sit below the first body row


def test_no_boxes_or_no_cells():
    boxes, info = align_boxes(parse_cells(GRID), [])
    assert len(boxes) == 9 and info["filled_in"] == 9
    boxes, info = align_boxes(parse_cells(["<tbody>", "<tr>", "<td></td>", "</tr>", "</tbody>"]), TRUE)
    assert boxes == [] and info["dropped"] == 9


def test_ap50():
    truths = [TRUE, TRUE[:2]]
    assert average_precision_50([[(b, 1.0) for b in TRUE], [(b, 0.9) for b in TRUE[:2]]], truths) == pytest.approx(1.0)
    assert average_precision_50([[], []], truths) == 0.0
    # a confident wrong box ranked first costs precision at every recall level
    shifted = [[[x + 100 for x in TRUE[0]], 1.0]] + [(b, 0.5) for b in TRUE]
    ap = average_precision_50([shifted, [(b, 0.5) for b in TRUE[:2]]], truths)
    assert 0.5 < ap < 1.0


def test_band_ranks_have_no_gaps_and_alignment_stays_finite_on_random_boxes():
    rng = np.random.default_rng(0)
    cells = parse_cells(GRID)
    for case in range(300):
        lo = rng.uniform(0, 100, 8)
        hi = lo + rng.uniform(1, 40, 8)
        if case % 3 == 2:  # corners in the wrong order (x2 < x1), as a decoder may emit them
            lo, hi = hi, lo
        elif case % 3 == 1:  # an untrained box decoder repeats one degenerate box (x1 = x2, y1 = y2)
            lo = np.round(lo[rng.integers(0, 2, 8)])
            hi = lo.copy()
        band = _bands(np.minimum(lo, hi), np.maximum(lo, hi))
        assert set(band.tolist()) == set(range(band.max() + 1))  # every band rank is used
        boxes, _ = align_boxes(cells, np.stack([lo, lo, hi, hi], 1).tolist())
        assert len(boxes) == 9 and np.isfinite(boxes).all()
