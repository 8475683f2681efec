"""PubTabNet -> `<td>[]</td>` conversion, the structure checks, repair, and the tokenizer round trip."""

import json

import numpy as np
import pytest

from tables.pubtabnet import DEFAULT_DIR, load_pubtabnet
from tables.structure import StructureError, parse_cells, pubtabnet_to_unitable, repair, to_html
from tables.teds import teds_struct
from tables.vocab import CharVocab, TableVocab

pytestmark = pytest.mark.skipif(not (DEFAULT_DIR / "PubTabNet_Examples.jsonl").is_file(), reason="no PubTabNet data")


def test_the_20_examples_convert_with_one_box_per_filled_cell_and_keep_their_structure():
    examples = load_pubtabnet(DEFAULT_DIR)
    assert len(examples) == 20
    for e in examples:
        t = e.table
        cells = parse_cells(t.tokens, t.name)
        assert sum(c.filled for c in cells) == len(t.boxes) == len(t.texts)
        # the converted structure, filled back in, has the ground truth's tree exactly
        assert teds_struct(to_html(t.tokens, t.texts), e.html) == 1.0


def test_unbalanced_tags_and_boxes_outside_the_image_are_errors_naming_the_example(tmp_path):
    with pytest.raises(StructureError, match="table-9.*unbalanced"):
        parse_cells(["<tbody>", "<tr>", "<td></td>", "</tbody>"], "table-9")
    with pytest.raises(StructureError, match="x.png.*unbalanced"):
        pubtabnet_to_unitable(["<tr>", "<td>", "<td>", "</td>", "</tr>"], [{"tokens": []}, {"tokens": []}], "x.png")
    rec = json.loads((DEFAULT_DIR / "PubTabNet_Examples.jsonl").read_text().splitlines()[0])
    rec["html"]["cells"][0]["bbox"] = [0, 0, 99999, 5]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / rec["filename"]).write_bytes((DEFAULT_DIR / "images" / rec["filename"]).read_bytes())
    (tmp_path / "bad.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(StructureError, match=rf"{rec['filename']}.*outside"):
        load_pubtabnet(tmp_path / "bad.jsonl")


def test_unreadable_and_empty_images_are_counted_and_skipped(tmp_path):
    lines = (DEFAULT_DIR / "PubTabNet_Examples.jsonl").read_text().splitlines()[:3]
    (tmp_path / "images").mkdir()
    recs = [json.loads(x) for x in lines]
    (tmp_path / "images" / recs[0]["filename"]).write_bytes(b"")  # empty
    (tmp_path / "images" / recs[1]["filename"]).write_bytes(b"not a png")  # unreadable
    (tmp_path / "images" / recs[2]["filename"]).write_bytes((DEFAULT_DIR / "images" / recs[2]["filename"]).read_bytes())
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    bad = []
    ok = load_pubtabnet(tmp_path, bad=bad)
    assert [e.table.name for e in ok] == [recs[2]["filename"]]
    assert [n for n, _ in bad] == [recs[0]["filename"], recs[1]["filename"]]
    assert "empty" in bad[0][1] and "cannot read" in bad[1][1]


def test_repair_turns_any_token_soup_into_a_well_formed_structure():
    vocab = TableVocab(64)
    rng = np.random.default_rng(0)
    for _ in range(200):
        soup = [vocab.structure[i] for i in rng.integers(0, len(vocab.structure), 30)]
        parse_cells(repair(soup))  # raises if not well formed
    good = ["<thead>", "<tr>", "<td", ' colspan="2"', ">[]</td>", "</tr>", "</thead>"]
    assert repair(good) == good


def test_tokenizer_round_trip():
    vocab = TableVocab(128)
    tokens = ["<thead>", "<tr>", "<td", ' rowspan="2"', ' colspan="3"', ">[]</td>", "<td></td>", "</tr>", "</thead>"]
    ids = vocab.encode_structure(tokens)
    assert vocab.decode_structure(ids[1:]) == tokens
    boxes = [[10.0, 4.0, 50.0, 20.0], [0.0, 0.0, 255.0, 250.0]]
    got = vocab.decode_boxes(vocab.encode_boxes(boxes, 0.5)[1:], 0.5)
    assert np.allclose(got, boxes, atol=1 / 0.5)  # one model-frame pixel
    chars = CharVocab()
    assert chars.decode(chars.encode("12.5 ± 0.3 Total")[1:]) == "12.5 ± 0.3 Total"
