"""Grounding a predicted string in the text: the text's own characters, found ignoring case and
spacing, or nothing when the text does not hold it."""

import json

import pytest

from ie.ground import ground, ground_items

WNUT = "* * submission title * * : Battle underway for return of Napoleon ' s horse Marengo to Ireland"


@pytest.mark.parametrize("text,s,want", [
    # a tokenized text (WNUT-17 writes "Napoleon ' s") against the model's untokenized answer
    (WNUT, "Napoleon's horse Marengo", "Napoleon ' s horse Marengo"),
    (WNUT, "napoleon", "Napoleon"),  # any case when no exact-case occurrence exists
    (WNUT, '"Marengo".', "Marengo"),  # quotes and punctuation the answer wrapped it in
    ("Lee met lee and Lee.", "Lee", "Lee"),
    ("New  Plymouth radar", "New Plymouth", "New  Plymouth"),
    ("张三在北京工作", "北京", "北京"),  # no spaces between words: matched anywhere
])
def test_found_as_the_text_writes_it(text, s, want):
    assert ground(text, s) == want


@pytest.mark.parametrize("text,s", [
    ("Aww shit this gonna go into overdrive now", "the name of a person, real or fictional"),  # the question echoed
    ("The Italian tenor sang", "Ian"),  # inside a word
    ("https://www.reddit.com/r/newzealand/comments/5nvswj", "New Zealand"),  # implied, not written
    ("Lee met Kim", ""),
    ("Lee met Kim", " '' "),
])
def test_not_in_the_text(text, s):
    assert ground(text, s) is None


def test_ner_items_keep_the_texts_strings_and_drop_the_rest_once():
    kept, dropped = ground_items("ner", WNUT, [("creative-work", "Napoleon's horse Marengo"), ("location", "ireland"),
                                               ("location", "Ireland"), ("location", "France")])
    assert kept == [("creative-work", "Napoleon ' s horse Marengo"), ("location", "Ireland")]
    assert dropped == [("location", "France")]


def test_re_needs_both_ends_in_the_text():
    text = "Andrew Fields is a collegiate basketball coach"
    kept, dropped = ground_items("re", text, [("sport", "andrew fields", "Basketball"), ("sport", "Andrew", "golf")])
    assert kept == [("sport", "Andrew Fields", "basketball")] and dropped == [("sport", "Andrew", "golf")]


def test_ee_grounds_the_argument_and_keeps_a_bare_event_type():
    text = "Police arrested two men in Kabul"
    items = [("Arrest", "", ""), ("Arrest", "Place", "kabul"), ("Arrest", "Jailer", "the police chief")]
    kept, dropped = ground_items("ee", text, items)
    assert kept == [("Arrest", "", ""), ("Arrest", "Place", "Kabul")]
    assert dropped == [("Arrest", "Jailer", "the police chief")]


def test_the_run_scores_grounded_predictions_and_keeps_the_answers_own_score(tmp_path):
    from core.runs import RunDir
    from ie.config import ChatIEJobConfig, DatasetConfig
    from ie.data import Example
    from ie.experiment import Dataset, run_experiment
    from ie.schema import load_schema
    from ie.tokens import TokenCounter
    from tests.ie.test_chat import ScriptedLLM

    def answer(chat):
        q = chat[-1]["content"]
        if "Which of these" in q:
            return "[person]"
        return "| entity type | entity |\n|---|---|\n| person | taylor swift |\n| person | Kanye West |"

    text = "Taylor Swift sang in London ."
    ds = Dataset(DatasetConfig(name="d", task="ner", path="-", schema="wnut17"), load_schema("wnut17"),
                 [Example("a", text, [{"type": "person", "text": "Taylor Swift", "start": 0, "end": 12}])])
    cfg = ChatIEJobConfig()
    cfg.chat.methods = ["chatie"]
    run = RunDir.create("chatie", str(tmp_path))
    (r,) = run_experiment(cfg, [ds], ScriptedLLM(answer), run, TokenCounter(None))
    assert (r.metrics["precision"], r.metrics["recall"], r.metrics["dropped"]) == (1.0, 1.0, 1)
    assert r.metrics["ungrounded_precision"] == 0.5 and r.metrics["ungrounded_f1"] == pytest.approx(2 / 3)
    (row,) = [json.loads(x) for x in run.file("predictions/d.chatie.jsonl").read_text().splitlines()]
    assert row["pred"] == [["person", "Taylor Swift"]] and row["ungrounded"] == [["person", "Kanye West"]]
    # off: the answers' strings as they are, scored as the paper scores them
    cfg.chat.ground = False
    (r,) = run_experiment(cfg, [ds], ScriptedLLM(answer), RunDir.create("chatie", str(tmp_path / "off")),
                          TokenCounter(None))
    assert r.metrics["precision"] == 0.5 and "ungrounded_f1" not in r.metrics
