"""The emitted LoraConfig makes PEFT adapt exactly the resolved set, with the predicted count."""

from __future__ import annotations

import pytest
from transformers import AutoConfig

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, apply_peft, expected_keys

CASES = [
    # (MODEL, roles, ranks, plugin that must answer)
    (EXAMPLES / "llama-3.1-8b", "q,v,ffn", {"ffn": 4}, "llama"),
    (EXAMPLES / "mistral-7b-v0.3", "all", {"o": 4}, "mistral"),
    (EXAMPLES / "phi-3-mini-4k-instruct", "all", {"ffn": 4}, "phi"),
    (FIXTURES / "phi-2", "all,embed,lm-head", {"ffn-up": 2}, "phi"),
    (FIXTURES / "phi-3.5-moe-instruct", "all,router", {"experts": 4}, "phi"),
    (FIXTURES / "mixtral-8x7b-v0.1", "attention,experts,router", {"router": 2}, "mistral"),
    # served by the generic fallback
    (FIXTURES / "qwen3-30b-a3b", "all,router", {"experts-down": 2}, "generic"),
    (FIXTURES / "deepseek-v2-lite", "all,router", {"ffn": 4}, "generic"),
    ("t5", "attention,ffn", {"o": 4}, "generic"),
    ("llava", "q,v,ffn", None, "generic"),
    ("gpt2", "qkv,o,ffn", {"qkv": 16}, "declarative"),
]


@pytest.mark.parametrize(
    "model,roles,ranks,plugin", CASES, ids=lambda v: getattr(v, "name", None) if hasattr(v, "name") else None
)
def test_peft_adapts_exactly_the_resolved_set(model, roles, ranks, plugin):
    resolution = lr.resolve(str(model), roles=roles)
    assert resolution.model_map.plugin == plugin
    targeted, trainable, _ = apply_peft(resolution, r=8, ranks=ranks)
    assert targeted == expected_keys(resolution)
    assert trainable == resolution.trainable_parameters(r=8, ranks=ranks)
    # every resolved leaf is of a requested role, and in the language model
    for leaf in resolution.leaves:
        assert leaf.scope == "language"


def test_per_role_rank_reaches_exactly_its_role():
    resolution = lr.resolve(str(EXAMPLES / "llama-3.1-8b"), roles="q,v,ffn")
    _, _, model = apply_peft(resolution, r=8, ranks={"ffn": 4, "v": 2})
    ranks = {}
    for name, module in model.named_modules():
        if hasattr(module, "r") and isinstance(module.r, dict) and "default" in module.r:
            ranks[name.rsplit(".", 1)[-1]] = module.r["default"]
    assert ranks == {"q_proj": 8, "v_proj": 2, "gate_proj": 4, "up_proj": 4, "down_proj": 4}


def test_dense_ffn_next_to_experts_is_not_rewritten_by_peft():
    # PEFT rewrites target_modules named down_proj on DeepSeek into the experts' down_proj;
    # the emitted config must still adapt the dense and shared-expert FFNs, not the experts.
    cfg = AutoConfig.for_model(
        "deepseek_v3",
        num_hidden_layers=4,
        first_k_dense_replace=2,
        n_routed_experts=8,
        hidden_size=256,
        intermediate_size=512,
        moe_intermediate_size=64,
        q_lora_rank=64,
        kv_lora_rank=32,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=1000,
    )
    resolution = lr.resolve(cfg, roles="ffn-gate,ffn-up,ffn-down")  # ffn alone reaches the experts too
    targeted, trainable, _ = apply_peft(resolution)
    assert targeted == expected_keys(resolution)
    assert not any(".experts." in key for key in targeted)
    assert len(resolution.modules["ffn-down"]) == 2 + 2  # dense layers 0-1, shared experts of layers 2-3
    assert trainable == resolution.trainable_parameters()
    assert any("PEFT rewrites" in w for w in resolution.warnings)


def test_vision_tower_is_never_adapted_by_default():
    resolution = lr.resolve("llava", roles="q,v")
    targeted, _, _ = apply_peft(resolution)
    assert targeted and not any("vision_tower" in key for key in targeted)
    assert isinstance(resolution.lora_config().target_modules, str)  # a regex: q_proj alone would hit the tower
    vision = lr.resolve("llava", roles="q,v", scope="vision")
    assert vision.leaves and all("vision_tower" in leaf.name for leaf in vision.leaves)
    both = lr.resolve("llava", roles="q,v", scope="language,vision")
    targeted_both, trainable, _ = apply_peft(both)
    assert targeted_both == expected_keys(both) and trainable == both.trainable_parameters()


LAYERED = [
    # MODEL, roles, selection, target_modules, layers_to_transform, layers_pattern (PEFT's own layer options)
    (
        EXAMPLES / "llama-3.1-8b",
        "q,v",
        {"layers": "0-7,24-31"},
        ["q_proj", "v_proj"],
        [*range(8), *range(24, 32)],
        None,
    ),
    # the vision tower has layers 1 and 3 too: only the language model's stack name tells them apart
    ("llava", "q,v,lm-head", {"layers": "1,3"}, ["q_proj", "v_proj", "lm_head"], [1, 3], "language_model.layers"),
    ("t5", "q,o", {"last_layers": 1}, ["q", "o"], [5], None),  # the encoder's and the decoder's last layer
    (FIXTURES / "qwen3-30b-a3b", "q,o,experts", {"last_layers": 2}, ["o_proj", "q_proj"], [46, 47], None),  # renamed
]


@pytest.mark.parametrize("model,roles,selection,targets,layers,pattern", LAYERED, ids=lambda v: None)
def test_a_layer_selection_uses_peft_layer_options(model, roles, selection, targets, layers, pattern):
    # --layers 0-7,24-31 used to be a 32-alternative regex in string order
    resolution = lr.resolve(str(model), roles=roles, **selection)
    config = resolution.lora_config()
    assert config.layers_to_transform == layers and config.layers_pattern == pattern
    assert targets is None or sorted(config.target_modules) == sorted(targets)
    targeted, trainable, _ = apply_peft(resolution)
    assert targeted == expected_keys(resolution) and trainable == resolution.trainable_parameters()


def test_a_regex_only_where_peft_layer_options_cannot_say_it():
    # an encoder of 6 layers and a decoder of 3: their last two are 4-5 and 1-2, one layers_to_transform cannot say both
    cfg = AutoConfig.for_model("t5", num_layers=6, num_decoder_layers=3, d_model=64, d_ff=128, num_heads=2, d_kv=32)
    resolution = lr.resolve(cfg, roles="q", last_layers=2)
    config = resolution.lora_config()
    assert config.layers_to_transform is None and isinstance(config.target_modules, str)
    assert r"decoder\.block\.(?:1|2)\." in config.target_modules  # indices spelled in numeric order
    assert r"encoder\.block\.(?:4|5)\." in config.target_modules
    targeted, trainable, _ = apply_peft(resolution)
    assert targeted == expected_keys(resolution) and trainable == resolution.trainable_parameters()
