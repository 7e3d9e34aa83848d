"""Mistral and Mixtral: LLaMA-style attention; Mixtral routes tokens to 3-D stacked experts."""

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
    stacked_experts_shapes,
    vocab_shapes,
)

MODEL_TYPES = ("mistral", "mixtral")
FAMILIES = {"mistral": DecoderFamily("Mistral"), "mixtral": DecoderFamily("Mixtral", mlp="mixtral")}
_COMMON = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=None,
    tie_word_embeddings=False,
    max_position_embeddings=131072,
    hidden_act="silu",
)
#: transformers' MistralConfig / MixtralConfig defaults the trees depend on
CHECKS = {
    "mistral": ConfigCheck(DECODER_KEYS, "MistralForCausalLM", _COMMON, extra=lambda d, c: decoder_settings(d, c)),
    "mixtral": ConfigCheck(
        DECODER_KEYS,
        "MixtralForCausalLM",
        {**_COMMON, "num_local_experts": 8},
        extra=lambda d, c: decoder_settings(d, c, moe=True),
    ),
}


@hookimpl
def lora_registry_model_types():
    """Mistral 7B / Nemo / Small (``mistral``) and Mixtral 8x7B / 8x22B (``mixtral``)."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The Mistral / Mixtral tree from config.json alone, where every key is one this plugin models."""
    return family_tree(model_type, config, CHECKS, FAMILIES, aliases={"num_experts": "num_local_experts"})


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for mistral and mixtral when the model has exactly the leaves the config predicts (else decline)."""
    return classify_family("mistral", MODEL_TYPES, model_type, config, leaves, registry, shapes)


def shapes(config):
    """Per-layer and model-level shapes from the config (head_dim may differ from hidden/heads: Nemo)."""
    if config.model_type == "mixtral":
        ffn = stacked_experts_shapes(config, config.num_local_experts)
    else:
        ffn = gated_ffn_shapes(config)
    return {**attention_shapes(config), **ffn}, vocab_shapes(config)
