"""The compression job's steps: data, one compressed model per (method, keep ratio), its evaluation.

Basel relearns on Ray Train (compression.ray_train); the SVD baselines need only target
statistics (Fisher rows, activation means, ASVD's layer sensitivities), computed once on the
dense model from one calibration set, the first `data.calibration_blocks` training blocks.
Every method ends as LowRankLinear layers (ASVD's search may leave a layer dense) at the same
parameter budget, keep_ratio x the dense parameters of the target layers: Basel prunes to it,
the baselines take their ranks' floors and then the leftover parameters as extra ranks
(`allocate_ranks`), so all land within one rank of it. Every method gets the same optional
fine-tune and is measured the same way.
"""

from __future__ import annotations

import logging
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from compression.asvd import layer_sensitivity, search_ratios
from compression.baselines import allocate_ranks, asvd_factors, fwsvd_factors, svd_factors
from compression.bases import matching_linears
from compression.calibrate import activation_absmean, fisher_rows
from compression.config import CompressionConfig
from compression.data import lm_loss, perplexity, token_blocks
from compression.hf import save_compressed
from compression.lowrank import LowRankLinear, install_factors, low_rank_params
from core.config import ConfigError
from core.data import DataConfig, load_splits, load_texts
from core.models import load_causal_lm, resolve
from core.timing import ratio_in_turns, timed_in_turns

log = logging.getLogger("tailor.compression")


@dataclass
class LMData:
    train: torch.Tensor  # blocks x seq_len
    eval_target: torch.Tensor
    eval_off_target: torch.Tensor
    calibration: torch.Tensor


def check_causal_lm(name: str) -> None:
    """Refuse an encoder (anything whose architectures are not a causal-LM head) before any work."""
    if name == "tiny-llama":
        return
    if name == "tiny-bert":
        archs, model_type = ["BertModel"], "bert"
    else:
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(resolve(name))
        except OSError as err:
            raise ConfigError("model.name", f"cannot read the config of {name!r}: {err}") from None
        archs, model_type = list(config.architectures or []), config.model_type
    if archs:
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    else:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not causal:
        raise ConfigError("model.name", f"{name!r} is a {archs[0] if archs else model_type} model, not a causal LM; "
                                        "compression needs a decoder such as smollm2-135m, tiny-llama or a "
                                        "Llama/Qwen/Mistral id")


