"""Inference: structure, then boxes (the same encoder pass), the joint alignment, then content
per cell crop, filled into the `[]` slots -> HTML. Batched greedy decoding with the KV cache."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from tables.boxes import align_boxes
from tables.data import Prepared
from tables.images import crop_cell
from tables.model import EncoderDecoder, greedy_decode
from tables.structure import parse_cells, repair, to_html
from tables.vocab import BOS_BOX, BOS_STRUCT, CharVocab, TableVocab


@dataclass
class Recognizer:
    table_model: EncoderDecoder
    vocab: TableVocab
    max_structure_len: int
    max_box_len: int
    content_model: EncoderDecoder | None = None
    chars: CharVocab | None = None
    crop_height: int = 32
    crop_width: int = 128
    max_content_len: int = 24
    batch_size: int = 32
    device: str = "cpu"

    def __post_init__(self):
        self._struct_mask = self.vocab.allowed_mask("structure")
        self._box_mask = self.vocab.allowed_mask("boxes")
        self._char_mask = self.chars.allowed_mask() if self.chars else None

    @torch.no_grad()
    def recognize(self, prep: Prepared) -> list[dict]:
        out: list[dict] = []
        for lo in range(0, len(prep.tables), self.batch_size):
            t0 = time.perf_counter()
            images = torch.from_numpy(prep.images[lo:lo + self.batch_size]).to(self.device)
            self.table_model.eval()
            memory = self.table_model.encoder(images)
            s_tok, _ = greedy_decode(self.table_model, images, BOS_STRUCT, self._struct_mask, self.max_structure_len,
                                     memory=memory)
            b_tok, b_lp = greedy_decode(self.table_model, images, BOS_BOX, self._box_mask, self.max_box_len,
                                        eos_every=4, memory=memory)
            batch = []
            for k in range(images.shape[0]):
                i = lo + k
                scale = float(prep.scales[i])
                tokens = repair(self.vocab.decode_structure(s_tok[k, 1:].tolist()))
                cells = parse_cells(tokens, prep.tables[i].name)
                raw = self.vocab.decode_boxes(b_tok[k, 1:].tolist(), scale)
                lp = b_lp[k].cpu().numpy()
                scores = [float(np.exp(lp[4 * q:4 * q + 4].mean())) for q in range(len(raw))]
                boxes, info = align_boxes(cells, raw)
                batch.append({"name": prep.tables[i].name, "tokens": tokens, "raw_boxes": list(zip(raw, scores)),
                              "boxes": boxes, "align": info})
            self._read_contents(prep, lo, batch)
            seconds = (time.perf_counter() - t0) / max(1, len(batch))
            for rec in batch:
                rec["html"] = to_html(rec["tokens"], rec["texts"])
                rec["seconds"] = seconds
            out += batch
        return out

    def _read_contents(self, prep: Prepared, lo: int, batch: list[dict]) -> None:
        if self.content_model is None:
            for rec in batch:
                rec["texts"] = [""] * len(rec["boxes"])
            return
        crops, owner = [], []
        for k, rec in enumerate(batch):
            image = prep.tables[lo + k].image
            for box in rec["boxes"]:
                crops.append(crop_cell(image, box, self.crop_height, self.crop_width))
                owner.append(k)
            rec["texts"] = []
        self.content_model.eval()
        for c0 in range(0, len(crops), 256):
            x = torch.from_numpy(np.stack(crops[c0:c0 + 256])).to(self.device)
            toks, _ = greedy_decode(self.content_model, x, BOS_STRUCT, self._char_mask, self.max_content_len)
            for row, k in zip(toks[:, 1:].tolist(), owner[c0:c0 + 256]):
                batch[k]["texts"].append(self.chars.decode(row))


__all__ = ["Recognizer"]
