"""Phi: phi (phi-1/1.5/2: separate q/k/v, ``dense``, ``fc1``/``fc2``), phi3 (fused qkv and gate_up), phimoe."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import check_expected, expand_entry, head_dim, kv_heads, match_entry

MODEL_TYPES = ("phi", "phi3", "phimoe")


@hookimpl
def lora_registry_model_types():
    """phi-1, phi-1.5, phi-2 (``phi``); Phi-3/3.5/4 mini and medium (``phi3``); Phi-3.5-MoE (``phimoe``)."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for the Phi family when the model has exactly the leaves the config predicts."""
    if model_type not in MODEL_TYPES or model_type not in registry.architectures:
        return None
    entry = registry.architectures[model_type]
    if config is None:
        return match_entry(entry, leaves)
    return check_expected("phi", leaves, expand_entry(entry, config.num_hidden_layers, *shapes(config)))


def shapes(config):
    """Per-layer and model-level shapes of each Phi generation, from its config."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    kv, inter = kv_heads(config) * dim, config.intermediate_size
    if config.model_type == "phi3":
        layer = {
            "attention-qkv": (heads * dim + 2 * kv, hidden),  # fused: q, then k and v
            "attention-o": (hidden, heads * dim),
            "ffn-gate-up": (2 * inter, hidden),
            "ffn-down": (hidden, inter),
        }
    else:
        layer = {
            "attention-q": (heads * dim, hidden),
            "attention-k": (kv, hidden),
            "attention-v": (kv, hidden),
            "attention-o": (hidden, heads * dim),
        }
        if config.model_type == "phimoe":
            experts = config.num_local_experts
            layer.update({
                "experts-gate-up": (experts, 2 * inter, hidden),
                "experts-down": (experts, hidden, inter),
                "router": (experts, hidden),
            })
        else:
            layer.update({"ffn-up": (inter, hidden), "ffn-down": (hidden, inter)})
    return layer, {"embed": (config.vocab_size, hidden), "lm-head": (config.vocab_size, hidden)}
