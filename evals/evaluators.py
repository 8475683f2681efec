"""UHGEval's evaluator families and HaluEval's judge as pure functions: each turns an item into the
queries a model answers, parses the replies, and scores them. Discriminative, selective and HaluEval
queries carry their answer options, so a backend with log-probabilities can also be scored by
likelihood (the option the model finds most probable), beside the parsed text.

Scores (all in [0, 1], higher is better):
- disc_keyword: per item, the accuracy over a balanced set of hallucinated and correct keywords;
- disc_sentence: ([hallucinated continuation judged false] + [real judged true]) / 2;
- selective: the real continuation chosen, asked in both orders (A/B and B/A), averaged;
- halueval: ([hallucinated answer judged "Yes"] + [right answer judged "No"]) / 2;
- generative: BLEU-4, ROUGE-L, keyword precision and an embedding cosine against the real news.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from evals.data import Item
from evals.metrics import bleu4, keyword_precision, rouge_l, tokenize
from evals.prompts import template


@dataclass(frozen=True)
class Query:
    """One model call. `choices` are the answers in label order (what likelihood scoring compares and
    what the parser maps replies to); `truth` is the index of the right one (None: free text)."""

    key: str
    text: str
    choices: tuple[str, ...] = ()
    truth: int | None = None
    max_new_tokens: int = 24
    reference: str = ""  # free-text queries: what a perfect answer would be (the oracle judge's reply)


# ----- answer parsing: the reference's prefix rules ---------------------------------------------

def _by_prefix(reply: str, yes: str, no: str) -> int | None:
    # `no` first: it contains `yes` ("不符合现实" ends with "符合现实")
    r = reply.strip()
    return 1 if r.startswith(no) else 0 if r.startswith(yes) else None


def parse_keyword(reply: str) -> int | None:
    """0: the keyword is consistent with reality, 1: it is not, None: neither."""
    return _by_prefix(reply, "符合现实", "不符合现实")


def parse_sentence(reply: str) -> int | None:
    return _by_prefix(reply, "续写符合现实", "续写不符合现实")


def parse_ab(reply: str) -> int | None:
    """0: A, 1: B. The first character of what precedes "更符合现实，更准确" (the reference's rule)."""
    head = reply.split("更符合现实，更准确")[0].strip()
    return {"A": 0, "B": 1}.get(head[:1])


def parse_yes_no(reply: str) -> int | None:
    """0: "No" (no hallucination), 1: "Yes". The first word, without leading/trailing # . , marks."""
    words = reply.strip().split()
    w = words[0].strip("#").strip(".").strip(",").lower() if words else ""
    return {"no": 0, "yes": 1}.get(w)


def first_sentence(text: str) -> str:
    """Up to and including the first Chinese sentence end (。；？！), as UHGEval cuts continuations."""
    return re.split(r"(?<=[。；？！])", text)[0]


def parse_keywords(reply: str, text: str) -> list[str]:
    """The lines between <keywords> tags that occur in `text` (the reference's filter)."""
    body = reply.split("<keywords>")[-1].split("</keywords>")[0]
    return [s.strip() for s in body.split("\n") if s.strip() and s.strip() in text]


def news_lead(f: dict, date_chars: int | None = None) -> dict:
    date = f["broadcastDate"] if date_chars is None else f["broadcastDate"][:date_chars]
    return {"headLine": f["headLine"], "broadcastDate": date, "newsBeginning": f["newsBeginning"]}


def balanced_keywords(annotations: list[str]) -> tuple[list[str], list[int]]:
    """As many hallucinated keywords (judged "不合理") as correct ones, the first of each, and their
    labels (1 hallucinated, 0 correct)."""
    bad, good = [], []
    for a in annotations:
        kw, why = a.split("<sep>", 1)
        (bad if why.startswith("不合理") else good).append(kw)
    n = min(len(bad), len(good))
    return bad[:n] + good[:n], [1] * n + [0] * n


# ----- evaluators --------------------------------------------------------------------------------

class Evaluator:
    name: str
    schemas: tuple[str, ...]
    max_new_tokens: int = 24

    def queries(self, item: Item, replies: dict[str, str]) -> list[Query]:
        """Every query the item needs, given the replies so far (a later stage may read an earlier one)."""
        raise NotImplementedError

    def parse(self, query: Query, reply: str) -> int | None:
        raise NotImplementedError

    def score(self, item: Item, queries: list[Query], picks: dict[str, int | None]) -> dict:
        """{"score": float or None (invalid), ...details} from one pick per query key."""
        raise NotImplementedError

    def applies_to(self, item: Item) -> bool:
        return item.schema in self.schemas


def _accuracy(queries: list[Query], picks: dict[str, int | None]) -> dict:
    if any(picks.get(q.key) is None for q in queries):
        return {"score": None}
    return {"score": sum(picks[q.key] == q.truth for q in queries) / len(queries)}


class DiscKeyword(Evaluator):
    name = "disc_keyword"
    schemas = ("uhgeval",)
    choices = ("符合现实", "不符合现实")

    def applies_to(self, item: Item) -> bool:
        # an item without both a hallucinated and a correct keyword has nothing to balance; the
        # reference scores it 0 and counts it valid
        return item.schema == "uhgeval" and bool(balanced_keywords(item.fields["annotations"])[0])

    def queries(self, item, replies):
        f = item.fields
        kws, labels = balanced_keywords(f["annotations"])
        return [Query(f"kw{i}", template(self.name).format(**news_lead(f), continuation=f["hallucinatedContinuation"],
                                                            keyword=kw), self.choices, lab)
                for i, (kw, lab) in enumerate(zip(kws, labels))]

    def parse(self, query, reply):
        return parse_keyword(reply)

    def score(self, item, queries, picks):
        # an item counts only when every keyword's answer parses (the paper's rule)
        return _accuracy(queries, picks)


class DiscSentence(Evaluator):
    name = "disc_sentence"
    schemas = ("uhgeval",)
    choices = ("续写符合现实", "续写不符合现实")

    def queries(self, item, replies):
        f = item.fields
        t = template(self.name)
        return [Query("hallucinated", t.format(**news_lead(f), continuation=f["hallucinatedContinuation"]),
                      self.choices, 1),
                Query("real", t.format(**news_lead(f), continuation=f["realContinuation"]), self.choices, 0)]

    def parse(self, query, reply):
        return parse_sentence(reply)

    def score(self, item, queries, picks):
        return _accuracy(queries, picks)


class Selective(Evaluator):
    """A/B between the real and the hallucinated continuation, asked in both orders. The reference
    asks once, the order set by the hallucinated text's length parity; `reference_order` says which
    of the two queries that is, so its score can be compared."""

    name = "selective"
    schemas = ("uhgeval",)
    choices = ("A", "B")

    def queries(self, item, replies):
        f = item.fields
        t = template(self.name)
        real, hallu = f["realContinuation"], f["hallucinatedContinuation"]
        return [Query("real_first", t.format(**news_lead(f), contn1=real, contn2=hallu), self.choices, 0),
                Query("real_second", t.format(**news_lead(f), contn1=hallu, contn2=real), self.choices, 1)]

    @staticmethod
    def reference_order(item: Item) -> str:
        return "real_second" if len(item.fields["hallucinatedContinuation"]) % 2 == 0 else "real_first"

    def parse(self, query, reply):
        return parse_ab(reply)

    def score(self, item, queries, picks):
        out = _accuracy(queries, picks)
        for q in queries:
            p = picks.get(q.key)
            out[q.key] = None if p is None else float(p == q.truth)
            out[f"{q.key}_chose_a"] = None if p is None else float(p == 0)
        out["reference_order"] = out[self.reference_order(item)]
        return out


class HaluEvalJudge(Evaluator):
    """HaluEval's judge prompt on both the right and the hallucinated answer of every item (the
    reference draws one of the two per item; `reference_pick` replays its draw for comparisons)."""

    name = "halueval"
    schemas = ("halueval_qa", "halueval_dialogue", "halueval_summarization")
    choices = ("No", "Yes")
    max_new_tokens = 8
    _fields = {"halueval_qa": ("Question", "question", "Answer", "answer"),
               "halueval_dialogue": ("Dialogue History", "dialogue_history", "Response", "response"),
               "halueval_summarization": ("Document", "document", "Summary", "summary")}

    def prompt(self, item: Item, candidate: str) -> str:
        ctx_name, ctx_field, cand_name, _ = self._fields[item.schema]
        return (template(item.schema) + f"\n\n#{ctx_name}#: " + item.fields[ctx_field] + f"\n#{cand_name}#: "
                + candidate + "\n#Your Judgement#: ")

    @classmethod
    def answers(cls, item: Item) -> tuple[str, str]:
        """The item's (hallucinated, right) answer, response or summary."""
        kind = cls._fields[item.schema][3]
        return item.fields[f"hallucinated_{kind}"], item.fields[f"right_{kind}"]

    def queries(self, item, replies):
        hallucinated, right = self.answers(item)
        return [Query("hallucinated", self.prompt(item, hallucinated), self.choices, 1, 8),
                Query("right", self.prompt(item, right), self.choices, 0, 8)]

    def parse(self, query, reply):
        return parse_yes_no(reply)

    def score(self, item, queries, picks):
        out = _accuracy(queries, picks)
        for q in queries:
            p = picks.get(q.key)
            out[q.key] = None if p is None else float(p == q.truth)
        return out


class Generative(Evaluator):
    """Continue the news, cut at the first sentence end, compare with the real rest of the news.
    Keywords of the continuation come from the model itself (`keywords="model"`, the reference's
    second prompt) or from jieba's TF-IDF extractor (`"jieba"`, one model call fewer)."""

    name = "generative"
    schemas = ("uhgeval",)
    max_new_tokens = 128

    def __init__(self, keywords: str = "model", similarity: Callable[[str, str], float] | None = None,
                 similarity_name: str = "minilm_cosine"):
        if keywords not in ("model", "jieba"):
            raise ValueError(f"keywords must be 'model' or 'jieba', got {keywords!r}")
        self.keywords = keywords
        self.similarity = similarity
        self.similarity_name = similarity_name

    def queries(self, item, replies):
        f = item.fields
        lead = "《{headLine}》\n{broadcastDate}\n{newsBeginning}".format(**news_lead(f, 10))
        qs = [Query("continuation", template("continuation").format(lead), max_new_tokens=128,
                    reference=f["realContinuation"])]
        if self.keywords == "model" and "continuation" in replies:
            cont = first_sentence(replies["continuation"])
            if cont:
                qs.append(Query("keywords", template("extraction").format(cont), max_new_tokens=128,
                                reference="<keywords>\n" + "\n".join(jieba_keywords(cont)) + "\n</keywords>"))
        return qs

    def parse(self, query, reply):
        return None

    def score_text(self, item: Item, replies: dict[str, str]) -> dict:
        cont = first_sentence(replies.get("continuation", ""))
        ref = item.fields["newsRemainder"]
        if not cont.strip():
            return {"score": None, "length": 0}
        hyp_t, ref_t = tokenize(cont, item.language), tokenize(ref, item.language)
        kws = (parse_keywords(replies.get("keywords", ""), cont) if self.keywords == "model"
               else jieba_keywords(cont))
        out = {"bleu4": bleu4(hyp_t, ref_t), "rouge_l": rouge_l(hyp_t, ref_t), "kw_prec": keyword_precision(kws, ref),
               "keywords": kws, "length": len(cont), "continuation": cont}
        if self.similarity is not None:
            out[self.similarity_name] = float(self.similarity(cont, ref))
        out["score"] = out["rouge_l"]
        return out


def jieba_keywords(text: str, k: int = 10) -> list[str]:
    import jieba
    import jieba.analyse

    jieba.setLogLevel(60)
    return [w for w in jieba.analyse.extract_tags(text, topK=k) if w in text]


DISCRIMINATIVE = ("disc_keyword", "disc_sentence", "selective", "halueval")
EVALUATORS = (*DISCRIMINATIVE, "generative")


def build_evaluator(name: str, **generative_options) -> Evaluator:
    from core.config import ConfigError

    table = {"disc_keyword": DiscKeyword, "disc_sentence": DiscSentence, "selective": Selective,
             "halueval": HaluEvalJudge}
    if name == "generative":
        return Generative(**generative_options)
    if name not in table:
        raise ConfigError("evaluators", f"unknown evaluator {name!r}; allowed: {', '.join(EVALUATORS)}")
    return table[name]()


__all__ = ["DISCRIMINATIVE", "EVALUATORS", "DiscKeyword", "DiscSentence", "Evaluator", "Generative",
           "HaluEvalJudge", "Query", "Selective", "balanced_keywords", "build_evaluator", "first_sentence",
           "jieba_keywords", "parse_ab", "parse_keyword", "parse_keywords", "parse_sentence", "parse_yes_no"]
