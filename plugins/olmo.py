"""OLMo 2: module trees from config.json alone (the fast path); its roles come from the generic fallback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lora_registry import hookimpl
from lora_registry.architectures import DECODER_KEYS, ConfigCheck, DecoderFamily, decoder_settings, family_tree

MODEL_TYPES = ("olmo2",)
# OLMo 2 normalises q and k over all heads, and its norms follow attention and the MLP (no input norm)
FAMILY = DecoderFamily(
    "Olmo2",
    qkv_bias="attention_bias",
    o_bias="attention_bias",
    qk_norm="full",
    norms=("post_attention_layernorm", "post_feedforward_layernorm"),
)
#: transformers' Olmo2Config defaults the tree depends on
CHECK = ConfigCheck(
    {k: v for k, v in DECODER_KEYS.items() if k not in ("num_local_experts", "num_experts_per_tok", "head_dim")},
    "Olmo2ForCausalLM",
    dict(
        vocab_size=50304,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=None,
        head_dim=None,
        tie_word_embeddings=False,
        attention_bias=False,
        pad_token_id=1,
        max_position_embeddings=2048,
        hidden_act="silu",
    ),
    extra=lambda d, c: decoder_settings(d, c),
)


@hookimpl
def lora_registry_model_types():
    """OLMo 2 (``olmo2``): module trees only."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The Olmo2ForCausalLM tree from config.json alone, where every key is one this plugin models."""
    return family_tree(model_type, config, {"olmo2": CHECK}, {"olmo2": FAMILY})
