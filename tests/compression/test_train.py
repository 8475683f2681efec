"""Basel's relearning loop on a tiny Llama: the loss falls, and it ends pruned to the budget."""

import torch

from compression.bases import to_basis_model
from compression.data import perplexity, token_blocks
from compression.prune import budget_for, factorized_params
from compression.train import BaselConfig, basis_state, load_basis_state, relearn
from core.models import load_tokenizer
from tests.compression.test_bases import TARGETS, tiny_llama


def test_token_blocks_are_consecutive_tokens_without_padding():
    tok = load_tokenizer("tiny-llama")
    blocks = token_blocks(["a good film", "a bad one, and long"], tok, seq_len=4)
    flat = tok("a good film", add_special_tokens=False)["input_ids"] + [tok.eos_token_id or tok.sep_token_id]
    assert blocks.dtype == torch.int64 and blocks.shape[1] == 4
    assert blocks.flatten()[: len(flat)].tolist() == flat[: blocks.numel()][: len(flat)]
    assert token_blocks(["x " * 100], tok, seq_len=8, max_blocks=3).shape == (3, 8)


def test_relearning_lowers_the_loss_and_ends_on_the_budget():
    model = tiny_llama(seed=3)
    layers = to_basis_model(model, TARGETS, new_bases=2)
    g = torch.Generator().manual_seed(0)
    # a learnable target: a repeated pattern of 8 tokens
    blocks = torch.tensor([1, 5, 9, 2, 7, 3, 8, 4] * 4).repeat(64, 1)
    blocks = torch.roll(blocks, shifts=1, dims=1)[torch.randperm(64, generator=g)]
    before = perplexity(model, blocks)
    budget = budget_for(layers, 0.5)
    cfg = BaselConfig(new_bases=2, batch_size=4, epochs=2, lr=0.05, new_bases_lr=0.01, prune_steps=4, log_every=4)
    history = relearn(model, layers, blocks, cfg, budget, seed=0)
    assert history[-1]["step"] == 32 and factorized_params(layers) <= budget
    assert history[-1]["params"] == factorized_params(layers)
    assert perplexity(model, blocks) < before
    state = basis_state(layers)
    other = tiny_llama(seed=3)
    other_layers = to_basis_model(other, TARGETS, new_bases=2)
    load_basis_state(other_layers, state)
    with torch.no_grad():
        torch.testing.assert_close(other(input_ids=blocks[:2]).logits, model(input_ids=blocks[:2]).logits)
