"""Cell boxes: the joint alignment that makes the box branch agree with the structure branch on
the number of cells (UniTable's release has none), and box AP50 (COCO-style, 101-point)."""

from __future__ import annotations

import numpy as np

from tables.structure import Cell


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _bands(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Group intervals along one axis into bands (rows or columns); returns each one's band rank.
    Bands come from the ordinary intervals merged where they overlap; a wide one (a spanning
    cell's text) would merge every band it crosses, so it only joins the band at its centre."""
    size = hi - lo
    core = np.nonzero(size <= 1.5 * np.median(size))[0]
    spans: list[list[float]] = []
    for k in core[np.argsort(lo[core])]:
        if spans and lo[k] < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi[k])
        else:
            spans.append([lo[k], hi[k]])
    mids = np.array([(a + b) / 2 for a, b in spans])
    centre = (lo + hi) / 2
    # a band that no interval lands nearest to (its centre is closer to a neighbour's) is dropped
    return np.unique(np.abs(centre[:, None] - mids[None]).argmin(1), return_inverse=True)[1]


def _place(lo: np.ndarray, hi: np.ndarray, band: np.ndarray) -> np.ndarray:
    centre = (lo + hi) / 2
    mids = np.array([centre[band == k].mean() for k in range(band.max() + 1)])
    span = mids.max() - mids.min()
    return (mids[band] - mids.min()) / span if span > 0 else np.zeros(len(lo))


def _norm(v: np.ndarray, span: bool = False) -> np.ndarray:
    """Positions scaled to [0, 1] (span=True), or their ranks scaled so."""
    x = (v - v.min()) if span else np.unique(v, return_inverse=True)[1].astype(float)
    return x / max(1e-9, x.max()) if x.max() > 0 else x


def align_boxes(cells: list[Cell], boxes: list[list[float]], gap: float = 0.35) -> tuple[list[list[float]], dict]:
    """One box per non-empty (`[]`) cell, in the structure's reading order.

    Both branches list cells in reading order, so the two sequences are aligned monotonically
    (Needleman-Wunsch): matching cell i to box j costs the distance between the cell's
    normalised logical row/column and the box's normalised physical row/column band; skipping
    either costs `gap`. Extra boxes are dropped; a cell left without a box gets one from the
    matched boxes of its row (vertical extent) and column (horizontal extent)."""
    full = [c for c in cells if c.filled]
    n, m = len(full), len(boxes)
    info = {"cells": n, "boxes": m, "dropped": 0, "filled_in": 0}
    if n == 0:
        info["dropped"] = m
        return [], info
    b = np.asarray(boxes, float).reshape(-1, 4)
    # a decoder may put x2 left of x1: order each box's corners first
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    r_log = _norm(np.array([c.row + (c.rowspan - 1) / 2 for c in full]), span=True)
    c_log = _norm(np.array([c.col + (c.colspan - 1) / 2 for c in full]), span=True)
    match = [-1] * n
    if m:
        # a band's place is its centre's position across the table (not its rank, which a
        # missing row would shift), matched against the cell's place in the logical grid
        r_phys = _place(b[:, 1], b[:, 3], _bands(b[:, 1], b[:, 3]))
        c_phys = _place(b[:, 0], b[:, 2], _bands(b[:, 0], b[:, 2]))
        cost = np.abs(r_log[:, None] - r_phys[None]) + np.abs(c_log[:, None] - c_phys[None])
        D = np.zeros((n + 1, m + 1))
        D[1:, 0] = gap * np.arange(1, n + 1)
        D[0, 1:] = gap * np.arange(1, m + 1)
        move = np.zeros((n + 1, m + 1), np.int8)  # 0 match, 1 skip cell, 2 skip box
        move[1:, 0], move[0, 1:] = 1, 2
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                opts = (D[i - 1, j - 1] + cost[i - 1, j - 1], D[i - 1, j] + gap, D[i, j - 1] + gap)
                k = int(np.argmin(opts))
                D[i, j], move[i, j] = opts[k], k
        i, j = n, m
        while i > 0 or j > 0:
            k = move[i, j]
            if k == 0:
                match[i - 1] = j - 1
                i, j = i - 1, j - 1
            elif k == 1:
                i -= 1
            else:
                j -= 1
    used = {j for j in match if j >= 0}
    info["dropped"] = m - len(used)
    out: list[list[float] | None] = [b[j].tolist() if j >= 0 else None for j in match]
    known = [k for k in range(n) if out[k] is not None]
    if known:
        kb = np.asarray([out[k] for k in known])
        x_lo, y_lo, x_hi, y_hi = kb[:, 0].min(), kb[:, 1].min(), kb[:, 2].max(), kb[:, 3].max()
    else:
        x_lo = y_lo = 0.0
        x_hi = y_hi = 1.0
    rows = max(c.row + c.rowspan for c in full)
    cols = max(c.col + c.colspan for c in full)
    for k in range(n):
        if out[k] is not None:
            continue
        info["filled_in"] += 1
        c = full[k]
        same_row = [out[q] for q in known if full[q].row == c.row]
        same_col = [out[q] for q in known if full[q].col == c.col]
        if same_row:
            y1, y2 = float(np.median([q[1] for q in same_row])), float(np.median([q[3] for q in same_row]))
        else:
            h = (y_hi - y_lo) / rows
            y1, y2 = y_lo + c.row * h, y_lo + (c.row + c.rowspan) * h
        if same_col:
            x1, x2 = float(np.median([q[0] for q in same_col])), float(np.median([q[2] for q in same_col]))
        else:
            w = (x_hi - x_lo) / cols
            x1, x2 = x_lo + c.col * w, x_lo + (c.col + c.colspan) * w
        out[k] = [x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)]
    return [list(map(float, o)) for o in out], info


def average_precision_50(preds: list[list[tuple[list[float], float]]], truths: list[list[list[float]]]) -> float:
    """COCO-style AP at IoU 0.5 (101-point interpolation) over a dataset: preds[i] is image i's
    list of (box, score), truths[i] its true boxes."""
    total = sum(len(t) for t in truths)
    if total == 0:
        return float("nan")
    flat = [(s, i, box) for i, p in enumerate(preds) for box, s in p]
    flat.sort(key=lambda x: -x[0])
    taken = [np.zeros(len(t), bool) for t in truths]
    tp = np.zeros(len(flat))
    for k, (_, i, box) in enumerate(flat):
        best, arg = 0.5, -1
        for g, tb in enumerate(truths[i]):
            if not taken[i][g]:
                v = iou(box, tb)
                if v >= best:
                    best, arg = v, g
        if arg >= 0:
            taken[i][arg] = True
            tp[k] = 1
    if not len(flat):
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, len(flat) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    ap = 0.0
    for r in np.linspace(0, 1, 101):
        above = precision[recall >= r]
        ap += above.max() if len(above) else 0.0
    return float(ap / 101)


__all__ = ["align_boxes", "average_precision_50", "iou"]
