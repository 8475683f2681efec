"""The networks: a ViT patch encoder (linear 16x16 patch embedding, as UniTable), a Transformer
decoder whose self-attention keeps a KV cache, and batched greedy decoding restricted to the
task's allowed tokens, with the cache or without it (recomputing the whole prefix each step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tables.vocab import EOS, PAD


@dataclass
class ModelConfig:
    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff: int = 256
    patch: int = 16
    dropout: float = 0.0
    # "learned" (UniTable's ViT) or "sincos": fixed 2D sine-cosine patch positions (MAE), which
    # give a small model trained on few tables each patch's place without having to learn it
    pos_embedding: Literal["learned", "sincos"] = "learned"


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[len(positions), dim]: sines and cosines of (possibly fractional) positions at dim/2
    frequencies, the code of one axis in `sincos_2d`."""
    freq = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    a = positions.double()[:, None] * freq[None]
    return torch.cat([a.sin(), a.cos()], dim=1).float()


def sincos_2d(rows: int, cols: int, dim: int) -> torch.Tensor:
    """[1, rows*cols, dim] fixed position codes, row-major: the first half of the channels encode
    the column, the second half the row (MAE's 2D sine-cosine positions)."""
    if dim % 4:
        raise ValueError(f"sincos positions need d_model divisible by 4, got {dim}")
    x, y = sincos_1d(torch.arange(cols), dim // 2), sincos_1d(torch.arange(rows), dim // 2)
    grid = torch.cat([x[None, :, :].expand(rows, cols, -1), y[:, None, :].expand(rows, cols, -1)], dim=-1)
    return grid.reshape(1, rows * cols, dim)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, H, W] in [0, 1] -> [B, (H/p)(W/p), p*p] row-major patches."""
    B, H, W = images.shape
    x = images.reshape(B, H // patch, patch, W // patch, patch).permute(0, 1, 3, 2, 4)
    return x.reshape(B, (H // patch) * (W // patch), patch * patch)


class PatchEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, height: int, width: int):
        super().__init__()
        self.patch = cfg.patch
        self.grid = (height // cfg.patch, width // cfg.patch)
        n = self.grid[0] * self.grid[1]
        self.embed = nn.Linear(cfg.patch * cfg.patch, cfg.d_model)
        if cfg.pos_embedding == "sincos":
            self.register_buffer("pos", sincos_2d(*self.grid, cfg.d_model), persistent=False)
        elif cfg.pos_embedding == "learned":
            self.pos = nn.Parameter(torch.randn(1, n, cfg.d_model) * 0.02)
        else:
            raise ValueError(f"pos_embedding must be 'learned' or 'sincos', got {cfg.pos_embedding!r}")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.encoder_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, H, W] uint8 or float in [0, 1]; mask [B, N] bool replaces patches (MIM)."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        x = self.embed(patchify(1.0 - images, self.patch))  # ink is 1: white padding embeds as zeros
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        return self.norm(self.blocks(x + self.pos))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.self_out = nn.Linear(d, d)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(d, 2 * d)
        self.cross_out = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.ff), nn.GELU(), nn.Linear(cfg.ff, d))
        self.drop = nn.Dropout(cfg.dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.heads, D // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        B, H, T, Dh = x.shape
        return x.transpose(1, 2).reshape(B, T, H * Dh)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.cross_kv(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, mem_kv: tuple[torch.Tensor, torch.Tensor], cache: dict | None = None):
        q, k, v = (self._split(t) for t in self.qkv(self.ln1(x)).chunk(3, dim=-1))
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # a cached step feeds one new position, which may see every cached one
        h = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1)
        x = x + self.drop(self.self_out(self._merge(h)))
        h = F.scaled_dot_product_attention(self._split(self.cross_q(self.ln2(x))), *mem_kv)
        x = x + self.drop(self.cross_out(self._merge(h)))
        return x + self.drop(self.ff(self.ln3(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(1, max_len, cfg.d_model) * 0.02)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, start: int = 0,
                caches: list[dict] | None = None, mem_kvs: list | None = None) -> torch.Tensor:
        T = tokens.shape[1]
        x = self.tok(tokens) + self.pos[:, start:start + T]
        if mem_kvs is None:
            mem_kvs = [layer.memory_kv(memory) for layer in self.layers]
        for i, layer in enumerate(self.layers):
            x = layer(x, mem_kvs[i], None if caches is None else caches[i])
        return self.head(self.norm(x))


class EncoderDecoder(nn.Module):
    """One task model: the encoder (pretrained or not) and a decoder; next-token CE. `coords`
    (lo, hi) names the box coordinate tokens, which sincos positions initialise."""

    def __init__(self, cfg: ModelConfig, height: int, width: int, vocab_size: int, max_len: int,
                 coords: tuple[int, int] | None = None):
        super().__init__()
        self.encoder = PatchEncoder(cfg, height, width)
        self.decoder = Decoder(cfg, vocab_size, max_len)
        if coords is not None and cfg.pos_embedding == "sincos":
            # a coordinate token starts as the position code of its pixel, in the patch units of
            # the encoder's code, in both halves: a box's corner can look up its own patches
            lo, hi = coords
            code = sincos_1d(torch.arange(hi - lo) / cfg.patch, cfg.d_model // 2)
            with torch.no_grad():
                self.decoder.tok.weight[lo:hi] = torch.cat([code, code], dim=1)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor, freeze_encoder: bool = False) -> torch.Tensor:
        """Mean over sequences of each sequence's mean token CE: equal-sized shards average to the
        whole batch's loss, so data-parallel workers step as one process would."""
        if freeze_encoder:
            with torch.no_grad():
                memory = self.encoder(images)
        else:
            memory = self.encoder(images)
        logits = self.decoder(tokens[:, :-1], memory)
        target = tokens[:, 1:]
        ce = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD, reduction="none")
        valid = (target != PAD).float()
        return ((ce * valid).sum(1) / valid.sum(1).clamp(min=1)).mean()

    forward = loss


