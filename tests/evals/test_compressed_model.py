"""The hf backend loads a folder written by compression.hf.save_compressed (a Basel model from
ray_jobs.compress) by its path, and the evaluators run on it."""

import torch

from compression.bases import to_basis_model
from compression.hf import save_compressed
from compression.lowrank import refactor_model
from compression.prune import budget_for, prune_to
from core.llm import HFBackend
from core.models import ModelConfig, is_tailor_lowrank, load_tokenizer
from evals.cache import AnswerCache
from evals.data import load_items
from evals.evaluators import build_evaluator
from evals.judges import LLMResponder
from evals.runner import run_evaluator
from tests.compression.test_bases import TARGETS


def test_hf_backend_loads_a_compressed_folder(tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    # the tiny-llama shape with MiniLM's vocabulary, so the folder also carries a real tokenizer
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=256, pad_token_id=0, tie_word_embeddings=True))
    layers = to_basis_model(model, TARGETS, new_bases=2)
    prune_to(layers, budget_for(layers, 0.5))
    refactor_model(model)
    folder = save_compressed(model, tmp_path / "basel-0.5", load_tokenizer("tiny-llama"))
    assert is_tailor_lowrank(str(folder)) and not is_tailor_lowrank(str(tmp_path))

    backend = HFBackend.from_config(ModelConfig(name=str(folder)), batch_size=2)
    assert any(type(m).__name__ == "LowRankLinear" for m in backend.model.modules())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(backend.model(input_ids=ids).logits, model.eval()(input_ids=ids).logits)
    items = load_items("halueval_qa", 2, 0)
    cache = AnswerCache(tmp_path / "answers")
    stats = run_evaluator(build_evaluator("halueval"), items, LLMResponder("basel", backend, "raw"), cache,
                          "halueval_qa", 0)
    assert stats.answered == 2 and stats.errors == 0
