"""Mistral and Mixtral: LLaMA-style attention; Mixtral routes tokens to 3-D stacked experts."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import (
    attention_shapes,
    classify_family,
    gated_ffn_shapes,
    stacked_experts_shapes,
    vocab_shapes,
)

MODEL_TYPES = ("mistral", "mixtral")


@hookimpl
def lora_registry_model_types():
    """Mistral 7B / Nemo / Small (``mistral``) and Mixtral 8x7B / 8x22B (``mixtral``)."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for mistral and mixtral when the model has exactly the leaves the config predicts."""
    return classify_family("mistral", MODEL_TYPES, model_type, config, leaves, registry, shapes)


def shapes(config):
    """Per-layer and model-level shapes from the config (head_dim may differ from hidden/heads: Nemo)."""
    if config.model_type == "mixtral":
        ffn = stacked_experts_shapes(config, config.num_local_experts)
    else:
        ffn = gated_ffn_shapes(config)
    return {**attention_shapes(config), **ffn}, vocab_shapes(config)
