"""Statistics the baselines need from target data: Fisher row importance (FWSVD) and mean
absolute input activations (ASVD), collected with hooks on the named linear layers."""

from __future__ import annotations

import torch
import torch.nn as nn

from compression.data import lm_loss


def fisher_rows(model: nn.Module, names: list[str], blocks: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Per layer, I_i = sum_j mean over batches of (dL/dW_ij)^2: the importance of output row i."""
    layers = {n: model.get_submodule(n) for n in names}
    was = {n: layer.weight.requires_grad for n, layer in layers.items()}
    for layer in layers.values():
        layer.weight.requires_grad_(True)
    acc = {n: torch.zeros(layer.out_features, dtype=torch.float64) for n, layer in layers.items()}
    batches = 0
    model.eval()
    for s in range(0, blocks.shape[0], batch_size):
        model.zero_grad(set_to_none=True)
        lm_loss(model, blocks[s : s + batch_size]).backward()
        for n, layer in layers.items():
            acc[n] += layer.weight.grad.detach().to(torch.float64).square().sum(dim=1)
        batches += 1
    for n, layer in layers.items():
        layer.weight.grad = None
        layer.weight.requires_grad_(was[n])
    return {n: a / max(batches, 1) for n, a in acc.items()}


@torch.no_grad()
def activation_absmean(model: nn.Module, names: list[str], blocks: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Per layer, mean |x_j| of each input channel over every calibration token."""
    sums = {n: None for n in names}
    counts = {n: 0 for n in names}
    hooks = []

    def hook(name):
        def fn(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            s = x.abs().sum(dim=0)
            sums[name] = s if sums[name] is None else sums[name] + s
            counts[name] += x.shape[0]
        return fn

    for n in names:
        hooks.append(model.get_submodule(n).register_forward_pre_hook(hook(n)))
    try:
        model.eval()
        for s in range(0, blocks.shape[0], batch_size):
            model(input_ids=blocks[s : s + batch_size])
    finally:
        for h in hooks:
            h.remove()
    return {n: sums[n] / counts[n] for n in names}


__all__ = ["activation_absmean", "fisher_rows"]
