"""TEDS / TEDS-struct on the pinned APTED, checked on PubTabNet's official example pair and on
cases small enough to work out by hand."""

import json
import re

import pytest

from tables.pubtabnet import DEFAULT_DIR
from tables.teds import levenshtein, teds, teds_struct

GT, PRED = DEFAULT_DIR / "teds_sample_gt.json", DEFAULT_DIR / "teds_sample_pred.json"


def _table(html: str) -> str:
    """The markup inside <table ...>, without the layout whitespace between tags."""
    start = html.index(">", html.index("<table")) + 1
    return re.sub(r">\s+<", "><", html[start:html.index("</table>")].strip())


def test_hand_computed_cases():
    a = "<html><body><table><tr><td>ab</td><td>x</td></tr></table></body></html>"
    b = "<html><body><table><tr><td>ac</td><td>x</td></tr></table></body></html>"
    # nodes below <table>: tr, td, td = 3; one cell renamed at Levenshtein 1 / 2
    assert teds(a, b) == pytest.approx(1 - 0.5 / 3)
    assert teds_struct(a, b) == 1.0
    c = "<html><body><table><tr><td colspan=\"2\">ab</td></tr></table></body></html>"
    # the colspan cell vs two cells: rename at cost 1 + delete one td; max(3, 2) nodes
    assert teds_struct(a, c) == pytest.approx(1 - 2 / 3)
    assert teds(a, "") == 0.0 and teds("<p>no table</p>", a) == 0.0
    assert levenshtein(list("kitten"), list("sitting")) == 3


@pytest.mark.skipif(not GT.is_file(), reason="no PubTabNet data")
def test_official_example_pair():
    gt, pred = json.loads(GT.read_text()), json.loads(PRED.read_text())
    assert set(gt) == set(pred) and len(gt) == 20
    # the smaller half of the pairs (the big ones take minutes of pure-Python APTED on 2 cores)
    keys = sorted(gt, key=lambda k: len(gt[k]["html"]))[:10]
    for k in keys:
        true, p = gt[k]["html"], pred[k]
        s, ss = teds(p, true), teds_struct(p, true)
        assert teds(true, true) == 1.0
        assert 0.0 <= s <= ss <= 1.0  # contents only add cost
        # a perfect score exactly when the two tables are the same markup
        assert (s == 1.0) == (_table(p) == _table(true)), k
    # the values this implementation gives on that half (regression pins)
    got = [round(teds(pred[k], gt[k]["html"]), 4) for k in keys]
    assert sum(v == 1.0 for v in got) >= 3 and min(got) < 0.95
