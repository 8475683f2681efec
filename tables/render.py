"""Synthetic tables drawn with PIL: random structures with row and column spans, header rows,
border styles, fonts, padding, empty cells, words and numbers. Each table comes with its image,
its structure tokens (`<td></td>`/`<td>[]</td>` form), one text box per non-empty cell and the
cell texts, all from one seed, so a table is a pure function of (config, seed)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tables.structure import cell_tokens

WORDS = ("total", "mean", "age", "sex", "male", "female", "group", "control", "dose", "time", "rate", "score",
         "value", "model", "test", "train", "year", "cases", "ratio", "n", "p", "SD", "CI", "risk", "level",
         "type", "A", "B", "yes", "no", "week", "day", "high", "low", "base", "size")
BORDERS = ("grid", "rules", "outer", "none")


@dataclass
class RenderConfig:
    min_rows: int = 2
    max_rows: int = 6
    min_cols: int = 2
    max_cols: int = 5
    span_prob: float = 0.12  # chance that a cell starts a merged block
    max_span: int = 3
    empty_prob: float = 0.15
    header_prob: float = 0.6
    font_sizes: list[int] = field(default_factory=lambda: [11, 13, 15])
    paddings: list[int] = field(default_factory=lambda: [3, 5, 8])


@lru_cache(maxsize=None)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


@dataclass
class Table:
    """One table: image (H, W) uint8 grayscale, structure tokens, one box (x1, y1, x2, y2) in image
    pixels and one text per `[]` cell in reading order."""
    name: str
    image: np.ndarray
    tokens: list[str]
    boxes: list[list[float]]
    texts: list[str]


def _text(rng: np.random.Generator) -> str:
    kind = rng.integers(4)
    if kind == 0:
        return str(int(rng.integers(0, 1000)))
    if kind == 1:
        return f"{rng.uniform(-50, 100):.{int(rng.integers(1, 3))}f}"
    if kind == 2:
        return f"{int(rng.integers(0, 100))}%" if rng.random() < 0.5 else f"{rng.uniform(0, 9):.1f} ± {rng.uniform(0, 2):.1f}"
    n = int(rng.integers(1, 3))
    return " ".join(str(rng.choice(WORDS)) for _ in range(n)).capitalize()


def _layout(rng: np.random.Generator, cfg: RenderConfig):
    """A random grid of merged blocks: list of (row, col, rowspan, colspan) in reading order; no
    block crosses the header's lower edge (it would cross </thead>)."""
    rows = int(rng.integers(cfg.min_rows, cfg.max_rows + 1))
    cols = int(rng.integers(cfg.min_cols, cfg.max_cols + 1))
    header_rows = 1 if rng.random() < cfg.header_prob and rows > 2 else 0
    taken = np.zeros((rows, cols), bool)
    blocks = []
    for r in range(rows):
        for c in range(cols):
            if taken[r, c]:
                continue
            rs = cs = 1
            if rng.random() < cfg.span_prob:
                if rng.random() < 0.5:
                    cs = int(rng.integers(2, cfg.max_span + 1))
                else:
                    rs = int(rng.integers(2, cfg.max_span + 1))
                rs, cs = min(rs, rows - r), min(cs, cols - c)
                if r < header_rows:
                    rs = min(rs, header_rows - r)
                while cs > 1 and taken[r, c:c + cs].any():
                    cs -= 1
                while rs > 1 and taken[r:r + rs, c:c + cs].any():
                    rs -= 1
            taken[r:r + rs, c:c + cs] = True
            blocks.append((r, c, rs, cs))
    return rows, cols, header_rows, blocks


