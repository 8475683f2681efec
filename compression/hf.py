"""Save a compressed causal LM as a normal Hugging Face folder that reloads without tailor.

The folder holds the weights (each compressed layer as `<name>.down.weight`, `<name>.up.weight`),
a config.json that records every compressed layer's rank (`lowrank_ranks`), and two small
remote-code files (a config class and a model class that swaps those layers for two Linears),
registered through `auto_map`. Reload with:

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

The remote code needs only torch and transformers. Tied input/output embeddings are left
dense and stay tied (transformers re-ties them from `tie_word_embeddings` on load).
"""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
from pathlib import Path

import torch.nn as nn

from compression.lowrank import LowRankLinear

CONFIG_MODULE = "configuration_tailor_lowrank"
MODEL_MODULE = "modeling_tailor_lowrank"

_CONFIG_TEMPLATE = '''"""Written by tailor (compression/hf.py): {base_config} with the ranks of its low-rank layers."""

from transformers import {base_config}


class LowRankConfig({base_config}):
    model_type = "{model_type}"

    def __init__(self, lowrank_ranks=None, **kwargs):
        # {{module name: rank}} of every nn.Linear replaced by two Linears (n -> rank -> m)
        self.lowrank_ranks = dict(lowrank_ranks or {{}})
        super().__init__(**kwargs)
'''

_MODEL_TEMPLATE = '''"""Written by tailor (compression/hf.py): {base_model} whose listed linear layers are low rank."""

import torch
import torch.nn as nn
from transformers import {base_model}

from .{config_module} import LowRankConfig


{lowrank_source}

class LowRankForCausalLM({base_model}):
    config_class = LowRankConfig

    def __init__(self, config):
        super().__init__(config)
        for name, rank in config.lowrank_ranks.items():
            old = self.get_submodule(name)
            parent, _, child = name.rpartition(".")
            new = LowRankLinear(old.in_features, old.out_features, rank, bias=old.bias is not None)
            setattr(self.get_submodule(parent) if parent else self, child, new)
'''


def _lowrank_source() -> str:
    """LowRankLinear's source without its tailor-side constructor (from_factors, params)."""
    src = inspect.getsource(LowRankLinear)
    keep = []
    skip = False
    for line in src.splitlines():
        stripped = line.strip()
        if stripped.startswith("@classmethod") or stripped.startswith("def from_factors") or stripped.startswith("def params"):
            skip = True
            continue
        if skip and (stripped.startswith("def ") or stripped.startswith("@")):
            skip = False
        if not skip:
            keep.append(line)
    return "\n".join(keep) + "\n"


def save_compressed(model: nn.Module, folder: str | Path, tokenizer=None, ranks: dict[str, int] | None = None) -> Path:
    """Write `model` (with LowRankLinear layers) to `folder` atomically (temporary folder, then rename)."""
    folder = Path(folder)
    ranks = ranks if ranks is not None else {n: m.rank for n, m in model.named_modules() if isinstance(m, LowRankLinear)}
    base_model, base_config = type(model).__name__, type(model.config).__name__
    model_type = f"tailor_lowrank_{model.config.model_type}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        cfg = json.loads((tmp / "config.json").read_text())
        cfg.update({
            "model_type": model_type,
            "lowrank_ranks": ranks,
            "architectures": ["LowRankForCausalLM"],
            "auto_map": {"AutoConfig": f"{CONFIG_MODULE}.LowRankConfig",
                         "AutoModelForCausalLM": f"{MODEL_MODULE}.LowRankForCausalLM"},
        })
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        (tmp / f"{CONFIG_MODULE}.py").write_text(
            _CONFIG_TEMPLATE.format(base_config=base_config, model_type=model_type))
        (tmp / f"{MODEL_MODULE}.py").write_text(_MODEL_TEMPLATE.format(
            base_model=base_model, config_module=CONFIG_MODULE, lowrank_source=_lowrank_source()))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_compressed(folder: str | Path):
    """What a user runs (no tailor code needed): AutoModelForCausalLM with trust_remote_code."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True)


__all__ = ["load_compressed", "save_compressed"]
