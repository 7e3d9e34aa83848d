"""Mistral and Mixtral: LLaMA-style attention; Mixtral routes tokens to 3-D stacked experts."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import check_expected, expand_entry, head_dim, kv_heads, match_entry

MODEL_TYPES = ("mistral", "mixtral")


@hookimpl
def lora_registry_model_types():
    """Mistral 7B / Nemo / Small (``mistral``) and Mixtral 8x7B / 8x22B (``mixtral``)."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for mistral and mixtral when the model has exactly the leaves the config predicts."""
    if model_type not in MODEL_TYPES or model_type not in registry.architectures:
        return None
    entry = registry.architectures[model_type]
    if config is None:
        return match_entry(entry, leaves)
    return check_expected("mistral", leaves, expand_entry(entry, config.num_hidden_layers, *shapes(config)))


def shapes(config):
    """Per-layer and model-level shapes from the config (head_dim may differ from hidden/heads: Nemo)."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    kv, inter = kv_heads(config) * dim, config.intermediate_size
    layer = {
        "attention-q": (heads * dim, hidden),
        "attention-k": (kv, hidden),
        "attention-v": (kv, hidden),
        "attention-o": (hidden, heads * dim),
    }
    if config.model_type == "mixtral":
        experts = config.num_local_experts
        layer.update({
            "experts-gate-up": (experts, 2 * inter, hidden),
            "experts-down": (experts, hidden, inter),
            "router": (experts, hidden),
        })
    else:
        layer.update({"ffn-gate": (inter, hidden), "ffn-up": (inter, hidden), "ffn-down": (hidden, inter)})
    return layer, {"embed": (config.vocab_size, hidden), "lm-head": (config.vocab_size, hidden)}
