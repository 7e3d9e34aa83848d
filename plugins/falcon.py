"""Falcon: module trees from config.json alone (the fast path); its roles come from its declarative entry.

All three attention layouts: Falcon-7B's multi-query, Falcon-40B's grouped "new decoder"
``query_key_value``, and classic multi-head; and each norm arrangement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lora_registry import hookimpl
from lora_registry.architectures import (
    ACTIVATIONS,
    COMMON_KEYS,
    COUNT_LIMIT,
    PROBABILITY,
    ConfigCheck,
    flag,
    number,
    optional,
    whole,
)
from lora_registry.tree import ModuleTree, TreeBuilder

MODEL_TYPES = ("falcon",)


def _settings(data: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Falcon's fields, with the defaults FalconConfig and FalconDecoderLayer fill in."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    if hidden % heads or cfg["num_hidden_layers"] > COUNT_LIMIT:
        return None  # FalconAttention refuses a hidden size the heads do not divide
    cfg["num_kv_heads"] = data.get("num_kv_heads") or heads
    cfg["ffn_hidden_size"] = data.get("ffn_hidden_size") or 4 * hidden
    cfg["head_dim"] = hidden // heads
    if cfg["num_ln_in_parallel_attn"] is None and cfg["new_decoder_architecture"]:
        cfg["num_ln_in_parallel_attn"] = 2  # what FalconDecoderLayer sets
    return cfg


#: transformers' FalconConfig keys, values and defaults the tree depends on
CHECK = ConfigCheck(
    keys={
        **COMMON_KEYS,
        **{
            key: whole()
            for key in (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "max_position_embeddings",
            )
        },
        **{key: optional(whole()) for key in ("num_kv_heads", "ffn_hidden_size")},
        "num_ln_in_parallel_attn": lambda v: v in (None, 1, 2),
        **{
            key: flag
            for key in (
                "alibi",
                "new_decoder_architecture",
                "multi_query",
                "parallel_attn",
                "bias",
                "apply_residual_connection_post_layernorm",
            )
        },
        "layer_norm_epsilon": number(0, 1, low_open=True, whole=False),
        "hidden_dropout": PROBABILITY,
        "attention_dropout": PROBABILITY,
        "activation": lambda v: v in ACTIVATIONS,
        "rope_theta": number(0, 1e12, low_open=True),
        "rope_scaling": lambda v: v is None,
    },
    head="FalconForCausalLM",
    defaults=dict(
        vocab_size=65024,
        hidden_size=4544,
        num_hidden_layers=32,
        num_attention_heads=71,
        new_decoder_architecture=False,
        multi_query=True,
        parallel_attn=True,
        bias=False,
        num_ln_in_parallel_attn=None,
        alibi=False,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        activation="gelu",
    ),
    extra=_settings,
)


@hookimpl
def lora_registry_model_types():
    """Falcon 7B / 40B / 180B and the classic layout (``falcon``): module trees only."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The FalconForCausalLM tree from config.json alone, where every key is one this plugin models."""
    if model_type not in MODEL_TYPES:
        return None
    settings = CHECK.settings(config)
    return None if settings is None else falcon_tree(settings)


def falcon_tree(c: Mapping[str, Any]) -> ModuleTree:
    """The module tree ``FalconForCausalLM`` has in transformers 5: falcon-7b's multi-query, falcon-40b's new decoder."""
    hidden, hd, heads, bias = c["hidden_size"], c["head_dim"], c["num_attention_heads"], c["bias"]
    if c["new_decoder_architecture"]:
        qkv_out = (2 * c["num_kv_heads"] + heads) * hd
    elif c["multi_query"]:
        qkv_out = hidden + 2 * hd
    else:
        qkv_out = 3 * hidden
    norm = [("weight", (hidden,)), ("bias", (hidden,))]
    if not c["parallel_attn"]:
        norms: tuple[str, ...] = ("post_attention_layernorm", "input_layernorm")  # FalconDecoderLayer's order
    elif c["num_ln_in_parallel_attn"] == 2:
        norms = ("ln_attn", "ln_mlp")
    else:
        norms = ("input_layernorm",)
    t = TreeBuilder("FalconForCausalLM")
    t.module("transformer", "FalconModel")
    t.embedding("transformer.word_embeddings", c["vocab_size"], hidden, role="input")
    t.module_list("transformer.h")
    for i in range(c["num_hidden_layers"]):
        layer = f"transformer.h.{i}"
        t.module(layer, "FalconDecoderLayer")
        t.module(f"{layer}.self_attention", "FalconAttention")
        t.linear(f"{layer}.self_attention.query_key_value", hidden, qkv_out, bias, "FalconLinear")
        t.linear(f"{layer}.self_attention.dense", hidden, hidden, bias, "FalconLinear")
        t.module(f"{layer}.self_attention.attention_dropout", "Dropout")
        t.module(f"{layer}.mlp", "FalconMLP")
        t.linear(f"{layer}.mlp.dense_h_to_4h", hidden, c["ffn_hidden_size"], bias, "FalconLinear")
        t.module(f"{layer}.mlp.act", ACTIVATIONS[c["activation"]])
        t.linear(f"{layer}.mlp.dense_4h_to_h", c["ffn_hidden_size"], hidden, bias, "FalconLinear")
        for name in norms:
            t.module(f"{layer}.{name}", "LayerNorm", norm)
    t.module("transformer.ln_f", "LayerNorm", norm)
    t.module("transformer.rotary_emb", "FalconRotaryEmbedding")
    t.linear("lm_head", hidden, c["vocab_size"], False)
    t.output("lm_head")
    if c["tie_word_embeddings"]:
        t.tie("lm_head.weight", "transformer.word_embeddings.weight")
    return t.build(c)
