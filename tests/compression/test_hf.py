"""A compressed model saves as a Hugging Face folder that reloads with trust_remote_code alone."""

import json

import torch

from compression.bases import to_basis_model
from compression.hf import save_compressed
from compression.lowrank import refactor_model
from compression.prune import budget_for, prune_to
from tests.compression.test_bases import TARGETS, tiny_llama


def test_save_reload_generate_and_keep_the_tie(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_llama(tie=True)
    layers = to_basis_model(model, TARGETS, new_bases=2)
    prune_to(layers, budget_for(layers, 0.5))
    ranks = refactor_model(model)
    ids = torch.randint(0, 512, (1, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(input_ids=ids).logits
    folder = save_compressed(model, tmp_path / "compressed")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["lowrank_ranks"] == ranks and cfg["tie_word_embeddings"] is True
    assert not list(tmp_path.glob(".compressed.*"))  # no temporary folder left behind

    again = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).eval()
    assert again.lm_head.weight.data_ptr() == again.get_input_embeddings().weight.data_ptr()  # still tied
    layer = again.get_submodule("model.layers.0.self_attn.q_proj")
    assert type(layer).__name__ == "LowRankLinear" and layer.rank == ranks["model.layers.0.self_attn.q_proj"]
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, want, atol=1e-5, rtol=1e-5)
    out = again.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 15)
    dense = sum(p.numel() for p in tiny_llama().parameters())
    assert sum(p.numel() for p in again.parameters()) < dense


def test_a_qwen2_model_with_projection_biases_saves_and_reloads(tmp_path):
    # Qwen2 (the registry's Qwen2.5 models) has biases on q, k and v: the low-rank layers keep them
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                         max_position_embeddings=64)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.bias"):
                p.normal_()
    assert model.get_submodule("model.layers.0.self_attn.k_proj").bias is not None
    layers = to_basis_model(model, TARGETS, new_bases=2)
    prune_to(layers, budget_for(layers, 0.5))
    refactor_model(model)
    ids = torch.randint(0, 512, (1, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(input_ids=ids).logits
    folder = save_compressed(model, tmp_path / "compressed")
    again = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).eval()
    k = again.get_submodule("model.layers.1.self_attn.k_proj")
    assert type(k).__name__ == "LowRankLinear" and k.up.bias is not None
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, want, atol=1e-5, rtol=1e-5)
