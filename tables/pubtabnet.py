"""PubTabNet's JSONL (the 20 examples in shared/data/pubtabnet, or the full release given its
path): each line becomes a Table in the `<td>[]</td>` form with boxes and texts, plus the HTML
ground truth exactly as PubTabNet's evaluation writes it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tables.images import BadImage, read_image
from tables.render import Table
from tables.structure import StructureError, pubtabnet_html, pubtabnet_to_unitable

# the project's shared data folder (shared/data/README.md); TAILOR_SHARED_DATA points elsewhere
DEFAULT_DIR = Path(os.environ.get("TAILOR_SHARED_DATA", "/work/shared/data")) / "pubtabnet"


@dataclass
class Example:
    table: Table
    html: str  # ground truth with contents, for TEDS


def find_jsonl(root: str | Path) -> Path:
    root = Path(root)
    if root.is_file():
        return root
    for name in ("PubTabNet_Examples.jsonl", "PubTabNet_2.0.0.jsonl", "PubTabNet_2.0.0_val.jsonl"):
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob("*.jsonl"))
    if not found:
        raise FileNotFoundError(f"no PubTabNet .jsonl under {root}")
    return found[0]


def _image_path(root: Path, rec: dict) -> Path:
    # the examples keep images in images/; the full release in <split>/
    for sub in ("images", rec.get("split", ""), ""):
        p = root / sub / rec["filename"]
        if p.is_file():
            return p
    return root / "images" / rec["filename"]


def load_pubtabnet(root: str | Path, split: str | None = None, limit: int | None = None,
                   bad: list[tuple[str, str]] | None = None) -> list[Example]:
    """Examples from the JSONL under `root` (a folder or the .jsonl itself). `split` keeps one split
    ('train', 'val'). An unreadable, empty or oversized image is appended to `bad` as (name,
    reason) and skipped; a malformed structure or a box outside its image raises, naming it."""
    path = find_jsonl(root)
    folder = path.parent
    out: list[Example] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            if split is not None and rec.get("split") != split:
                continue
            name = rec.get("filename", f"{path.name}:{line_no}")
            structure, cells = rec["html"]["structure"]["tokens"], rec["html"]["cells"]
            tokens, filled = pubtabnet_to_unitable(structure, cells, name)
            try:
                image = read_image(_image_path(folder, rec))
            except BadImage as err:
                if bad is None:
                    raise
                bad.append((name, str(err)))
                continue
            boxes = [list(map(float, cells[i]["bbox"])) for i in filled]
            check_boxes(name, boxes, image.shape)
            texts = ["".join(cells[i]["tokens"]) for i in filled]
            out.append(Example(Table(name, image, tokens, boxes, texts), pubtabnet_html(structure, cells)))
            if limit is not None and len(out) >= limit:
                break
    return out


def check_boxes(name: str, boxes: list[list[float]], shape: tuple[int, int]) -> None:
    h, w = shape
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        if not (0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h):
            raise StructureError(name, f"cell box {k} {[x1, y1, x2, y2]} lies outside the {w}x{h} image")


__all__ = ["DEFAULT_DIR", "Example", "check_boxes", "find_jsonl", "load_pubtabnet"]