@torch.no_grad()
def greedy_decode(model: EncoderDecoder, images: torch.Tensor, bos: int, allowed: torch.Tensor, max_len: int,
                  use_cache: bool = True, stop_at_eos: bool = True, eos_every: int = 1,
                  memory: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched greedy decoding. allowed [V, V]: tokens permitted after each previous token.
    eos_every=4 lets EOS end only whole boxes. stop_at_eos=False runs all max_len steps (timing).
    Returns (tokens [B, <=max_len] starting with bos, log-probabilities of the chosen tokens)."""
    model.eval()
    if memory is None:
        memory = model.encoder(images)
    B = memory.shape[0]
    dev = memory.device
    allowed = allowed.to(dev)
    tokens = torch.full((B, 1), bos, dtype=torch.long, device=dev)
    logps = torch.zeros(B, 0, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    dec = model.decoder
    caches = [dict() for _ in dec.layers] if use_cache else None
    mem_kvs = [layer.memory_kv(memory) for layer in dec.layers] if use_cache else None
    steps = min(max_len, dec.max_len) - 1
    for step in range(steps):
        if use_cache:
            logits = dec(tokens[:, -1:], memory, start=step, caches=caches, mem_kvs=mem_kvs)[:, -1]
        else:
            logits = dec(tokens, memory)[:, -1]
        mask = allowed[tokens[:, -1]]
        if eos_every > 1 and (step % eos_every) != 0:
            mask = mask.clone()
            mask[:, EOS] = False
        if not stop_at_eos:
            mask = mask.clone()
            mask[:, EOS] = False
        logp = torch.log_softmax(logits.float().masked_fill(~mask, float("-inf")), dim=-1)
        best, nxt = logp.max(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        logps = torch.cat([logps, torch.where(done, torch.zeros_like(best), best)[:, None]], dim=1)
        done |= nxt == EOS
        if stop_at_eos and bool(done.all()):
            break
    return tokens, logps


__all__ = ["Decoder", "DecoderLayer", "EncoderDecoder", "ModelConfig", "PatchEncoder", "greedy_decode", "patchify",
           "sincos_1d", "sincos_2d"]
