import pytest
import torch

from core.config import ConfigError
from core.models import (AdapterConfig, ModelConfig, build_classifier, check_model_name, load_tokenizer, retarget,
                         trainable_state)


def test_unknown_model_name_names_the_key():
    with pytest.raises(ConfigError) as e:
        ModelConfig(name="minilmm").validate()
    assert e.value.key == "name" and "minilm" in str(e.value)
    check_model_name("org/some-model")  # an HF id passes the cheap check


def test_lora_only_adapter_and_head_train():
    m = build_classifier(ModelConfig(name="tiny-bert"), AdapterConfig(r=2), 3)
    names = list(trainable_state(m))
    assert names[-2:] == ["head.weight", "head.bias"]
    assert all("lora_" in n for n in names[:-2]) and len(names) == 2 * 2 * 2 + 2
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert any("word_embeddings" in n for n in frozen)


@pytest.mark.parametrize("kind,marker", [("bitfit", "bias"), ("ia3", "ia3_l"), ("head", "head.")])
def test_other_adapters(kind, marker):
    m = build_classifier(ModelConfig(name="tiny-bert"), AdapterConfig(type=kind, target_modules=["key", "value"]), 2)
    names = list(trainable_state(m))
    assert all(marker in n or n.startswith("head.") for n in names)


def test_missing_lora_target_names_the_field():
    with pytest.raises(ConfigError) as e:
        build_classifier(ModelConfig(name="tiny-bert"), AdapterConfig(target_modules=["out_proj"]), 2)
    assert e.value.key == "adapter.target_modules" and "query" in str(e.value)


def test_attention_targets_are_renamed_to_the_model_s_own_names():
    # one config, several students (GOLD's also_students): BERT's names find MPNet's and Llama's
    from transformers import MPNetConfig, MPNetModel

    mpnet = MPNetModel(MPNetConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32))
    assert retarget(mpnet, ["query", "value"]) == ["q", "v"]
    bert = build_classifier(ModelConfig(name="tiny-bert"), AdapterConfig(type="head"), 2).backbone
    assert retarget(bert, ["query", "q_proj", "dense"]) == ["query", "query", "dense"]
    assert retarget(bert, ["out_proj"]) == ["out_proj"]  # no counterpart: left for the check to refuse
    m = build_classifier(ModelConfig(name="tiny-llama"), AdapterConfig(r=2, target_modules=["query", "value"]), 2)
    lora = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable_state(m) if "lora_" in n}
    assert lora == {"q_proj", "v_proj"}


def test_tiny_llama_and_forward_shapes():
    m = build_classifier(ModelConfig(name="tiny-llama"), AdapterConfig(target_modules=["q_proj", "v_proj"]), 2)
    tok = load_tokenizer("tiny-llama")
    enc = tok(["a movie", "another"], padding="max_length", max_length=8, return_tensors="pt")
    out = m(enc["input_ids"], enc["attention_mask"])
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_minilm_loads_offline_and_embeds_normalized():
    m = build_classifier(ModelConfig(name="minilm"), AdapterConfig(), 2)
    tok = load_tokenizer("minilm")
    enc = tok(["a fine film"], return_tensors="pt")
    e = m.embed(enc["input_ids"], enc["attention_mask"])
    assert e.shape == (1, 384) and abs(float(e.norm()) - 1) < 1e-5


def test_smollm2_is_converted_once_then_loads_fast():
    # The first call dequantizes the packaged GGUF into the cache (~30-60 s, once per machine).
    from core.models import load_causal_lm, smollm2_dir

    path = smollm2_dir()
    assert (path / "config.json").exists() and not list(path.parent.glob(".smollm2-*"))
    stamps = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    model = load_causal_lm(ModelConfig(name="smollm2-135m"))
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == stamps  # loaded, not converted again
    assert sum(p.numel() for p in model.parameters()) > 130e6
    tok = load_tokenizer("smollm2-135m")
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
