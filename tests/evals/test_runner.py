"""The runner: resume skips finished items; a backend that drops requests is retried, then its items
are counted as errors (asked again on resume), never scored as invalid answers."""

import pytest

from evals.cache import AnswerCache
from evals.data import load_items
from evals.evaluators import build_evaluator
from evals.judges import LLMResponder, ScriptedJudge
from evals.leaderboard import aggregate
from evals.runner import run_evaluator


class Counting(ScriptedJudge):
    def __init__(self):
        super().__init__("oracle")
        self.asked = []

    def generate(self, jobs, seeds):
        self.asked += [it.id for it, _ in jobs]
        return super().generate(jobs, seeds)


@pytest.fixture(scope="module")
def items():
    return load_items("halueval_qa", 10, 0)


def test_resume_skips_finished_items(items, tmp_path):
    cache, ev = AnswerCache(tmp_path), build_evaluator("halueval")
    first = Counting()
    run_evaluator(ev, items[:6], first, cache, "halueval_qa", seed=0, chunk_items=4)
    assert len(set(first.asked)) == 6
    again = Counting()
    stats = run_evaluator(ev, items, again, cache, "halueval_qa", seed=0, chunk_items=4)
    assert stats.skipped == 6 and set(again.asked) == {it.id for it in items[6:]}
    assert "6 of 10 items already answered" in stats.messages[0]
    assert len(cache.load("oracle", "halueval_qa", "halueval")) == 10


class DropsRequests(ScriptedJudge):
    """Fails every call that contains item `bad`, and the first `flaky` calls of all."""

    def __init__(self, bad: str | None, flaky: int = 0):
        super().__init__("oracle")
        self.bad, self.flaky, self.calls = bad, flaky, 0

    def generate(self, jobs, seeds):
        self.calls += 1
        if self.calls <= self.flaky or any(it.id == self.bad for it, _ in jobs):
            raise ConnectionError("the server dropped the request")
        return super().generate(jobs, seeds)


def test_a_flaky_backend_is_retried(items, tmp_path):
    cache = AnswerCache(tmp_path)
    judge = DropsRequests(None, flaky=2)
    stats = run_evaluator(build_evaluator("halueval"), items[:4], judge, cache, "halueval_qa", 0, chunk_items=4,
                          retries=2)
    assert stats.errors == 0 and stats.answered == 4


def test_a_dropping_backend_is_an_error_not_an_invalid_answer(items, tmp_path):
    cache, ev = AnswerCache(tmp_path), build_evaluator("halueval")
    bad = items[1].id
    stats = run_evaluator(ev, items[:4], DropsRequests(bad), cache, "halueval_qa", 0, chunk_items=4, retries=1)
    assert stats.errors == 1 and stats.answered == 3
    recs = cache.load("oracle", "halueval_qa", "halueval")
    assert recs[bad]["status"] == "error" and "dropped" in recs[bad]["error"]
    (row,) = [r for r in aggregate(cache.all_records()) if r["by"] == "text"]
    assert row["errors"] == 1 and row["invalid_share"] == 0.0 and row["valid"] == 3 and row["score"] == 1.0
    # a resumed run asks the failed item again
    stats = run_evaluator(ev, items[:4], ScriptedJudge("oracle"), cache, "halueval_qa", 0, chunk_items=4)
    assert stats.skipped == 3 and stats.answered == 1
    assert cache.load("oracle", "halueval_qa", "halueval")[bad]["status"] == "ok"


def test_llm_responder_scores_by_text_and_likelihood(tmp_path):
    """A tiny random Llama in-process: text replies do not parse (invalid), likelihood always picks."""
    from core.llm import HFBackend
    from core.models import ModelConfig

    backend = HFBackend.from_config(ModelConfig(name="tiny-llama"), batch_size=4)
    r = LLMResponder("tiny", backend, prompt_format="raw")
    items = load_items("halueval_qa", 2, 0)
    cache = AnswerCache(tmp_path)
    run_evaluator(build_evaluator("halueval"), items, r, cache, "halueval_qa", 0)
    rec = next(iter(cache.load("tiny", "halueval_qa", "halueval").values()))
    assert set(rec["loglik"]) == {"hallucinated", "right"} and all(len(v) == 2 for v in rec["loglik"].values())
    assert rec["likelihood"]["score"] in (0.0, 0.5, 1.0)
    assert rec["likelihood"]["ranked"] in (0.0, 0.5, 1.0)
    assert set(rec["replies"]) == {"hallucinated", "right"}


def test_a_backend_without_log_probs_still_answers_by_text(tmp_path):
    """A server without prompt log-probs (ScoreUnsupportedError): the replies of that same call are
    asked again without scoring, and the run goes on by text only."""
    from core.llm import HFBackend, ScoreUnsupportedError
    from core.models import ModelConfig

    class NoLogprobs(HFBackend):
        def score(self, prompts, continuations):
            raise ScoreUnsupportedError("this server gives no prompt log-probabilities")

    tiny = HFBackend.from_config(ModelConfig(name="tiny-llama"), batch_size=4)
    r = LLMResponder("tiny", NoLogprobs(tiny.model, tiny.tokenizer, batch_size=4), prompt_format="raw")
    cache = AnswerCache(tmp_path)
    stats = run_evaluator(build_evaluator("halueval"), load_items("halueval_qa", 2, 0), r, cache, "halueval_qa", 0)
    assert stats.answered == 2 and stats.errors == 0 and r.likelihood is False
    recs = cache.load("tiny", "halueval_qa", "halueval").values()
    assert all(set(rec["replies"]) == {"hallucinated", "right"} and "likelihood" not in rec for rec in recs)