def _split_texts(name: str, column: str) -> tuple[list[str], list[str]]:
    if name in ("rotten_tomatoes", "tweets"):
        train, test = load_splits(DataConfig(name=name))
        return train.texts, test.texts
    texts = load_texts(name, column)
    cut = max(1, len(texts) // 10)
    return texts[cut:], texts[:cut]


def load_lm_data(cfg: CompressionConfig, tokenizer) -> LMData:
    d = cfg.data
    train_texts, test_texts = _split_texts(d.target, d.text_column)
    train = token_blocks(train_texts, tokenizer, d.seq_len, d.max_train_blocks)
    if train.shape[0] < d.calibration_blocks:
        raise ConfigError("data.calibration_blocks", f"{d.calibration_blocks} calibration blocks asked for, but the "
                                                     f"target text gives only {train.shape[0]} training blocks")
    eval_target = token_blocks(test_texts, tokenizer, d.seq_len, d.eval_blocks)
    off = token_blocks(load_texts(d.off_target, d.text_column, limit=4 * d.eval_blocks), tokenizer, d.seq_len,
                       d.eval_blocks)
    if eval_target.shape[0] == 0 or off.shape[0] == 0:
        raise ConfigError("data", f"too little text for one {d.seq_len}-token evaluation block")
    return LMData(train, eval_target, off, train[: d.calibration_blocks])


def check_steps(cfg: CompressionConfig, n_blocks: int) -> None:
    """A target set too small for Basel's planned steps fails here, before Ray starts."""
    from compression.train import steps_for

    if "basel" not in cfg.methods:
        return
    b = cfg.basel
    total = steps_for(n_blocks, b, cfg.train.num_workers)
    free = total - int(b.warmup_fraction * total)
    if free < b.prune_steps + 1:
        raise ConfigError("data.target", f"{n_blocks} training blocks of {cfg.data.seq_len} tokens give {total} steps "
                                         f"({b.epochs} epoch(s), batch {b.batch_size} x {cfg.train.num_workers} "
                                         f"worker(s)), {free} after the warm-up; basel.prune_steps={b.prune_steps} "
                                         "needs at least prune_steps + 1: use more target text, more epochs, or "
                                         "fewer prune_steps")


def target_stats(cfg: CompressionConfig, data: LMData) -> dict:
    """Fisher rows and activation means of the dense model's target layers (for FWSVD, ASVD) and
    ASVD's per-layer sensitivities, all from the calibration set."""
    need = {m for m in cfg.methods if m in ("fwsvd", "asvd")}
    if not need:
        return {}
    model = load_causal_lm(cfg.model, seed=cfg.seed)
    model.requires_grad_(False)
    names = matching_linears(model, cfg.target_modules)
    out = {}
    if "fwsvd" in need:
        out["fisher"] = fisher_rows(model, names, data.calibration, batch_size=4)
    if "asvd" in need:
        out["act"] = activation_absmean(model, names, data.calibration, batch_size=4)
        if cfg.asvd.search:
            out["sensitivity"] = layer_sensitivity(model, names, out["act"],
                                                   data.calibration[: cfg.asvd.sensitivity_blocks], cfg.asvd.grid,
                                                   cfg.asvd.alpha)
    return out


def target_budget(model: nn.Module, names: list[str], ratio: float) -> int:
    """keep_ratio of the target layers' dense parameters: Basel's budget (prune.budget_for) and everyone's."""
    return int(ratio * sum(model.get_submodule(n).weight.numel() for n in names))


def baseline_ranks(cfg: CompressionConfig, method: str, model: nn.Module, names: list[str], ratio: float,
                   stats: dict) -> dict[str, int]:
    """Per target layer, the baseline's rank at `ratio` (a layer missing stays dense): ASVD's
    searched ratios or the uniform one, then the budget's leftover as extra ranks."""
    shapes = {n: tuple(model.get_submodule(n).weight.shape) for n in names}
    budget = target_budget(model, names, ratio)
    if method == "asvd" and cfg.asvd.search:
        ratios = search_ratios(stats["sensitivity"], {n: m * k for n, (m, k) in shapes.items()}, ratio)
        dense = sum(m * k for n, (m, k) in shapes.items() if ratios[n] >= 1.0)
        return allocate_ranks({n: s for n, s in shapes.items() if ratios[n] < 1.0}, budget - dense, ratios)
    return allocate_ranks(shapes, budget, ratio)


def target_params(model: nn.Module, names: list[str]) -> int:
    """Parameters of the target layers as they are now: low-rank factors or dense weights (no biases)."""
    total = 0
    for n in names:
        m = model.get_submodule(n)
        total += m.params() if isinstance(m, LowRankLinear) else m.weight.numel()
    return total


def compress(cfg: CompressionConfig, method: str, ratio: float, data: LMData, stats: dict, storage: Path) -> tuple[nn.Module, dict]:
    """A fresh model compressed by `method` to `ratio` of its target-layer parameters."""
    model = load_causal_lm(cfg.model, seed=cfg.seed)
    model.requires_grad_(False)
    info: dict = {}
    names = matching_linears(model, cfg.target_modules)
    budget = target_budget(model, names, ratio)
    if method == "basel":
        from compression.ray_train import relearn_on_ray

        _, history, factors = relearn_on_ray(cfg.model, cfg.target_modules, data.train, cfg.basel, budget, cfg.train,
                                             storage, seed=cfg.seed, name=f"basel-{ratio}")
        install_factors(model, factors)
        info["history"] = history
    else:
        if method not in ("svd", "fwsvd", "asvd"):
            raise ConfigError("methods", f"{method!r} is not allowed; allowed values: basel, svd, fwsvd, asvd")
        ranks = baseline_ranks(cfg, method, model, names, ratio, stats)
        factors = {}
        for name, r in ranks.items():
            w = model.get_submodule(name).weight.detach()
            if method == "svd":
                factors[name] = svd_factors(w, r)
            elif method == "fwsvd":
                factors[name] = fwsvd_factors(w, stats["fisher"][name], r)
            else:
                factors[name] = asvd_factors(w, stats["act"][name], r, cfg.asvd.alpha)
        install_factors(model, factors)
        info["ranks"] = ranks
    if cfg.finetune.steps:
        info["finetune_loss"] = finetune(model, data.train, cfg)
    info["target_params"] = target_params(model, names)
    info["budget"] = budget
    return model.eval(), info


def finetune(model: nn.Module, blocks: torch.Tensor, cfg: CompressionConfig) -> float:
    """The same short fine-tune of every method's low-rank factors; returns the last loss."""
    params = [p for m in model.modules() if isinstance(m, LowRankLinear) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.finetune.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(cfg.finetune.steps):
        idx = torch.randint(0, blocks.shape[0], (cfg.finetune.batch_size,), generator=g)
        loss = lm_loss(model, blocks[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in params:
        p.requires_grad_(False)
    return float(loss)


@torch.no_grad()
def paired_times(models: dict[str, nn.Module], blocks: torch.Tensor, rounds: int = 20) -> dict[str, list[float]]:
    """Seconds of one forward pass over `blocks` per model, the models timed in turns
    (core.timing), so that a ratio within a round cancels the CPU's drift."""
    for m in models.values():
        m.eval()
    return timed_in_turns({name: (lambda m=m: m(input_ids=blocks)) for name, m in models.items()}, rounds)


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors")) / 2**20


def evaluate(model: nn.Module, data: LMData, cfg: CompressionConfig, save_to: Path | None, tokenizer,
             keep: bool, reference: nn.Module | None = None) -> dict:
    """Perplexities, sizes and CPU speed. With a `reference` (the dense model), the two are timed
    in turns and `speedup` is the median over rounds of its time over the model's."""
    batch = data.eval_target[: cfg.latency_batch]
    out = {
        "target_ppl": perplexity(model, data.eval_target),
        "off_target_ppl": perplexity(model, data.eval_off_target),
        "params": sum(p.numel() for p in model.parameters()),
        "linear_params": low_rank_params(model) or None,
    }
    pair = {"model": model} if reference is None else {"model": model, "reference": reference}
    times = paired_times(pair, batch, cfg.latency_rounds)
    out["latency_s"] = statistics.median(times["model"])
    out["speedup"] = ratio_in_turns(times, "reference", "model") if reference is not None else 1.0
    out["tokens_per_s"] = batch.numel() / out["latency_s"]
    if save_to is not None:
        if any(isinstance(m, LowRankLinear) for m in model.modules()):
            save_compressed(model, save_to, tokenizer)
        else:
            model.save_pretrained(save_to)
        out["file_mb"] = folder_mb(save_to)
        if not keep:
            shutil.rmtree(save_to, ignore_errors=True)
    return out


__all__ = ["LMData", "baseline_ranks", "check_causal_lm", "target_budget", "target_params", "check_steps", "compress", "evaluate", "finetune", "paired_times",
           "load_lm_data", "target_stats"]
