"""The peer: rapid_table 0.3.0 (PaddleOCR's SLANet-plus structure model as ONNX) with
rapidocr_onnxruntime 1.4.4 for the text, run on the same images; both ship their models in
their wheels, so this runs offline."""

from __future__ import annotations

import time

import numpy as np

from core.runs import progress
from tables.render import Table


def rapid_table_available() -> bool:
    try:
        import rapid_table  # noqa: F401
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def run_rapid_table(tables: list[Table]) -> list[dict]:
    """HTML and seconds per table (OCR + structure + matching, as one call)."""
    from rapid_table import RapidTable

    engine = RapidTable()
    out = []
    for t in progress(tables, desc="rapid_table"):
        bgr = np.repeat(t.image[:, :, None], 3, axis=2)
        t0 = time.perf_counter()
        try:
            html, _, _ = engine(bgr)
        except Exception as err:  # noqa: BLE001 - e.g. no text found: an empty answer, counted
            html = ""
            out.append({"name": t.name, "html": html, "seconds": time.perf_counter() - t0, "error": str(err)})
            continue
        out.append({"name": t.name, "html": html, "seconds": time.perf_counter() - t0})
    return out


__all__ = ["rapid_table_available", "run_rapid_table"]
