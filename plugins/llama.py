"""LLaMA: separate q/k/v/o projections with grouped-query attention and a gated SiLU FFN."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lora_registry import hookimpl
from lora_registry.architectures import (
    DECODER_KEYS,
    ConfigCheck,
    DecoderFamily,
    attention_shapes,
    classify_family,
    decoder_settings,
    family_tree,
    gated_ffn_shapes,
    plain_llama3_rope,
    vocab_shapes,
)

MODEL_TYPES = ("llama",)
FAMILY = DecoderFamily("Llama", qkv_bias="attention_bias", o_bias="attention_bias", mlp_bias="mlp_bias")
#: transformers' LlamaConfig defaults the tree depends on (tests/test_fastpath.py holds them equal)
CHECK = ConfigCheck(
    keys={**DECODER_KEYS, "rope_scaling": lambda v: v is None or plain_llama3_rope(v)},
    head="LlamaForCausalLM",
    defaults=dict(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=None,
        head_dim=None,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        max_position_embeddings=2048,
        hidden_act="silu",
    ),
    extra=lambda data, cfg: decoder_settings(data, cfg),
)


@hookimpl
def lora_registry_model_types():
    """LLaMA 1/2/3/3.1/3.2/3.3 and everything published as ``model_type: llama``."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The LlamaForCausalLM tree from config.json alone, where every key is one this plugin models."""
    return family_tree(model_type, config, {"llama": CHECK}, {"llama": FAMILY})


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for ``llama`` when the model has exactly the leaves its config predicts (else decline)."""
    return classify_family("llama", MODEL_TYPES, model_type, config, leaves, registry, dense_shapes)


def dense_shapes(config):
    """Per-layer and model-level shapes of a LLaMA-style decoder, from its config alone."""
    return {**attention_shapes(config), **gated_ffn_shapes(config)}, vocab_shapes(config)
