"""A small recipe of real stages that runs without Ray in seconds: the task's training split as a
dataset (load), a tiny-BERT student trained centrally (central), tiny-Llama perplexities (lm_eval)."""

from __future__ import annotations

import copy

import pytest

MINI = {
    "seed": 0,
    "data": {"name": "rotten_tomatoes", "max_train": 60, "max_test": 30},
    "max_concurrent_stages": 2,
    "stages": [
        {"name": "raw", "kind": "load", "config": {"source": "task"}},
        {"name": "student", "kind": "central",
         "config": {"student": {"model": {"name": "tiny-bert", "max_length": 16}, "adapter": {"type": "head"},
                                "batch_size": 16, "lr": 0.05}, "epochs": 1}},
        {"name": "ppl", "kind": "lm_eval", "inputs": {"domain": "raw"},
         "config": {"model": {"name": "tiny-llama", "max_length": 16}, "seq_len": 16, "eval_blocks": 2}},
    ],
}


@pytest.fixture
def mini():
    """A fresh copy of the mini recipe as a dict (tests edit it)."""
    return copy.deepcopy(MINI)
