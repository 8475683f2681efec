"""The `hf` backend: a local transformers causal LM, batched with left padding, with per-prompt
seeded sampling and continuation log-likelihoods.

Every prompt samples from its own CPU generator (seeded by the caller), through the Gumbel-max
trick inside greedy decoding, so a prompt's text does not depend on which prompts share its
batch (nor on whether it came over HTTP alone), and no global RNG state is read or changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.llm.base import (
    Prompt,
    SamplingParams,
    batched_generate_and_score,
    check_lengths,
    continues_last_message,
    is_chat,
    prompt_by_prompt,
)
from core.models import ModelConfig, load_causal_lm, load_tokenizer, resolve_device


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


def sample_token_ids(logits: torch.Tensor, params: SamplingParams,
                     generators: Sequence[torch.Generator]) -> torch.Tensor:
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


class PrefixCache:
    """The KV cache of the last sequence a backend ran, and its token ids. A new row takes it cut
    back to the tokens the two share (at most `limit`), so only the rest goes through the model:
    an item's queries that share a long document, the options scored after one prompt, the turns of
    one chat. Holds one sequence, so memory stays at one row's cache."""

    def __init__(self):
        self.ids: list[int] = []
        self.cache = None
        self.reused = 0  # prompt tokens not recomputed, over the backend's life
        self.computed = 0  # prompt tokens that went through the model

    def take(self, row: Sequence[int], limit: int, config):
        from transformers import DynamicCache

        shared = 0
        for a, b in zip(self.ids, row[:max(0, limit)]):
            if a != b:
                break
            shared += 1
        cache, self.cache, self.ids = self.cache, None, []  # the caller's now; it grows in place
        # a sliding-window layer has dropped old positions, so its cache cannot be cut back
        layers = getattr(cache, "layers", [])
        plain = all(getattr(x, "is_croppable", False) and not getattr(x, "is_sliding", False) for x in layers)
        if cache is None or shared == 0 or not plain:
            cache, shared = DynamicCache(config=config), 0
        elif cache.get_seq_length() > shared:
            cache.crop(shared - cache.get_seq_length())  # transformers 5: how many tokens to drop
        self.reused += shared
        self.computed += len(row) - shared
        return cache

    def keep(self, ids: Sequence[int], cache) -> None:
        n = cache.get_seq_length()
        if n != len(ids):  # never keep a cache whose tokens we cannot name
            return
        self.ids, self.cache = list(ids), cache


