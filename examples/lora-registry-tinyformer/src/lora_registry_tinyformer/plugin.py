"""The lora-registry plugin for Tinyformer: it builds the model, describes its module tree, names its roles, and adds a preset.

Only ``lora_registry`` is imported at module level: torch loads when a model is built, so
``lora-registry --help``, ``roles`` and ``plugins`` stay fast with this plugin installed, and
``lora_registry_module_tree`` lets ``inspect`` and ``resolve`` answer from config.json without torch.
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


#: the config keys the tree below models exactly, with TinyformerConfig's defaults
DEFAULTS = {
    "vocab_size": 32000,
    "hidden_size": 512,
    "intermediate_size": 1376,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
}


@hookimpl
def lora_registry_module_tree(model_type, config):
    """The module tree TinyformerForCausalLM has, written from config.json alone (no torch)."""
    if model_type != MODEL_TYPE:
        return None
    if any(key not in DEFAULTS and key not in ("model_type", "tie_word_embeddings") for key in config):
        return None  # a key this tree does not model: lora-registry builds the model instead
    sizes = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()):
        return None
    from lora_registry.tree import TreeBuilder

    d, inner, vocab = sizes["hidden_size"], sizes["intermediate_size"], sizes["vocab_size"]
    t = TreeBuilder("TinyformerForCausalLM")
    t.embedding("tok", vocab, d)
    t.module_list("blocks")
    for i in range(sizes["num_hidden_layers"]):
        block = f"blocks.{i}"
        t.module(block, "TinyBlock")
        t.module(f"{block}.norm1", "RMSNorm", [("weight", (d,))])
        t.module(f"{block}.mix", "TinyMixer")
        for name in ("Wq", "Wk", "Wv", "Wout"):
            t.linear(f"{block}.mix.{name}", d, d)
        t.module(f"{block}.norm2", "RMSNorm", [("weight", (d,))])
        t.module(f"{block}.channel", "TinyChannelMix")
        t.linear(f"{block}.channel.expand", d, inner)
        t.linear(f"{block}.channel.gate", d, inner)
        t.linear(f"{block}.channel.contract", inner, d)
    t.module("norm", "RMSNorm", [("weight", (d,))])
    t.linear("unembed", d, vocab)
    return t.build(sizes)


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