def render_table(cfg: RenderConfig, seed: int, name: str | None = None) -> Table:
    rng = np.random.default_rng(seed)
    rows, cols, header_rows, blocks = _layout(rng, cfg)
    size = int(rng.choice(cfg.font_sizes))
    pad = int(rng.choice(cfg.paddings))
    font_name = str(rng.choice(FONTS))
    font, bold = _font(font_name, size), _font(font_name.replace(".ttf", "-Bold.ttf"), size)
    border = str(rng.choice(BORDERS))
    texts = []
    for (r, c, rs, cs) in blocks:
        empty = rng.random() < cfg.empty_prob and r >= header_rows
        texts.append("" if empty else _text(rng))
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))

    def extent(text: str, f) -> tuple[int, int, int, int]:
        return measure.textbbox((0, 0), text, font=f)

    # column widths and row heights from the single-span cells; spans only widen when needed
    col_w = np.full(cols, 2 * pad + size, float)
    row_h = np.full(rows, 2 * pad + size, float)
    for (r, c, rs, cs), t in zip(blocks, texts):
        f = bold if r < header_rows else font
        x0, y0, x1, y1 = extent(t, f) if t else (0, 0, 0, 0)
        w, h = x1 + 2 * pad, size + 2 * pad
        if cs == 1:
            col_w[c] = max(col_w[c], w)
        if rs == 1:
            row_h[r] = max(row_h[r], h)
    for (r, c, rs, cs), t in zip(blocks, texts):
        if cs > 1 and t:
            need = extent(t, bold if r < header_rows else font)[2] + 2 * pad
            if col_w[c:c + cs].sum() < need:
                col_w[c:c + cs] += (need - col_w[c:c + cs].sum()) / cs
    margin = int(rng.integers(4, 16))
    xs = np.concatenate([[0], np.cumsum(col_w)]).round().astype(int) + margin
    ys = np.concatenate([[0], np.cumsum(row_h)]).round().astype(int) + margin
    img = Image.new("L", (int(xs[-1] + margin), int(ys[-1] + margin)), 255)
    draw = ImageDraw.Draw(img)
    if header_rows and rng.random() < 0.4:
        draw.rectangle([xs[0], ys[0], xs[-1], ys[header_rows]], fill=225)
    ink = int(rng.integers(0, 60))
    boxes = []
    for (r, c, rs, cs), t in zip(blocks, texts):
        x_left, x_right, y_top, y_bot = xs[c], xs[c + cs], ys[r], ys[r + rs]
        if border == "grid":
            draw.rectangle([x_left, y_top, x_right, y_bot], outline=ink)
        if not t:
            continue
        f = bold if r < header_rows else font
        bx0, by0, bx1, by1 = extent(t, f)
        numeric = t[0].isdigit() or t[0] == "-"
        if numeric and r >= header_rows:
            x = x_right - pad - bx1
        elif cs > 1 or r < header_rows:
            x = (x_left + x_right - bx1) // 2
        else:
            x = x_left + pad
        y = (y_top + y_bot - size) // 2
        draw.text((x, y), t, fill=ink, font=f)
        boxes.append([float(x + bx0), float(y + by0), float(x + bx1), float(y + by1)])
    if border in ("rules", "outer"):
        draw.rectangle([xs[0], ys[0], xs[-1], ys[-1]], outline=ink) if border == "outer" else None
        if border == "rules":
            for yy in (ys[0], ys[-1]) + ((ys[header_rows],) if header_rows else ()):
                draw.line([xs[0], yy, xs[-1], yy], fill=ink, width=1)
    tokens: list[str] = []
    for section, lo, hi in (("thead", 0, header_rows), ("tbody", header_rows, rows)):
        if lo == hi:
            continue
        tokens.append(f"<{section}>")
        for r in range(lo, hi):
            tokens.append("<tr>")
            for (br, c, rs, cs), t in zip(blocks, texts):
                if br == r:
                    tokens += cell_tokens(rs, cs, bool(t))
            tokens.append("</tr>")
        tokens.append(f"</{section}>")
    return Table(name or f"synthetic-{seed}", np.asarray(img), tokens, boxes, [t for t in texts if t])


def max_structure_tokens(cfg: RenderConfig) -> int:
    """An upper bound on a rendered table's structure length (for the config's sequence checks)."""
    return 4 + cfg.max_rows * 2 + cfg.max_rows * cfg.max_cols * 4


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["RenderConfig", "Table", "max_structure_tokens", "png_bytes", "render_table"]
