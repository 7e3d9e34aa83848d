"""Phi: phi (phi-1/1.5/2: separate q/k/v, ``dense``, ``fc1``/``fc2``), phi3 (fused qkv and gate_up), phimoe."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import (
    attention_shapes,
    classify_family,
    head_dim,
    kv_heads,
    stacked_experts_shapes,
    vocab_shapes,
)

MODEL_TYPES = ("phi", "phi3", "phimoe")


@hookimpl
def lora_registry_model_types():
    """phi-1, phi-1.5, phi-2 (``phi``); Phi-3/3.5/4 mini and medium (``phi3``); Phi-3.5-MoE (``phimoe``)."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_classify(model_type, config, leaves, registry):
    """Answer for the Phi family when the model has exactly the leaves the config predicts."""
    return classify_family("phi", MODEL_TYPES, model_type, config, leaves, registry, shapes)


def shapes(config):
    """Per-layer and model-level shapes of each Phi generation, from its config."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    inter = config.intermediate_size
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
