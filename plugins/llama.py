"""LLaMA: separate q/k/v/o projections with grouped-query attention and a gated SiLU FFN."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import attention_shapes, classify_family, gated_ffn_shapes, vocab_shapes

MODEL_TYPES = ("llama",)


@hookimpl
def lora_registry_model_types():
    """LLaMA 1/2/3/3.1/3.2/3.3 and everything published as ``model_type: llama``."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for ``llama`` when the built model has exactly the leaves its config predicts."""
    return classify_family("llama", MODEL_TYPES, model_type, config, leaves, registry, dense_shapes)


def dense_shapes(config):
    """Per-layer and model-level shapes of a LLaMA-style decoder, from its config alone."""
    return {**attention_shapes(config), **gated_ffn_shapes(config)}, vocab_shapes(config)
