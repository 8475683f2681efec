import pytest
import torch

from core.config import ConfigError
from distill.filters import (CleanCounts, clean_generations, dedup_key, drop_noise, echoes_prompt, overlap, shingles,
                             valid_length)
from distill.task import Sample


def test_length_bounds_are_strict_like_the_paper():
    assert not valid_length("x" * 10, 10, 400) and valid_length("x" * 11, 10, 400)
    assert valid_length("x" * 399, 10, 400) and not valid_length("x" * 400, 10, 400)


def test_dedup_key_ignores_case_punctuation_and_spacing():
    assert dedup_key("A  Gorgeous, aching film!") == dedup_key("a gorgeous aching film") == "a gorgeous aching film"
    assert dedup_key("A gorgeous film") != dedup_key("A gorgeous aching film")


def test_clean_counts_every_output_once_and_keeps_new_valid_samples():
    raw = [
        "Text: A gorgeous, aching film.",  # kept
        "Text: a gorgeous aching FILM",  # duplicate of the first, within the batch
        "!!! 123",  # malformed: nothing parseable
        "Text: Too short",  # 9 characters after parsing: bad length
        "Text: Exactly what the seed said.",  # duplicate of a seen key
        None,  # a backend that returned no text for a prompt: malformed, not a crash
        "Sure, here it is:\nText: \"Bold, brilliant and strange.\"",  # kept
    ]
    labels = [1, 1, 0, 0, 1, 0, 1]
    seen = {dedup_key("Exactly what the seed said.")}
    out = clean_generations(raw, labels, kind="generated", iteration=3, min_chars=9, max_chars=400, seen=seen)
    assert [s.text for s in out.samples] == ["A gorgeous, aching film.", "Bold, brilliant and strange."]
    assert [s.label for s in out.samples] == [1, 1]
    assert all(s.kind == "generated" and s.iteration == 3 and s.energy is None for s in out.samples)
    assert out.counts == CleanCounts(raw=7, malformed=2, bad_length=1, duplicate=2, kept=2)
    assert out.keys == {dedup_key(s.text) for s in out.samples}
    assert seen == {dedup_key("Exactly what the seed said.")}  # the caller's set is not changed


SEED = "Its lack of quality earns it a place alongside those other two recent Dumas botch-jobs."


def test_overlap_is_the_share_of_the_new_texts_trigrams_in_the_old_one():
    old = shingles(dedup_key(SEED))
    assert len(old) == 16 - 2  # 16 words: dedup_key splits "botch-jobs"
    truncated = shingles(dedup_key("Its lack of quality earns it a place"))  # 6 trigrams, all in the seed
    assert overlap(truncated, old) == 1.0
    # 3 of the 9 trigrams of a new text that starts like the seed and then goes its own way
    new = shingles(dedup_key("Its lack of quality earns praise from nobody in this town"))
    assert overlap(new, old) == pytest.approx(3 / 9)
    assert overlap(shingles("two words"), old) == 0.0 and overlap(set(), set()) == 0.0


def test_near_copies_of_seen_texts_and_of_the_batch_are_duplicates():
    raw = [
        "Text: Its lack of quality earned it a place alongside those other two recent Dumas botch-jobs!",  # edited seed
        "Text: Its lack of quality earns it a place",  # a truncated seed
        "Text: A bright, generous comedy that never talks down to its audience.",  # kept
        "Text: A bright, generous comedy that never talks down to kids.",  # a near copy of the one above
        "Text: Its lack of charm is matched only by its lack of wit.",  # kept: shares no trigram with the seed
    ]
    seen = {dedup_key(SEED)}
    out = clean_generations(raw, [0, 1, 1, 1, 0], kind="generated", iteration=0, min_chars=5, max_chars=400,
                            seen=seen, max_overlap=0.5)
    assert [s.text for s in out.samples] == ["A bright, generous comedy that never talks down to its audience.",
                                             "Its lack of charm is matched only by its lack of wit."]
    assert out.counts == CleanCounts(raw=5, duplicate=3, kept=2)
    # max_overlap 1.0 drops exact copies only
    exact = clean_generations(raw, [0, 1, 1, 1, 0], kind="generated", iteration=0, min_chars=5, max_chars=400,
                              seen=seen, max_overlap=1.0)
    assert exact.counts.kept == 5


def test_a_reply_that_echoes_the_request_is_malformed():
    noun = ["movie review snippet"]
    assert echoes_prompt("I wrote a new movie review snippet. Please paste it here.", noun)
    assert echoes_prompt('A new Movie  Review Snippet whose label is "negative"', noun)
    assert echoes_prompt("I can't give it a label, it is neither good nor bad.", noun)
    assert echoes_prompt("A new review, Text: the film is very different.", noun)
    assert not echoes_prompt("A review-proof film: nothing to snip, nothing to praise.", noun)
    raw = ["Text: I wrote a new movie review snippet. Please paste it here.", "Text: Smart, funny and humane."]
    out = clean_generations(raw, [1, 1], kind="generated", iteration=0, min_chars=5, max_chars=400, nouns=noun)
    assert [s.text for s in out.samples] == ["Smart, funny and humane."]
    assert out.counts == CleanCounts(raw=2, malformed=1, kept=1)


def test_clean_requires_one_label_per_output():
    with pytest.raises(ValueError):
        clean_generations(["Text: hello there"], [0, 1], kind="probe", iteration=0, min_chars=1, max_chars=50)


def test_drop_noise_keeps_low_energy_and_records_energies():
    samples = [Sample(f"sample number {i}", i % 2) for i in range(5)]
    energies = torch.tensor([0.5, 3.0, -1.0, 0.0, 2.0])
    kept, dropped = drop_noise(samples, energies, 0.4)  # ranks from floor(0.6 * 5) = 3 up: energies 3.0 and 2.0
    assert [s.text for s in dropped] == ["sample number 1", "sample number 4"]
    assert [s.energy for s in kept] == [0.5, -1.0, 0.0]
    assert [s.label for s in kept] == [0, 0, 1]
    with pytest.raises(ConfigError):
        drop_noise(samples, energies, 1.5)
    with pytest.raises(ValueError):
        drop_noise(samples, energies[:3], 0.1)
