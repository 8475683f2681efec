"""Token counts for the summary: with a tokenizer (the model's own), exact counts of each
rendered prompt and answer; without one, an estimate of 4 characters per token (marked as such)."""

from __future__ import annotations

import math


class TokenCounter:
    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    @classmethod
    def from_name(cls, name: str | None) -> TokenCounter:
        if not name:
            return cls(None)
        from core.models import load_tokenizer

        return cls(load_tokenizer(name))

    def text(self, s: str) -> int:
        if self.tokenizer is None:
            return math.ceil(len(s) / 4)
        return len(self.tokenizer(s, add_special_tokens=False)["input_ids"])

    def chat(self, chat: list[dict[str, str]]) -> int:
        """Tokens the backend reads for this chat (the whole history: a chat API resends it every turn)."""
        tok = self.tokenizer
        if tok is not None and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
            # transformers 5 returns a BatchEncoding here, 4.x a plain list of ids
            return len(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return self.text("\n\n".join(f"{m['role']}: {m['content']}" for m in chat))
