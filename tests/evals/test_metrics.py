"""BLEU-4 and ROUGE-L against reference implementations (sacrebleu, nltk, rouge-score), keyword
precision and the tokenizers, on hand cases."""

import math

import pytest

from evals.metrics import bleu4, keyword_precision, lcs_length, mean_se, paired_ranking, rouge_l, tokenize

CASES = [
    ("the cat sat on the mat today".split(), "the cat sat on the mat".split()),
    ("the cat sat on the mat".split(), "the cat sat on the red mat yesterday".split()),
    ("a b c d e f g h".split(), "a b c d x f g h a b".split()),
    ("新华社 记者 今天 报道 了 这 一 消息".split(), "新华社 记者 昨天 报道 了 这 一 重要 消息".split()),
]


@pytest.mark.parametrize("hyp,ref", CASES)
def test_bleu4_matches_sacrebleu_and_nltk(hyp, ref):
    import sacrebleu
    from nltk.translate.bleu_score import sentence_bleu

    ours = bleu4(hyp, ref)
    sb = sacrebleu.sentence_bleu(" ".join(hyp), [" ".join(ref)], tokenize="none", smooth_method="none").score / 100
    assert ours == pytest.approx(sb, abs=1e-9)
    assert ours == pytest.approx(sentence_bleu([ref], hyp), abs=1e-9)
    assert 0 < ours < 1


def test_bleu4_zero_without_a_4gram_match_and_one_on_identity():
    # nltk's sentence_bleu returns ~1e-154 here (and warns); sacrebleu and we return 0
    assert bleu4("a b c d".split(), "a b c e".split()) == 0.0
    assert bleu4("a b c d e".split(), "a b c d e".split()) == pytest.approx(1.0)
    assert bleu4([], ["a"]) == 0.0


def test_bleu4_brevity_penalty_multiplies():
    ref = "a b c d e f g h i j".split()
    hyp = "a b c d e".split()  # every n-gram matches, half the length
    assert bleu4(hyp, ref) == pytest.approx(math.exp(1 - 10 / 5))  # v0.2.7 divided: ~7.4, not ~0.37


@pytest.mark.parametrize("hyp,ref", CASES + [("x y z".split(), "a b c".split())])
def test_rouge_l_matches_rouge_score(hyp, ref):
    from rouge_score import rouge_scorer

    class Split:
        def tokenize(self, text):
            return text.split()

    want = rouge_scorer.RougeScorer(["rougeL"], tokenizer=Split()).score(" ".join(ref), " ".join(hyp))["rougeL"].fmeasure
    assert rouge_l(hyp, ref) == pytest.approx(want, abs=1e-12)


def test_lcs_by_hand():
    assert lcs_length("ABCBDAB", "BDCABA") == 4
    assert rouge_l(list("ab"), list("ab")) == 1.0


def test_keyword_precision():
    assert keyword_precision(["柏林", "施泰因迈尔", "弗拉德里希"], "德国外长施泰因迈尔在柏林表示") == pytest.approx(2 / 3)
    assert keyword_precision([], "anything") == 0.0


def test_tokenize_chinese_with_jieba_and_drop_whitespace():
    toks = tokenize("\n  新华社北京1月22日电", "zh")
    assert "新华社" in toks and "北京" in toks
    assert all(t.strip() for t in toks)
    assert tokenize("Arthur's Magazine, first!", "en") == ["arthur", "'", "s", "magazine", ",", "first", "!"]


def test_mean_se():
    m, se = mean_se([0.0, 1.0, 0.0, 1.0])
    assert m == 0.5 and se == pytest.approx(math.sqrt(1 / 3 / 4))
    assert math.isnan(mean_se([])[0])


def test_paired_ranking_by_hand():
    # log-odds of option 1: 2.0 for the truth-1 query, -1.0 for the truth-0 one -> ranked right
    assert paired_ranking([[0.0, 2.0], [0.0, -1.0]], [1, 0]) == 1.0
    assert paired_ranking([[0.0, -1.0], [0.0, 2.0]], [1, 0]) == 0.0
    assert paired_ranking([[-3.0, -1.0], [-3.0, -1.0]], [1, 0]) == 0.5  # a tie
    # one truth-1 query against two truth-0 ones: beats one, ties the other
    assert paired_ranking([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]], [1, 0, 0]) == pytest.approx(0.75)
    assert paired_ranking([[0.0, 1.0], [0.0, 2.0]], [1, 1]) is None  # nothing to compare against
    assert paired_ranking([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], [1, 0]) is None  # not a two-way choice


def test_paired_ranking_ignores_a_prior_on_the_answer_words():
    """Both queries prefer option 0 (argmax accuracy 0.5), but the truth-1 one less so: ranked 1.0;
    adding the same constant to every option-1 log-probability changes nothing."""
    lik = [[-0.1, -2.0], [-0.1, -4.0]]
    assert [max(range(2), key=lambda i: lp[i]) for lp in lik] == [0, 0]
    assert paired_ranking(lik, [1, 0]) == 1.0
    assert paired_ranking([[a, b + 7.0] for a, b in lik], [1, 0]) == 1.0
