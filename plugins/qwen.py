"""Qwen2, Qwen3 and Qwen3-MoE: module trees from config.json alone (the fast path).

Their roles come from the declarative entry (``qwen2``) and the generic fallback (``qwen3``,
``qwen3_moe``); this plugin only says what transformers would build, so those answers need no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lora_registry import hookimpl
from lora_registry.architectures import (
    DECODER_KEYS,
    ConfigCheck,
    DecoderFamily,
    decoder_settings,
    family_tree,
    flag,
    whole,
)

MODEL_TYPES = ("qwen2", "qwen3", "qwen3_moe")
FAMILIES = {
    # Qwen2: biases on q, k and v, none on o
    "qwen2": DecoderFamily("Qwen2", qkv_bias=True),
    "qwen3": DecoderFamily("Qwen3", qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head"),
    "qwen3_moe": DecoderFamily(
        "Qwen3Moe", qkv_bias="attention_bias", o_bias="attention_bias", qk_norm="head", mlp="qwen_moe"
    ),
}
_SLIDING = {
    "use_sliding_window": flag,
    "max_window_layers": whole(0),
    # the sliding window changes the attention mask, not the modules
    "layer_types": lambda v: (
        v is None or (isinstance(v, list) and all(t in ("full_attention", "sliding_attention") for t in v))
    ),
}
_MOE = {
    "num_experts": whole(),
    "moe_intermediate_size": whole(),
    "decoder_sparse_step": whole(),
    "mlp_only_layers": lambda v: isinstance(v, list) and all(whole(0)(i) for i in v),
    "norm_topk_prob": flag,
}
_DEFAULTS = dict(
    vocab_size=151936,
    hidden_size=4096,
    intermediate_size=22016,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=None,
    head_dim=None,
    tie_word_embeddings=False,
    max_position_embeddings=32768,
    hidden_act="silu",
)


def _moe_settings(data: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, Any] | None:
    if "num_experts" in data and "num_local_experts" in data:
        return None  # two names for one field: let transformers decide
    if "num_experts" in data:
        cfg["num_local_experts"] = data["num_experts"]
    return decoder_settings(data, cfg, moe=True)


#: transformers' Qwen2Config / Qwen3Config / Qwen3MoeConfig defaults the trees depend on
CHECKS = {
    "qwen2": ConfigCheck(
        {**DECODER_KEYS, **_SLIDING}, "Qwen2ForCausalLM", _DEFAULTS, extra=lambda d, c: decoder_settings(d, c)
    ),
    "qwen3": ConfigCheck(
        {**DECODER_KEYS, **_SLIDING},
        "Qwen3ForCausalLM",
        {**_DEFAULTS, "head_dim": 128, "attention_bias": False},
        extra=lambda d, c: decoder_settings(d, c),
    ),
    "qwen3_moe": ConfigCheck(
        {**DECODER_KEYS, **_SLIDING, **_MOE},
        "Qwen3MoeForCausalLM",
        {
            **_DEFAULTS,
            "attention_bias": False,
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_hidden_layers": 24,
            "num_key_value_heads": 4,
            "num_local_experts": 128,
            "moe_intermediate_size": 768,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
        },
        extra=_moe_settings,
    ),
}


@hookimpl
def lora_registry_model_types():
    """Qwen2 / Qwen2.5 (``qwen2``), Qwen3 (``qwen3``) and Qwen3-MoE (``qwen3_moe``): module trees only."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The Qwen2 / Qwen3 / Qwen3-MoE tree from config.json alone, where every key is one this plugin models."""
    return family_tree(model_type, config, CHECKS, FAMILIES, aliases={"num_experts": "num_local_experts"})
