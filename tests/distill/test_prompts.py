import pytest

from core.config import ConfigError
from distill.prompts import ANSWER_PREFIX, NOVELTY, generation_prompt, parse_sample, zero_shot_prompt
from distill.task import Sample, TaskSpec

TASK = TaskSpec(("rotten", "fresh"), "Short film reviews by critics.", "movie review snippet",
                (Sample("A dull, lifeless slog.", 0, "seed"), Sample("A joyous, clever triumph.", 1, "seed")))


def _user(chat):
    return next(m["content"] for m in chat if m["role"] == "user")


def test_prompt_shows_seeds_then_feedback_as_numbered_examples_and_asks_for_the_label():
    fb = [Sample("Strange space opera that somehow works.", 1, "probe", 0, -0.4),
          Sample("An opera of yawns.", 0, "probe", 0, -0.3)]
    chat = generation_prompt(TASK, 0, fb)
    user = _user(chat)
    order = [user.index(t) for t in ("A dull, lifeless slog.", "A joyous, clever triumph.",
                                     "Strange space opera that somehow works.", "An opera of yawns.")]
    assert order == sorted(order)
    assert "1. Label: rotten\nText: A dull, lifeless slog." in user
    assert "3. Label: fresh\nText: Strange space opera that somehow works." in user
    assert "4. Label: rotten\nText: An opera of yawns." in user
    assert 'whose label is "rotten"' in user and "Short film reviews by critics." in user
    assert NOVELTY not in user
    assert chat[0]["role"] == "system" and chat[-1] == {"role": "assistant", "content": ANSWER_PREFIX}


def test_probe_prompt_adds_the_novelty_instruction_and_no_prefill_when_off():
    chat = generation_prompt(TASK, 1, novel=True, prefill=False)
    assert NOVELTY in _user(chat) and 'label is "fresh"' in _user(chat)
    assert chat[-1]["role"] == "user"
    without_feedback = _user(generation_prompt(TASK, 1))
    assert "3." not in without_feedback  # only the two seed examples are numbered


def test_labels_outside_the_task_are_errors_naming_the_field():
    with pytest.raises(ConfigError) as e:
        generation_prompt(TASK, 2)
    assert e.value.key == "task.label_names" and "rotten" in str(e.value)
    with pytest.raises(ConfigError):
        generation_prompt(TASK, 0, [Sample("x" * 20, 5)])


def test_zero_shot_prompt_lists_labels_and_ends_in_the_answer_slot():
    chat = zero_shot_prompt(TASK, "  Loved it.  ")
    assert "rotten, fresh" in _user(chat) and "Text: Loved it." in _user(chat)
    assert chat[-1] == {"role": "assistant", "content": "Label:"}


NOUNS = ["movie review snippet"]
LABELS = ["rotten", "fresh"]


@pytest.mark.parametrize("raw,want", [
    ("Text: A gorgeous, aching film.", "A gorgeous, aching film."),
    # a prefilled reply that runs on into more examples: only the first sample
    ("Text: A gorgeous, aching film.\n\n2. Label: fresh\nText: Another one.", "A gorgeous, aching film."),
    ("Sure! Here is a fresh review:\n\n\"A witty romp.\"", "A witty romp."),
    ("**Review 3:** \u201cDull and lifeless\u201d (Label: rotten)", "Dull and lifeless"),
    ("Label: fresh\nText:\n  Bold and brilliant.", "Bold and brilliant."),
    ("fresh\nA fine mess of a movie.", "A fine mess of a movie."),
    ("Snippet: Slow but worth it.<|im_end|>", "Slow but worth it."),
    ("1. - 'Quietly devastating.'", "Quietly devastating."),
    ("Text:   too    many\tspaces here ", "too many spaces here"),
    ("Here's a film that never finds its footing.", "Here's a film that never finds its footing."),
    ("Movie review snippet: Crisp and funny.", "Crisp and funny."),
])
def test_parse_messy_outputs(raw, want):
    assert parse_sample(raw, nouns=NOUNS, labels=LABELS) == want


@pytest.mark.parametrize("raw", ["", "   \n\n", "12345 !!", "Label: fresh", "Text:", "<|im_end|>", "fresh\n\n***"])
def test_parse_returns_none_when_there_is_no_sample(raw):
    assert parse_sample(raw, nouns=NOUNS, labels=LABELS) is None
