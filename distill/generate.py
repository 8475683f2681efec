"""The teacher: a small backend interface (generate chats, score continuations) and its local
transformers implementation, with per-prompt seeded sampling.

Every prompt samples from its own CPU generator (seeded by the caller), through the Gumbel-max
trick inside greedy decoding, so a prompt's text does not depend on which prompts share its
batch, and no global RNG state is read or changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from core.models import ModelConfig, load_causal_lm, load_tokenizer, resolve_device
from distill.prompts import Chat, zero_shot_prompt
from distill.task import TaskSpec


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0


class Backend(Protocol):
    def generate(self, prompts: Sequence[Chat], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        """One reply per chat; prompt i samples from seeds[i]."""
        ...

    def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """log p(continuation_i | prompt_i), summed over the continuation's tokens."""
        ...


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Logits / T with everything outside the top-k and the top-p nucleus set to -inf (float32)."""
    z = logits.float() / temperature
    if 0 < top_k < z.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, -torch.inf)
    if top_p < 1.0:
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        probs = sorted_z.softmax(-1)
        # drop a token once the tokens before it already hold top_p of the mass; the first always stays
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop_sorted[..., 0] = False
        z = z.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), -torch.inf)
    return z


def sample_token_ids(logits: torch.Tensor, params: SamplingParams, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per row of (batch, vocab) logits, row r drawn with generators[r] (CPU).

    argmax(z + Gumbel noise) is an exact draw from softmax(z); the noise comes from each row's
    own generator, one vocabulary-sized draw per step.
    """
    if params.temperature == 0:
        return logits.argmax(-1)
    z = filter_logits(logits, params.temperature, params.top_k, params.top_p)
    tiny = torch.finfo(torch.float32).tiny
    u = torch.stack([torch.rand(z.shape[-1], generator=g) for g in generators]).to(z.device)
    gumbel = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))
    return (z + gumbel).argmax(-1)


class _SeededSampler:
    """A transformers logits processor that turns greedy decoding into seeded sampling: it keeps
    only the token sample_token_ids picks, so the greedy argmax takes it."""

    def __init__(self, params: SamplingParams, generators: Sequence[torch.Generator]):
        self.params = params
        self.generators = generators

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        picked = sample_token_ids(scores, self.params, self.generators)
        out = torch.full_like(scores, -torch.inf)
        return out.scatter(-1, picked.unsqueeze(-1), 0.0)


class HFBackend:
    """A local causal LM: chats rendered with the tokenizer's chat template (plain text when it has
    none), batched with left padding; generation uses transformers' generate (KV cache)."""

    def __init__(self, model: torch.nn.Module, tokenizer, batch_size: int = 8):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # decoder-only models continue the last position: pad on the left so every row ends at the prompt's end
        self.tokenizer.padding_side = "left"
        self.device = next(model.parameters()).device

    @classmethod
    def from_config(cls, cfg: ModelConfig, batch_size: int = 8, seed: int = 0) -> HFBackend:
        model = load_causal_lm(cfg, seed=seed).to(resolve_device(cfg.device))
        return cls(model, load_tokenizer(cfg.name), batch_size)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, chat: Chat) -> str:
        """The prompt text. A chat ending with an assistant message is continued (a prefilled answer)."""
        cont = bool(chat) and chat[-1]["role"] == "assistant"
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=not cont,
                                                      continue_final_message=cont)
        lines = [f"{m['role']}: {m['content']}" for m in chat]
        return "\n\n".join(lines) if cont else "\n\n".join(lines + ["assistant:"])

    def _encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        # a chat template writes its own special tokens; plain text gets the tokenizer's
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True,
                             add_special_tokens=not self.has_chat_template)
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
        return sorted(i for i in ids if i is not None)

    @torch.no_grad()
    def generate(self, prompts: Sequence[Chat], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        from transformers import GenerationConfig, LogitsProcessorList

        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        stop = self._stop_ids()
        gen_cfg = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                                   pad_token_id=self.tokenizer.pad_token_id,
                                   eos_token_id=stop or None)
        out: list[str] = []
        for lo in range(0, len(prompts), self.batch_size):
            chunk = [self.render(c) for c in prompts[lo:lo + self.batch_size]]
            gens = []
            for s in seeds[lo:lo + self.batch_size]:
                g = torch.Generator("cpu")
                g.manual_seed(int(s))
                gens.append(g)
            enc = self._encode(chunk)
            ids = self.model.generate(**enc, generation_config=gen_cfg,
                                      logits_processor=LogitsProcessorList([_SeededSampler(params, gens)]))
            new = ids[:, enc["input_ids"].shape[1]:]
            out.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return out

    @torch.no_grad()
    def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        if len(continuations) != len(prompts):
            raise ValueError(f"{len(continuations)} continuations for {len(prompts)} prompts")
        scores: list[float] = []
        for lo in range(0, len(prompts), self.batch_size):
            rows, cont_lens = [], []
            for chat, cont in zip(prompts[lo:lo + self.batch_size], continuations[lo:lo + self.batch_size]):
                p = self.tokenizer(self.render(chat), add_special_tokens=not self.has_chat_template)["input_ids"]
                # tokenized apart so every label is scored after the same prompt tokens
                c = self.tokenizer(cont, add_special_tokens=False)["input_ids"]
                if not c:
                    raise ValueError(f"continuation {cont!r} has no tokens")
                rows.append(p + c)
                cont_lens.append(len(c))
            width = max(map(len, rows))
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
            # left padding shifts positions unless they are counted from each row's first real token
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            logp = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float().log_softmax(-1)
            for r, n in enumerate(cont_lens):
                # the token at position t is predicted by the logits at t - 1
                targets = ids[r, width - n:]
                scores.append(float(logp[r, width - n - 1:width - 1].gather(-1, targets[:, None]).sum()))
        return scores


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
