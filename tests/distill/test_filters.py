import pytest
import torch

from core.config import ConfigError
from distill.filters import CleanCounts, clean_generations, dedup_key, drop_noise, valid_length
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


def test_clean_requires_one_label_per_output():
    with pytest.raises(ValueError):
        clean_generations(["Text: hello there"], [0, 1], kind="probe", iteration=0, min_chars=1, max_chars=50)


def test_drop_noise_keeps_low_energy_and_records_energies():
    samples = [Sample(f"sample number {i}", i % 2) for i in range(5)]
    energies = torch.tensor([0.5, 3.0, -1.0, 0.0, 2.0])
    kept, dropped = drop_noise(samples, energies, 0.6)  # floor(0.4 * 5) = 2 dropped: energies 3.0 and 2.0
    assert [s.text for s in dropped] == ["sample number 1", "sample number 4"]
    assert [s.energy for s in kept] == [0.5, -1.0, 0.0]
    assert [s.label for s in kept] == [0, 0, 1]
    with pytest.raises(ConfigError):
        drop_noise(samples, energies, 1.5)
    with pytest.raises(ValueError):
        drop_noise(samples, energies[:3], 0.9)
