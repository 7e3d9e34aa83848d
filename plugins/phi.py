"""Phi: phi (phi-1/1.5/2: separate q/k/v, ``dense``, ``fc1``/``fc2``), phi3 (fused qkv and gate_up), phimoe."""

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
    head_dim,
    kv_heads,
    stacked_experts_shapes,
    vocab_shapes,
)

MODEL_TYPES = ("phi", "phi3", "phimoe")
FAMILIES = {
    "phi": DecoderFamily(
        "Phi",
        norm="LayerNorm",
        qkv_bias=True,
        o_bias=True,
        o_name="dense",
        qk_norm="layernorm",
        mlp="plain",
        act_name="activation_fn",
        norms=("input_layernorm",),
        layer_extra=("resid_dropout",),
        phi=True,
        lm_head_bias=True,
    ),
    "phi3": DecoderFamily(
        "Phi3",
        attention="fused",
        mlp="fused",
        act_name="activation_fn",
        layer_extra=("resid_attn_dropout", "resid_mlp_dropout"),
    ),
    "phimoe": DecoderFamily(
        "Phimoe",
        norm="LayerNorm",
        qkv_bias="attention_bias",
        o_bias="attention_bias",
        mlp="phimoe",
        lm_head_bias="lm_head_bias",
    ),
}
#: transformers' PhiConfig / Phi3Config / PhimoeConfig defaults the trees depend on
CHECKS = {
    # Phi attention classes differ in how they read head_dim: a config that sets it is built instead
    "phi": ConfigCheck(
        DECODER_KEYS,
        "PhiForCausalLM",
        dict(
            vocab_size=51200,
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=24,
            num_attention_heads=32,
            num_key_value_heads=None,
            head_dim=None,
            tie_word_embeddings=False,
            qk_layernorm=False,
            max_position_embeddings=2048,
            hidden_act="gelu_new",
        ),
        extra=lambda d, c: decoder_settings(d, c, head_dim_key=False),
    ),
    "phi3": ConfigCheck(
        DECODER_KEYS,
        "Phi3ForCausalLM",
        dict(
            vocab_size=32064,
            hidden_size=3072,
            intermediate_size=8192,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=None,
            head_dim=None,
            tie_word_embeddings=False,
            pad_token_id=32000,
            max_position_embeddings=4096,
            hidden_act="silu",
        ),
        extra=lambda d, c: decoder_settings(d, c, head_dim_key=False),
    ),
    "phimoe": ConfigCheck(
        DECODER_KEYS,
        "PhimoeForCausalLM",
        dict(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=6400,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=None,
            tie_word_embeddings=False,
            num_local_experts=16,
            attention_bias=False,
            lm_head_bias=False,
            max_position_embeddings=131072,
            hidden_act="silu",
        ),
        extra=lambda d, c: decoder_settings(d, c, moe=True, head_dim_key=False),
    ),
}


@hookimpl
def lora_registry_model_types():
    """phi-1, phi-1.5, phi-2 (``phi``); Phi-3/3.5/4 mini and medium (``phi3``); Phi-3.5-MoE (``phimoe``)."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The Phi / Phi-3 / Phi-MoE tree from config.json alone, where every key is one this plugin models."""
    return family_tree(model_type, config, CHECKS, FAMILIES, aliases={"num_experts": "num_local_experts"})


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for the Phi family when the model has exactly the leaves the config predicts (else decline)."""
    return classify_family("phi", MODEL_TYPES, model_type, config, leaves, registry, shapes)


def shapes(config):
    """Per-layer and model-level shapes of each Phi generation, from its config."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    inter = config.intermediate_size
    layer: dict[str, tuple[int, ...]]
    if config.model_type == "phi3":
        layer = {
            "attention-qkv": (heads * dim + 2 * kv_heads(config) * dim, hidden),  # fused: q, then k and v
            "attention-o": (hidden, heads * dim),
            "ffn-gate-up": (2 * inter, hidden),
            "ffn-down": (hidden, inter),
        }
    elif config.model_type == "phimoe":
        layer = {**attention_shapes(config), **stacked_experts_shapes(config, config.num_local_experts)}
    else:  # phi-1/1.5/2: a plain (ungated) fc1/fc2 FFN
        layer = {**attention_shapes(config), "ffn-up": (inter, hidden), "ffn-down": (hidden, inter)}
    return layer, vocab_shapes(config)
