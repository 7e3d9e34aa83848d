"""The lora-registry plugin for Tinyformer: it builds the model, names its roles, and adds a preset.

Only ``lora_registry`` is imported at module level: torch loads when a model is built, so
``lora-registry --help``, ``roles`` and ``plugins`` stay fast with this plugin installed.
"""

from __future__ import annotations

import re

from lora_registry import Null, hookimpl

MODEL_TYPE = "tinyformer"

# Role of each leaf inside one block (blocks.N.<name>).
LAYER_ROLES = {
    "mix.Wq": "attention-q",
    "mix.Wk": "attention-k",
    "mix.Wv": "attention-v",
    "mix.Wout": "attention-o",
    "channel.gate": "ffn-gate",
    "channel.expand": "ffn-up",
    "channel.contract": "ffn-down",
}
MODEL_ROLES = {"tok": "embed", "unembed": "lm-head"}
_LAYER = re.compile(r"blocks\.\d+\.(.+)$")


@hookimpl
def lora_registry_model_types():
    """Tinyformer only."""
    return [MODEL_TYPE]


@hookimpl
def lora_registry_build_model(model_type, config):
    """Build a Tinyformer from its config.json (lora-registry runs this on the meta device)."""
    if model_type != MODEL_TYPE:
        return None
    from .modeling import TinyformerConfig, TinyformerForCausalLM

    return TinyformerForCausalLM(TinyformerConfig(**{k: v for k, v in config.items() if k != "model_type"}))


@hookimpl
def lora_registry_classify(model_type, leaves):
    """Every Tinyformer leaf gets its role; anything else is left as an explicit null."""
    if model_type != MODEL_TYPE:
        return None
    roles = {}
    for leaf in leaves:
        match = _LAYER.match(leaf.name)
        role = LAYER_ROLES.get(match.group(1)) if match else MODEL_ROLES.get(leaf.name)
        roles[leaf.name] = role or Null("not a Tinyformer projection")
    return roles


@hookimpl
def lora_registry_registry_fragment():
    """A data-only contribution: a preset for Tinyformer users (usable on any model)."""
    return {
        "presets": {
            "tinyformer-mix8": {
                "description": "token mixing (attention) at rank 8, channel mixing at rank 4",
                "roles": "attention,ffn",
                "rank": 8,
                "alpha": 16,
                "rank_for": {"ffn": 4},
                "alpha_for": {"ffn": 8},
            }
        }
    }
