"""Gemma 2 and Gemma 3 (text): module trees from config.json alone (the fast path).

Their roles come from the generic fallback; this plugin only says what transformers would build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lora_registry import hookimpl
from lora_registry.architectures import (
    ACTIVATIONS,
    DECODER_KEYS,
    ConfigCheck,
    DecoderFamily,
    decoder_settings,
    family_tree,
    flag,
    number,
    optional,
    whole,
)

MODEL_TYPES = ("gemma2", "gemma3_text")
_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")
FAMILIES = {
    "gemma2": DecoderFamily(
        "Gemma2",
        embedding="Gemma2TextScaledWordEmbedding",
        qkv_bias="attention_bias",
        o_bias="attention_bias",
        norms=_NORMS,
    ),
    "gemma3_text": DecoderFamily(
        "Gemma3",
        model_class="Gemma3TextModel",
        embedding="Gemma3TextScaledWordEmbedding",
        qkv_bias="attention_bias",
        o_bias="attention_bias",
        qk_norm="head",
        norms=_NORMS,
    ),
}
_KEYS = {
    **{k: v for k, v in DECODER_KEYS.items() if k not in ("hidden_act", "num_local_experts", "num_experts_per_tok")},
    "hidden_activation": lambda v: v in ACTIVATIONS,
    "hidden_act": lambda v: v in ACTIVATIONS,  # read by nothing that builds modules; kept by old configs
    "query_pre_attn_scalar": number(0, 1e6, low_open=True),
    "attn_logit_softcapping": optional(number(0, 1e6, low_open=True)),
    "final_logit_softcapping": optional(number(0, 1e6, low_open=True)),
    "layer_types": lambda v: (
        v is None or (isinstance(v, list) and all(t in ("full_attention", "sliding_attention") for t in v))
    ),
    "use_bidirectional_attention": optional(flag),
    "cache_implementation": lambda v: v in ("hybrid", "static", "dynamic", None),
    "sliding_window_size": optional(whole()),  # an older name some published Gemma 2 configs still carry
}
_DEFAULTS = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    tie_word_embeddings=True,
    attention_bias=False,
    pad_token_id=0,
    max_position_embeddings=8192,
    hidden_activation="gelu_pytorch_tanh",
)
#: transformers' Gemma2Config / Gemma3TextConfig defaults the trees depend on
CHECKS = {
    "gemma2": ConfigCheck(_KEYS, "Gemma2ForCausalLM", _DEFAULTS, extra=lambda d, c: decoder_settings(d, c)),
    "gemma3_text": ConfigCheck(
        {
            **_KEYS,
            "rope_local_base_freq": number(0, 1e12, low_open=True),
            "sliding_window_pattern": whole(),
            "_sliding_window_pattern": whole(),
        },
        "Gemma3ForCausalLM",
        {**_DEFAULTS, "vocab_size": 262208, "max_position_embeddings": 131072},
        extra=lambda d, c: decoder_settings(d, c),
    ),
}


@hookimpl
def lora_registry_model_types():
    """Gemma 2 (``gemma2``) and Gemma 3's text model (``gemma3_text``): module trees only."""
    return list(MODEL_TYPES)


@hookimpl
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]):
    """The Gemma 2 / Gemma 3 text tree from config.json alone, where every key is one this plugin models."""
    return family_tree(model_type, config, CHECKS, FAMILIES, activation="hidden_activation")