class HFBackend:
    """A local causal LM: chats rendered with the tokenizer's chat template (plain text when it has
    none), batched with left padding; generation uses transformers' generate (KV cache)."""

    name = "hf"

    def __init__(self, model: torch.nn.Module, tokenizer, batch_size: int = 8, prefix_cache: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        # prefix_cache: rows go one at a time and each reuses the KV cache of the tokens it shares
        # with the row before it (llama.cpp's and vLLM's prompt caching), instead of batching
        self.prefix = PrefixCache() if prefix_cache else None

    @classmethod
    def from_config(cls, cfg: ModelConfig, batch_size: int = 8, seed: int = 0,
                    prefix_cache: bool = False) -> HFBackend:
        model = load_causal_lm(cfg, seed=seed).to(resolve_device(cfg.device))
        return cls(model, load_tokenizer(cfg.name), batch_size, prefix_cache=prefix_cache)

    def check(self) -> None:
        """Nothing to reach: loading the model already checked its config."""

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: Prompt) -> str:
        """The prompt text. A chat ending with an assistant message is continued (a prefilled answer)."""
        if not is_chat(prompt):
            return prompt
        cont = continues_last_message(prompt)
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=not cont,
                                                      continue_final_message=cont)
        lines = [f"{m['role']}: {m['content']}" for m in prompt]
        return "\n\n".join(lines) if cont else "\n\n".join(lines + ["assistant:"])

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        # a chat template writes its own special tokens; plain text gets the tokenizer's
        special = not (is_chat(prompt) and self.has_chat_template)
        return list(self.tokenizer(self.render(prompt), add_special_tokens=special)["input_ids"])

    def encode_continuation(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        # decoder-only models continue the last position: pad on the left so every row ends at its prompt's end
        width = max(map(len, rows))
        ids = torch.tensor([[self._pad_id()] * (width - len(r)) + list(r) for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        return ids, mask

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
        return sorted(i for i in ids if i is not None)

    @torch.no_grad()
    def generate_ids(self, rows: Sequence[Sequence[int]], params: SamplingParams,
                     seeds: Sequence[int]) -> list[list[int]]:
        """The new token ids after each row of prompt ids, up to (not including) the first stop token."""
        from transformers import GenerationConfig, LogitsProcessorList

        check_lengths("seeds", seeds, rows)
        if any(len(r) == 0 for r in rows):
            raise ValueError("a prompt has no tokens")
        stop = self._stop_ids()
        gen_cfg = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                                   pad_token_id=self._pad_id(), eos_token_id=stop or None)
        if self.prefix is not None:
            return [self._generate_cached(list(r), gen_cfg, params, s, stop) for r, s in zip(rows, seeds)]
        out: list[list[int]] = []
        for lo in range(0, len(rows), self.batch_size):
            gens = []
            for s in seeds[lo:lo + self.batch_size]:
                g = torch.Generator("cpu")
                g.manual_seed(int(s))
                gens.append(g)
            ids, mask = self._left_pad(rows[lo:lo + self.batch_size])
            full = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                                       logits_processor=LogitsProcessorList([_SeededSampler(params, gens)]))
            for row in full[:, ids.shape[1]:].tolist():
                # a finished row is padded out to the longest; everything from its stop token on is not text
                cut = next((i for i, t in enumerate(row) if t in stop), len(row))
                out.append(row[:cut])
        return out

    def _generate_cached(self, row: list[int], gen_cfg, params: SamplingParams, seed: int,
                         stop: list[int]) -> list[int]:
        from transformers import LogitsProcessorList

        g = torch.Generator("cpu")
        g.manual_seed(int(seed))
        cache = self.prefix.take(row, len(row) - 1, self.model.config)
        ids = torch.tensor([row], device=self.device)
        full = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache,
                                   generation_config=gen_cfg,
                                   logits_processor=LogitsProcessorList([_SeededSampler(params, [g])]))
        seq = full[0].tolist()
        self.prefix.keep(seq[:cache.get_seq_length()], cache)
        new = seq[len(row):]
        return new[:next((i for i, t in enumerate(new) if t in stop), len(new))]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        check_lengths("seeds", seeds, prompts)
        new = self.generate_ids([self.encode_prompt(p) for p in prompts], params, seeds)
        return [self.decode(r) for r in new]

    def generate_and_score(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int],
                           options: Sequence[Sequence[str]]) -> list[tuple[str, list[float]]]:
        """With the prefix cache, prompt by prompt, so each prompt's options reuse its cache;
        without it, batched (what the batches are for)."""
        how = prompt_by_prompt if self.prefix is not None else batched_generate_and_score
        return how(self, prompts, params, seeds, options)

    @torch.no_grad()
    def _logprob_rows(self, rows: Sequence[Sequence[int]], top: int = 0):
        """For each row: log p(token t | tokens < t) for t >= 1, and the top-`top` (ids, log-probs) there."""
        chosen, tops = [], []
        for lo in range(0, len(rows), self.batch_size):
            chunk = rows[lo:lo + self.batch_size]
            ids, mask = self._left_pad(chunk)
            # left padding shifts positions unless they are counted from each row's first real token
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            logp = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float().log_softmax(-1)
            width = ids.shape[1]
            for r, row in enumerate(chunk):
                # the token at position t is predicted by the logits at t - 1
                lp = logp[r, width - len(row):width - 1]
                chosen.append(lp.gather(-1, ids[r, width - len(row) + 1:, None])[:, 0].cpu())
                tops.append(torch.topk(lp, top, dim=-1) if top > 0 else None)
        return chosen, tops

    def token_logprobs(self, ids: Sequence[int], top: int = 0) -> tuple[list[float], list[dict[int, float]]]:
        """log p(ids[t] | ids[:t]) for t >= 1, and the `top` most likely ids at each of those positions."""
        if len(ids) < 2:
            return [], []
        (chosen,), (best,) = self._logprob_rows([list(ids)], top)
        alts = [] if best is None else [dict(zip(i.tolist(), v.tolist())) for v, i in zip(best.values, best.indices)]
        return chosen.tolist(), alts

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[float]:
        check_lengths("continuations", continuations, prompts)
        rows, cont_lens = [], []
        for prompt, cont in zip(prompts, continuations):
            # tokenized apart so every label is scored after the same prompt tokens
            c = self.encode_continuation(cont)
            if not c:
                raise ValueError(f"continuation {cont!r} has no tokens")
            p = self.encode_prompt(prompt)
            if not p:
                raise ValueError(f"prompt {prompt!r} has no tokens: nothing to condition the continuation on")
            rows.append(p + c)
            cont_lens.append(len(c))
        return self._continuation_logprobs(rows, cont_lens)

    @torch.no_grad()
    def _continuation_logprobs(self, rows: Sequence[Sequence[int]], cont_lens: Sequence[int]) -> list[float]:
        """Sum of log p over each row's last cont_lens[i] tokens. Only the positions that predict them
        go through the LM head (logits_to_keep): over a long prompt the full (length x vocab) logits
        would cost more memory than the model itself."""
        if self.prefix is not None:
            return [self._continuation_logprob_cached(list(r), n) for r, n in zip(rows, cont_lens)]
        out = []
        for lo in range(0, len(rows), self.batch_size):
            chunk, lens = rows[lo:lo + self.batch_size], cont_lens[lo:lo + self.batch_size]
            ids, mask = self._left_pad(chunk)
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            keep = max(lens) + 1
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
            logp = logits.float().log_softmax(-1)  # (batch, keep, vocab): the last `keep` positions
            for r, n in enumerate(lens):
                # the continuation's tokens are the row's last n; each is predicted one position earlier
                lp = logp[r, keep - n - 1:keep - 1]
                out.append(float(lp.gather(-1, ids[r, ids.shape[1] - n:, None])[:, 0].sum()))
        return out

    @torch.no_grad()
    def _continuation_logprob_cached(self, row: list[int], n: int) -> float:
        # the position before the continuation predicts its first token, so it is fed, not reused
        cache = self.prefix.take(row, len(row) - n - 1, self.model.config)
        start = cache.get_seq_length()
        ids = torch.tensor([row[start:]], device=self.device)
        logits = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=n + 1).logits
        self.prefix.keep(row, cache)
        lp = logits[0, :n].float().log_softmax(-1)
        return float(lp.gather(-1, torch.tensor(row[-n:], device=self.device)[:, None])[:, 0].sum())
