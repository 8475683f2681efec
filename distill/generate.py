"""The teacher as a zero-shot classifier: each text's label is the label name the backend finds
most likely as the answer. The backends themselves live in core.llm."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.llm import Backend
from distill.prompts import zero_shot_prompt
from distill.task import TaskSpec


def zero_shot_predict(backend: Backend, task: TaskSpec, texts: Sequence[str]) -> torch.Tensor:
    """The teacher's own labels: for each text, the label name with the highest log-likelihood
    as the answer to zero_shot_prompt. Returns (len(texts),) label indices."""
    prompts, conts = [], []
    for t in texts:
        chat = zero_shot_prompt(task, t)
        for name in task.label_names:
            prompts.append(chat)
            conts.append(" " + name)
    scores = torch.tensor(backend.score(prompts, conts)).view(len(texts), task.num_labels)
    return scores.argmax(-1)
