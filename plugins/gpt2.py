"""GPT-2: module trees from config.json alone (the fast path); its roles come from its declarative entry.

GPT-2 stores its projections in transformers' ``Conv1D``, a Linear whose weight is ``[in, out]``.
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

MODEL_TYPES = ("gpt2",)


def _settings(data: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, Any] | None:
    hidden, heads = cfg["n_embd"], cfg["n_head"]
    if hidden % heads or cfg["n_layer"] > COUNT_LIMIT:
        return None  # GPT2Attention refuses a hidden size the heads do not divide
    return {
        **cfg,
        "hidden_size": hidden,
        "num_hidden_layers": cfg["n_layer"],
        "num_attention_heads": heads,
        "intermediate_size": cfg["n_inner"] or 4 * hidden,
        "max_position_embeddings": cfg["n_positions"],
        "n_inner": cfg["n_inner"],
    }


#: transformers' GPT2Config keys, values and defaults the tree depends on (cross-attention is not modelled)
CHECK = ConfigCheck(
    keys={
        **COMMON_KEYS,
        **{key: whole() for key in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "n_ctx")},
        "n_inner": optional(whole()),
        "activation_function": lambda v: v in ACTIVATIONS,
        **{key: PROBABILITY for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout")},
        "layer_norm_epsilon": number(0, 1, low_open=True, whole=False),
        **{
            key: flag
            for key in (
                "summary_use_proj",
                "summary_proj_to_labels",
                "scale_attn_weights",
                "scale_attn_by_inverse_layer_idx",
                "reorder_and_upcast_attn",
            )
        },
        "summary_type": lambda v: v in ("last", "first", "mean", "cls_index", "attn"),
        "summary_activation": lambda v: v is None or v == "tanh",
        "add_cross_attention": lambda v: v is False,
        "task_specific_params": lambda v: v is None or isinstance(v, dict),
    },
    head="GPT2LMHeadModel",
    defaults=dict(
        vocab_size=50257,
        n_embd=768,
        n_layer=12,
        n_head=12,
        n_inner=None,
        n_positions=1024,
        tie_word_embeddings=True,
        activation_function="gelu_new",
    ),
    extra=_settings,
)


@hookimpl
def lora_registry_model_types():
    """GPT-2 (``gpt2``): module trees only."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The GPT2LMHeadModel tree from config.json alone, where every key is one this plugin models."""
    if model_type not in MODEL_TYPES:
        return None
    settings = CHECK.settings(config)
    return None if settings is None else gpt2_tree(settings)


def gpt2_tree(c: Mapping[str, Any]) -> ModuleTree:
    """The module tree ``GPT2LMHeadModel`` has in transformers 5 (no cross-attention)."""
    hidden, inter = c["hidden_size"], c["intermediate_size"]
    norm = [("weight", (hidden,)), ("bias", (hidden,))]
    t = TreeBuilder("GPT2LMHeadModel")
    t.module("transformer", "GPT2Model")
    t.embedding("transformer.wte", c["vocab_size"], hidden, role="input")
    t.embedding("transformer.wpe", c["max_position_embeddings"], hidden)
    t.module("transformer.drop", "Dropout")
    t.module_list("transformer.h")
    for i in range(c["num_hidden_layers"]):
        layer = f"transformer.h.{i}"
        t.module(layer, "GPT2Block")
        t.module(f"{layer}.ln_1", "LayerNorm", norm)
        t.module(f"{layer}.attn", "GPT2Attention")
        t.conv1d(f"{layer}.attn.c_attn", hidden, 3 * hidden)
        t.conv1d(f"{layer}.attn.c_proj", hidden, hidden)
        t.module(f"{layer}.attn.attn_dropout", "Dropout")
        t.module(f"{layer}.attn.resid_dropout", "Dropout")
        t.module(f"{layer}.ln_2", "LayerNorm", norm)
        t.module(f"{layer}.mlp", "GPT2MLP")
        t.conv1d(f"{layer}.mlp.c_fc", hidden, inter)
        t.conv1d(f"{layer}.mlp.c_proj", inter, hidden)
        t.module(f"{layer}.mlp.act", ACTIVATIONS[c["activation_function"]])
        t.module(f"{layer}.mlp.dropout", "Dropout")
    t.module("transformer.ln_f", "LayerNorm", norm)
    t.linear("lm_head", hidden, c["vocab_size"], False)
    t.output("lm_head")
    if c["tie_word_embeddings"]:
        t.tie("lm_head.weight", "transformer.wte.weight")
    # what GPT2Config answers to (it has no intermediate_size)
    return t.build({key: value for key, value in c.items() if key != "intermediate_size"})
