"""Reading table images (bad ones reported, not raised), letterboxing them into the model's
square frame, and cutting cell crops for the content model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # an "oversized" image: refuse it rather than fill memory


class BadImage(ValueError):
    """An image that cannot be used (unreadable, empty, oversized); the caller counts and skips it."""


def read_image(source: str | Path | bytes) -> np.ndarray:
    """A grayscale uint8 array (H, W); BadImage with the reason otherwise."""
    try:
        if isinstance(source, (bytes, bytearray)):
            if not source:
                raise BadImage("empty image data")
            img = Image.open(io.BytesIO(source))
        else:
            p = Path(source)
            if not p.is_file():
                raise BadImage(f"no such file: {p}")
            if p.stat().st_size == 0:
                raise BadImage(f"empty file: {p}")
            img = Image.open(p)
        w, h = img.size
        if w == 0 or h == 0:
            raise BadImage("image has zero width or height")
        if w * h > MAX_PIXELS:
            raise BadImage(f"image is {w}x{h} pixels, more than the {MAX_PIXELS:,} allowed")
        return np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise BadImage(f"cannot read image: {err}") from None


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Scale the image to fit a size x size white canvas at the top left; returns (canvas, scale)
    where model-frame coordinates are image coordinates times scale."""
    h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    canvas = np.full((size, size), 255, np.uint8)
    canvas[:nh, :nw] = small
    return canvas, scale


def crop_cell(image: np.ndarray, box, height: int, width: int, margin: int = 2) -> np.ndarray:
    """The cell's text box (x1, y1, x2, y2 in image pixels) with a margin, resized to height x width
    keeping its aspect (white padding on the right)."""
    h, w = image.shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, x1 - margin), max(0, y1 - margin)
    x2, y2 = min(w, max(x2 + margin, x1 + 1)), min(h, max(y2 + margin, y1 + 1))
    piece = image[y1:y2, x1:x2]
    if piece.size == 0:
        return np.full((height, width), 255, np.uint8)
    ph, pw = piece.shape
    scale = min(height / ph, width / pw)
    nh, nw = max(1, round(ph * scale)), max(1, round(pw * scale))
    small = np.asarray(Image.fromarray(piece).resize((nw, nh), Image.BILINEAR))
    canvas = np.full((height, width), 255, np.uint8)
    canvas[:nh, :nw] = small
    return canvas


__all__ = ["BadImage", "MAX_PIXELS", "crop_cell", "letterbox", "read_image"]
