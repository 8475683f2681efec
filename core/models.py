"""Model loading: Hugging Face ids, local paths, and the offline short names of core.registry.

Short names (`python -m core.models` lists them, with sizes, licences and whether installed):
- `minilm`, `mpnet`: sentence-transformers encoders (all-MiniLM-L6-v2, all-mpnet-base-v2).
- `smollm2-135m`, `qwen2.5-coder-1.5b`, `qwen2.5-coder-0.5b`, `gemma-3-270m`: quantized GGUF causal
  LMs. The `llamacpp` LLM backend serves the GGUF as it is; loading one here (the `hf` backend)
  dequantizes it once and caches a plain HF checkpoint (later loads take seconds).
- `tiny-bert`, `tiny-llama`: random, tiny configs for unit tests (MiniLM's tokenizer).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from core import registry
from core.config import ConfigError, require

log = logging.getLogger(__name__)

SHORT_NAMES = tuple(registry.names())
# A Hugging Face hub id, "org/name": models and datasets are both named this way.
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_lock = threading.Lock()


@dataclass
class ModelConfig:
    name: str = "minilm"
    # "eager" supports forward-mode AD everywhere; CPU flash SDPA does not (torch.func.jvp fails).
    attn_implementation: Literal["eager", "sdpa"] = "eager"
    device: str = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_length: int = 64
    pooling: Literal["mean", "cls"] = "mean"

    def validate(self) -> None:
        require(self.max_length > 0, "max_length", f"must be > 0, got {self.max_length}")
        require(
            self.device == "auto" or re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device) is not None,
            "device",
            f"{self.device!r} is not allowed; allowed values: 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'",
        )
        check_model_name(self.name, key="name")


def cache_dir() -> Path:
    """Where converted checkpoints live: $TAILOR_CACHE, else ~/.cache/tailor."""
    return Path(os.environ.get("TAILOR_CACHE", Path.home() / ".cache" / "tailor"))


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def check_model_name(name: str, key: str = "model.name") -> None:
    """Fail early, naming the key, when `name` is neither a short name, a local path nor an HF id,
    or is a short name whose packages are not installed (the error names the make target)."""
    if name in SHORT_NAMES:
        registry.require_installed(name, key)
        return
    if Path(name).expanduser().exists() or HF_ID.match(name):
        return
    raise ConfigError(
        key,
        f"unknown model {name!r}; allowed: {', '.join(SHORT_NAMES)}, a local folder, "
        "or a Hugging Face id like 'org/name'",
    )


def minilm_dir() -> Path:
    return registry.path("minilm", key="model.name")


def gguf_path(name: str, key: str = "model") -> Path:
    """The GGUF file of a registry LLM (assembled once into the cache), or a path to a .gguf."""
    check_gguf_name(name, key)
    if name in registry.REGISTRY:
        return registry.path(name, key)
    return Path(name).expanduser()


def check_gguf_name(name: str, key: str = "model") -> None:
    """Cheap, for config validation: a registry GGUF model that is installed, or a .gguf file."""
    if name in registry.REGISTRY and registry.spec(name).kind == "gguf":
        registry.require_installed(name, key)
        return
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return
    allowed = [n for n, s in registry.REGISTRY.items() if s.kind == "gguf"]
    raise ConfigError(key, f"{name!r} is neither a GGUF model of the registry nor a .gguf file; "
                           f"allowed: {', '.join(allowed)}, or a path to a .gguf file")


def smollm2_dir() -> Path:
    return gguf_checkpoint("smollm2-135m")


def gguf_checkpoint(name: str) -> Path:
    """Dequantize a registry GGUF once into a plain HF checkpoint; return its folder."""
    s = registry.spec(name)
    # smollm2's folder keeps its earlier name, so existing caches stay valid
    out = cache_dir() / ("smollm2-135m-instruct" if name == "smollm2-135m" else f"{name}-hf-{s.sha256[:12]}")
    if (out / "config.json").exists():
        return out
    gguf = registry.path(name, key="model.name")
    pkg = gguf.parent
    with _lock:
        if (out / "config.json").exists():
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("converting %s to a plain HF checkpoint in %s (once; ~30 s for SmolLM2, minutes for larger)",
                 gguf.name, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name}-"))
        try:
            tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=gguf.name, dtype=torch.float32)
            # The dequantized weights are plain fp32: drop the quantizer so the saved
            # checkpoint loads as an ordinary model.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            try:
                tmp.rename(out)  # atomic: a concurrent converter may have won; theirs is equal
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def resolve(name: str) -> str:
    """Map a short name to a local folder; pass HF ids and paths through."""
    if name == "minilm" or name in ("tiny-bert", "tiny-llama"):
        return str(minilm_dir())  # the tiny models borrow MiniLM's tokenizer
    if name in registry.REGISTRY:
        if registry.spec(name).kind == "gguf":
            return str(gguf_checkpoint(name))
        return str(registry.path(name, key="model.name"))
    p = Path(name).expanduser()
    if p.exists():
        return str(p)
    check_model_name(name)
    return name


def tiny_config(name: str, attn_implementation: str = "eager"):
    from transformers import BertConfig, LlamaConfig

    if name == "tiny-bert":
        return BertConfig(
            vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, attn_implementation=attn_implementation,
        )
    return LlamaConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128,
        pad_token_id=0, attn_implementation=attn_implementation,
    )


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_backbone(cfg: ModelConfig, seed: int = 0) -> nn.Module:
    """The base encoder/decoder (no task head), frozen, in eval mode."""
    from transformers import AutoModel

    if cfg.name in ("tiny-bert", "tiny-llama"):
        torch.manual_seed(seed)
        model = AutoModel.from_config(tiny_config(cfg.name, cfg.attn_implementation))
    else:
        try:
            model = AutoModel.from_pretrained(
                resolve(cfg.name), attn_implementation=cfg.attn_implementation, dtype=_dtype(cfg.dtype)
            )
        except ValueError as err:
            # some architectures (MPNet, so `mpnet`) have no SDPA path: eager computes the same thing
            if cfg.attn_implementation != "sdpa" or "does not support" not in str(err):
                raise
            log.info("%s has no SDPA attention; loading it with eager attention", cfg.name)
            model = AutoModel.from_pretrained(resolve(cfg.name), attn_implementation="eager", dtype=_dtype(cfg.dtype))
    model.requires_grad_(False)
    return model.eval()


def load_causal_lm(cfg: ModelConfig, seed: int = 0) -> nn.Module:
    from transformers import AutoModelForCausalLM

    if cfg.name in ("tiny-bert", "tiny-llama"):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(tiny_config("tiny-llama", cfg.attn_implementation))
    else:
        path = resolve(cfg.name)
        model = AutoModelForCausalLM.from_pretrained(
            path, attn_implementation=cfg.attn_implementation, dtype=_dtype(cfg.dtype),
            trust_remote_code=is_tailor_lowrank(path),
        )
    return model.eval()


def is_tailor_lowrank(path: str) -> bool:
    """A local folder written by compression.hf.save_compressed: its model class is remote code
    that tailor wrote itself (model_type tailor_lowrank_*), so it is trusted; nothing else is."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    import json

    try:
        return str(json.loads(cfg.read_text()).get("model_type", "")).startswith("tailor_lowrank_")
    except (OSError, ValueError):
        return False


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean over real tokens (what sentence-transformers encoders were trained for), or CLS."""
    if how == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class TextClassifier(nn.Module):
    """Backbone -> pooled, L2-normalized sentence embedding -> linear head.

    The normalization makes a head set from normalized class prototypes a cosine
    nearest-centroid classifier, which is what the prototype initialization relies on.
    """

    def __init__(self, backbone: nn.Module, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(pool(out.last_hidden_state, attention_mask, self.pooling), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def prototype_head(sums: torch.Tensor, counts: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Head weight = scale * normalized class means, bias 0: a cosine nearest-centroid classifier."""
    means = sums / counts.clamp_min(1.0).unsqueeze(1)
    weight = scale * F.normalize(means, dim=1)
    return weight.float(), torch.zeros(weight.shape[0])


