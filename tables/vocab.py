"""Token ids. The table model has one vocabulary for both of its tasks (structure tokens after
<struct>, integer box coordinates in the model frame after <bbox>); the content model reads
characters. Decoding is restricted to each task's tokens (`allowed_mask`)."""

from __future__ import annotations

import string

import torch

from tables.structure import CELL_OPEN, CLOSE_EMPTY, CLOSE_FULL, SPANS, STRUCTURE_TOKENS

PAD, EOS, BOS_STRUCT, BOS_BOX = 0, 1, 2, 3
CHARSET = string.ascii_letters + string.digits + string.punctuation + " ±–−×°µ≤≥·"


class TableVocab:
    def __init__(self, image_size: int):
        self.image_size = image_size
        self.structure = list(STRUCTURE_TOKENS)
        self.struct_offset = 4
        self.coord_offset = self.struct_offset + len(self.structure)
        self.size = self.coord_offset + image_size
        self.index = {t: i + self.struct_offset for i, t in enumerate(self.structure)}

    def encode_structure(self, tokens: list[str]) -> list[int]:
        return [BOS_STRUCT] + [self.index[t] for t in tokens] + [EOS]

    def decode_structure(self, ids) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if self.struct_offset <= i < self.coord_offset:
                out.append(self.structure[i - self.struct_offset])
        return out

    def encode_boxes(self, boxes, scale: float) -> list[int]:
        """Boxes in image pixels -> 4 coordinate tokens each in the size x size model frame."""
        ids = [BOS_BOX]
        top = self.image_size - 1
        for box in boxes:
            ids += [self.coord_offset + min(top, max(0, int(round(v * scale)))) for v in box]
        return ids + [EOS]

    def decode_boxes(self, ids, scale: float) -> list[list[float]]:
        coords = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= self.coord_offset:
                coords.append((i - self.coord_offset) / scale)
        n = len(coords) // 4
        return [coords[4 * k:4 * k + 4] for k in range(n)]

    def allowed_mask(self, task: str) -> torch.Tensor:
        """[V, V] bool: which token may follow each previous token in this task (a small grammar:
        span attributes only inside '<td', a '<td' always closed)."""
        V = self.size
        m = torch.zeros(V, V, dtype=torch.bool)
        if task == "structure":
            ids = torch.arange(self.struct_offset, self.coord_offset)
            inside = [self.index[t] for t in SPANS] + [self.index[CLOSE_FULL], self.index[CLOSE_EMPTY]]
            outside = [i for i in ids.tolist() if i not in inside]
            for prev in range(V):
                tok = self.structure[prev - self.struct_offset] if self.struct_offset <= prev < self.coord_offset else None
                if tok == CELL_OPEN or tok in SPANS:
                    m[prev, inside] = True
                else:
                    m[prev, outside] = True
                    m[prev, EOS] = True
        elif task == "boxes":
            m[:, self.coord_offset:] = True
            m[:, EOS] = True  # EOS only after whole boxes: decode() enforces the multiple of 4
        else:
            raise ValueError(f"unknown task {task!r}")
        return m


class CharVocab:
    def __init__(self, charset: str = CHARSET):
        self.chars = charset
        self.offset = 4  # PAD, EOS, BOS, UNK
        self.unk = 3
        self.size = self.offset + len(charset)
        self.index = {c: i + self.offset for i, c in enumerate(charset)}

    def encode(self, text: str) -> list[int]:
        return [BOS_STRUCT] + [self.index.get(c, self.unk) for c in text] + [EOS]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= self.offset:
                out.append(self.chars[i - self.offset])
        return "".join(out)

    def allowed_mask(self) -> torch.Tensor:
        m = torch.zeros(self.size, self.size, dtype=torch.bool)
        m[:, self.offset:] = True
        m[:, self.unk] = True
        m[:, EOS] = True
        return m


def pad_sequences(seqs: list[list[int]], length: int) -> torch.Tensor:
    out = torch.full((len(seqs), length), PAD, dtype=torch.long)
    for k, s in enumerate(seqs):
        out[k, :len(s)] = torch.tensor(s[:length])
    return out


__all__ = ["BOS_BOX", "BOS_STRUCT", "CHARSET", "CharVocab", "EOS", "PAD", "TableVocab", "pad_sequences"]
