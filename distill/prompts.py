"""Chat prompts for the teacher (label-conditioned generation, OOD probes, zero-shot labelling) and
the parsing of what it writes back."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.llm.base import Chat
from distill.task import Sample, TaskSpec

SYSTEM = "You write realistic, varied training data for a text classifier. Follow the requested format exactly."
ANSWER_PREFIX = "Text:"
NOVELTY = ("It must be very different from every example above: pick a new topic, setting, style or point of "
           "view that none of them covers, while still clearly having the requested label.")


def format_examples(examples: Sequence[Sample], label_names: Sequence[str], start: int = 1) -> str:
    """Numbered examples, each as a 'Label:' line and a 'Text:' line (the answer format asked for)."""
    blocks = []
    for i, ex in enumerate(examples, start):
        blocks.append(f"{i}. Label: {label_names[ex.label]}\n{ANSWER_PREFIX} {ex.text.strip()}")
    return "\n\n".join(blocks)


def generation_prompt(task: TaskSpec, label: int, feedback: Sequence[Sample] = (), novel: bool = False,
                      prefill: bool = True) -> Chat:
    """Ask for one new sample with the given label, showing the seed examples and then the
    feedback samples as further numbered examples. `novel` adds GOLD's probe instruction.

    With `prefill` the assistant turn already starts with "Text:", so the reply is the sample
    itself (the backend continues that turn).
    """
    task.check_label(label)
    for ex in feedback:
        task.check_label(ex.label)
    shown = list(task.examples) + list(feedback)
    parts = [f"Task: {task.description.strip()}", "Labels: " + ", ".join(task.label_names) + "."]
    if shown:
        parts.append("Examples:\n\n" + format_examples(shown, task.label_names))
    ask = f'Write one new {task.sample_noun} whose label is "{task.label_names[label]}".'
    if novel:
        ask += " " + NOVELTY
    ask += f' Reply with a single line that starts with "{ANSWER_PREFIX}" and contains only the {task.sample_noun}.'
    parts.append(ask)
    chat: Chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]
    if prefill:
        chat.append({"role": "assistant", "content": ANSWER_PREFIX})
    return chat


def zero_shot_prompt(task: TaskSpec, text: str) -> Chat:
    """The teacher as a classifier: the label is read off by scoring each label name as the
    continuation of this chat (no examples: zero-shot)."""
    user = (f"Task: {task.description.strip()}\nLabels: {', '.join(task.label_names)}.\n\n"
            f"{ANSWER_PREFIX} {text.strip()}\n\nWhich label fits this {task.sample_noun}? Answer with the label only.")
    return [{"role": "system", "content": "You are a careful text classifier."}, {"role": "user", "content": user},
            {"role": "assistant", "content": "Label:"}]


# --- parsing ---------------------------------------------------------------------------------

_SPECIAL = re.compile(r"<\|[^|>]*\|>|</?s>|\[(?:CLS|SEP|PAD|UNK|MASK)\]")
_MARKERS = ("text", "review", "sentence", "sample", "snippet", "output", "answer", "example", "new example")
_ENUM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022]|#+)\s+")
_LABEL_TAIL = re.compile(r"\s*[\(\[]?\s*\b(?:label|sentiment|class)\s*[:=].*$", re.IGNORECASE)
_PREAMBLE = re.compile(r"^\s*(?:sure|okay|ok|certainly|of course|here\s+is|here's|here\s+are|absolutely)\b",
                       re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def _marker_re(extra: Sequence[str]) -> re.Pattern[str]:
    words = sorted({w.casefold() for w in (*_MARKERS, *extra) if w.strip()}, key=len, reverse=True)
    alt = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    # "Text:", "**Review 3:**", "New example -" ...
    return re.compile(rf"^\s*(?:\d+\s*[.)]\s*)?\**\s*(?:{alt})(?:\s*#?\d+)?\s*\**\s*[:\-\u2013]\s*\**\s*(.*)$",
                      re.IGNORECASE)


def _strip_decoration(line: str) -> str:
    prev = None
    while prev != line:
        prev = line
        line = _ENUM.sub("", line).strip()
        line = line.strip("*_").strip()
        if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
            line = line[1:-1].strip()
    return line


def _is_label_line(line: str, labels: set[str]) -> bool:
    rest = _LABEL_TAIL.sub("", line).strip().strip(" .!*_" + _QUOTES).casefold()
    return rest == "" or rest in labels


def parse_sample(raw: str, nouns: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
    """The sample in a teacher's reply, or None when there is none.

    Small models wrap the sample in preambles ("Sure! Here is a review:"), markers ("Text:",
    "**Review 2:**"), quotes, numbering and label lines, and often run on into further
    examples: take the first marked line (else the first line that is not a preamble or a label
    line), cut a trailing label, strip the decoration. `nouns` adds markers (the task's sample
    noun), `labels` are the label names, whose bare lines are skipped.
    """
    lines = [ln.strip() for ln in _SPECIAL.sub(" ", raw).replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    label_set = {name.casefold() for name in labels}
    marker = _marker_re([w for n in nouns for w in (n, *n.split()[-1:])])
    candidate: str | None = None
    for i, line in enumerate(lines):
        m = marker.match(line)
        if m:
            # the marker may stand alone, or be followed by a label line, before the sample
            rest = [m.group(1).strip(), *lines[i + 1:]]
            candidate = next((x for x in rest if x and not _is_label_line(x, label_set)), None)
            break
    else:
        for i, line in enumerate(lines):
            if _is_label_line(line, label_set) or line.rstrip("*_ ").endswith(":"):
                continue
            if _PREAMBLE.match(line) and i + 1 < len(lines):
                continue
            candidate = line
            break
    if candidate is None:
        return None
    candidate = _strip_decoration(_LABEL_TAIL.sub("", candidate))
    candidate = re.sub(r"\s+", " ", candidate).strip()
    return candidate if re.search(r"[^\W\d_]", candidate) else None