@dataclass
class AdapterConfig:
    type: Literal["lora", "bitfit", "ia3", "head"] = "lora"
    r: int = 1
    alpha: float = 1.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])

    def validate(self) -> None:
        require(self.r > 0, "r", f"must be > 0, got {self.r}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        if self.type in ("lora", "ia3"):
            require(len(self.target_modules) > 0, "target_modules", "needs at least one module name")


def check_target_modules(backbone: nn.Module, targets: list[str], key: str = "adapter.target_modules") -> None:
    """peft matches a target by the last component(s) of a module name: check each exists."""
    names = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    leaf = sorted({n.rsplit(".", 1)[-1] for n in names})
    for t in targets:
        if not any(n == t or n.endswith("." + t) for n in names):
            raise ConfigError(key, f"the model has no linear module {t!r}; its linear modules are: {', '.join(leaf)}")


# The attention projections by role, as the encoder families name them (BERT and RoBERTa, MPNet,
# Llama-style, DistilBERT). One config serves several students (GOLD's also_students), so a
# role named the BERT way must find MPNet's "q" and "v"; peft's own default table has no MPNet.
_PROJECTION_ROLES = (("query", "q", "q_proj", "q_lin"), ("key", "k", "k_proj", "k_lin"),
                     ("value", "v", "v_proj", "v_lin"))


def retarget(backbone: nn.Module, targets: list[str]) -> list[str]:
    """targets, each one the backbone lacks renamed to the backbone's name for the same attention
    projection (query, key, value); anything else is left for check_target_modules to refuse."""
    leaf = {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
    out = []
    for t in targets:
        if t not in leaf:
            names = next((r for r in _PROJECTION_ROLES if t in r), ())
            found = [n for n in names if n in leaf]
            if len(found) == 1:
                log.info("adapter.target_modules: %r is called %r in this model", t, found[0])
                t = found[0]
        out.append(t)
    return out


def apply_adapter(model: TextClassifier, cfg: AdapterConfig) -> TextClassifier:
    """Make only the adapter (and the head) trainable; the base stays frozen."""
    model.backbone.requires_grad_(False)
    if cfg.type == "lora":
        from peft import LoraConfig, get_peft_model

        targets = retarget(model.backbone, cfg.target_modules)
        check_target_modules(model.backbone, targets)
        model.backbone = get_peft_model(
            model.backbone,
            LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets),
        )
    elif cfg.type == "ia3":
        from peft import IA3Config, get_peft_model

        targets = retarget(model.backbone, cfg.target_modules)
        check_target_modules(model.backbone, targets)
        model.backbone = get_peft_model(model.backbone, IA3Config(target_modules=targets, feedforward_modules=[]))
    elif cfg.type == "bitfit":
        for name, p in model.backbone.named_parameters():
            if name.endswith(".bias"):
                p.requires_grad_(True)
    model.head.requires_grad_(True)
    return model


def build_classifier(model_cfg: ModelConfig, adapter_cfg: AdapterConfig, num_labels: int, seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)  # the head's and the adapters' init come from the run's seed
    backbone = load_backbone(model_cfg, seed=seed)
    model = TextClassifier(backbone, num_labels, model_cfg.pooling)
    model = apply_adapter(model, adapter_cfg)
    return model.to(resolve_device(model_cfg.device)).eval()


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors, by name, in named_parameters order (detached copies)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m core.models",
                                 description="The offline models: list them, or assemble installed ones into the cache.")
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("list", help="names, sizes, installed or not, licences (the default)")
    a = sub.add_parser("assemble", help="assemble (once) and check the named models; what `make models` runs")
    a.add_argument("names", nargs="+", choices=list(registry.REGISTRY))
    args = ap.parse_args(argv)
    if args.cmd == "assemble":
        try:
            for name in args.names:
                print(f"{name}: {registry.path(name)}")
        except (ConfigError, registry.AssemblyError) as err:
            print(err)
            return 1
        return 0
    print(registry.table())
    print(f"\ncache: {cache_dir()}  (TAILOR_CACHE)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
