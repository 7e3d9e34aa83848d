"""LLaMA: separate q/k/v/o projections with grouped-query attention and a gated SiLU FFN."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import check_expected, expand_entry, head_dim, kv_heads, match_entry

MODEL_TYPES = ("llama",)


@hookimpl
def lora_registry_model_types():
    """LLaMA 1/2/3/3.1/3.2/3.3 and everything published as ``model_type: llama``."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for ``llama`` when the built model has exactly the leaves its config predicts."""
    if model_type not in MODEL_TYPES or model_type not in registry.architectures:
        return None
    entry = registry.architectures[model_type]
    if config is None:
        return match_entry(entry, leaves)
    return check_expected("llama", leaves, expand_entry(entry, config.num_hidden_layers, *dense_shapes(config)))


def dense_shapes(config):
    """Per-layer and model-level shapes of a LLaMA-style decoder, from its config alone."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    kv = kv_heads(config) * dim
    layer = {
        "attention-q": (heads * dim, hidden),
        "attention-k": (kv, hidden),
        "attention-v": (kv, hidden),
        "attention-o": (hidden, heads * dim),
        "ffn-gate": (config.intermediate_size, hidden),
        "ffn-up": (config.intermediate_size, hidden),
        "ffn-down": (hidden, config.intermediate_size),
    }
    model = {"embed": (config.vocab_size, hidden), "lm-head": (config.vocab_size, hidden)}
    return layer, model
