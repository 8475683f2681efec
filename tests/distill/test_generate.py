import math

import pytest

from core.llm import HFBackend
from core.models import ModelConfig
from distill.generate import zero_shot_predict
from distill.prompts import zero_shot_prompt
from distill.task import Sample, TaskSpec


@pytest.fixture(scope="module")
def backend():
    return HFBackend.from_config(ModelConfig(name="tiny-llama"), batch_size=3, seed=0)


def test_zero_shot_predicts_the_label_with_the_highest_score(backend):
    task = TaskSpec(("rotten", "fresh"), "Film reviews.", "review", (Sample("A dull slog.", 0, "seed"),))
    texts = ["Loved every minute.", "Hated it.", "Fine."]
    pred = zero_shot_predict(backend, task, texts)
    for t, y in zip(texts, pred.tolist()):
        s = backend.score([zero_shot_prompt(task, t)] * 2, [" rotten", " fresh"])
        assert y == max(range(2), key=lambda k: s[k]) and all(math.isfinite(v) for v in s)
    # scored in chunks (for the progress bar), a last short chunk included: the same labels, in order
    assert zero_shot_predict(backend, task, texts, chunk=2).tolist() == pred.tolist()


def test_zero_shot_over_http_labels_as_in_process(backend):
    from core.llm import OpenAIBackend
    from core.llm.server import OpenAIServer

    task = TaskSpec(("rotten", "fresh", "mixed"), "Film reviews.", "review", ())
    texts = ["Loved every minute.", "Hated it.", "Fine, I guess."]
    with OpenAIServer(backend, "tiny-llama") as server:
        remote = OpenAIBackend(server.base_url, max_retries=0)
        assert zero_shot_predict(remote, task, texts).tolist() == zero_shot_predict(backend, task, texts).tolist()
