"""Helpers for architecture plugins: match a declarative entry, and check names and shapes against a config."""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from .errors import PluginError
from .hookspecs import Null
from .registry import Architecture


def match_entry(entry: Architecture, leaves: Sequence) -> dict[str, str | Null] | None:
    """Roles for ``leaves`` according to a declarative entry, or ``None`` when the entry does not fit.

    The entry fits when every role it lists inside the layer stack names at least one leaf.
    Leaves the entry does not name are explicit nulls.
    """
    stacks = "|".join(re.escape(stack) for stack in entry.layers)
    layer_re = re.compile(rf"(?:{stacks})\.(\d+)\.(.+)$")
    layer_patterns = [(role, _pattern(p)) for role, names in entry.layer_roles.items() for p in names]
    model_patterns = [(role, _pattern(p)) for role, names in entry.model_roles.items() for p in names]
    roles: dict[str, str] = {}
    for leaf in leaves:
        match = layer_re.match(leaf.name)
        candidates = layer_patterns if match else model_patterns
        rest = match.group(2) if match else leaf.name
        for role, pattern in candidates:
            if pattern.fullmatch(rest):
                roles[leaf.name] = role
                break
    found = set(roles.values())
    if not all(role in found for role in entry.layer_roles):
        return None
    unnamed = Null(f"not named by the [architectures.{entry.model_type}] entry")
    return {leaf.name: roles.get(leaf.name, unnamed) for leaf in leaves}


def check_expected(plugin: str, leaves: Sequence, expected: Mapping[str, tuple[str, tuple[int, ...]]]) -> dict[str, str]:
    """Compare the model's language leaves with what the config predicts (name -> (role, shape)).

    Raises ``PluginError`` naming the first leaf that is missing, unexpected, or of another shape,
    so the resolver falls back to the next plugin instead of answering wrongly.
    """
    actual = {leaf.name: leaf for leaf in leaves if leaf.scope == "language"}
    for name, (role, shape) in expected.items():
        leaf = actual.get(name)
        if leaf is None:
            raise PluginError(f"plugin {plugin!r}: the config predicts {name!r} ({role}), which the model lacks")
        if tuple(leaf.shape) != tuple(shape):
            raise PluginError(
                f"plugin {plugin!r}: {name!r} has shape {list(leaf.shape)}, the config predicts {list(shape)}"
            )
    extra = [name for name in actual if name not in expected]
    if extra:
        raise PluginError(f"plugin {plugin!r}: unexpected leaf {extra[0]!r} for this architecture")
    return {name: role for name, (role, _) in expected.items()}


def expand_entry(
    entry: Architecture,
    num_layers: int,
    layer_shapes: Mapping[str, tuple[int, ...]] | Iterable[Mapping[str, tuple[int, ...]]],
    model_shapes: Mapping[str, tuple[int, ...]],
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every leaf name the entry implies for ``num_layers`` layers, with the predicted role and shape.

    ``layer_shapes`` gives, per role, the shape in one layer (or one mapping per layer where layers
    differ). Roles missing from a layer's mapping are absent from that layer. Entries must not use
    ``*`` wildcards here: the expansion has to name concrete leaves.
    """
    per_layer = [layer_shapes] * num_layers if isinstance(layer_shapes, Mapping) else list(layer_shapes)
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for index, shapes in enumerate(per_layer):
        for role, shape in shapes.items():
            for name in entry.layer_roles[role]:
                out[f"{entry.layers[0]}.{index}.{name}"] = (role, tuple(shape))
    for role, shape in model_shapes.items():
        for name in entry.model_roles[role]:
            out[name] = (role, tuple(shape))
    return out


def head_dim(config) -> int:
    """The attention head size: ``config.head_dim`` where set, else hidden_size / num_attention_heads."""
    value = getattr(config, "head_dim", None)
    return int(value) if value else config.hidden_size // config.num_attention_heads


def kv_heads(config) -> int:
    """Key/value heads (GQA), defaulting to the attention heads."""
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def _pattern(text: str) -> re.Pattern:
    return re.compile(r"\d+".join(re.escape(part) for part in text.split("*")))


def classify_family(plugin: str, model_types, model_type, config, leaves, registry, shapes) -> dict[str, str] | None:
    """The classify hook of a config-driven architecture plugin.

    Answers ``None`` for model types the plugin does not own; otherwise expands the registry
    entry over the config's layers with ``shapes(config) -> (per-layer shapes, model-level shapes)``
    and checks every predicted name and shape against the built model (``check_expected``). With
    no config (a bare module) it falls back to matching the entry by name.
    """
    if model_type not in model_types or model_type not in registry.architectures:
        return None
    entry = registry.architectures[model_type]
    if config is None:
        return match_entry(entry, leaves)
    return check_expected(plugin, leaves, expand_entry(entry, config.num_hidden_layers, *shapes(config)))


# Shape builders shared by the config-driven plugins; shapes are [out, in] (experts: [E, out, in]).

def attention_shapes(config) -> dict[str, tuple[int, ...]]:
    """Separate q/k/v/o projections with grouped-query attention."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    kv = kv_heads(config) * dim
    return {
        "attention-q": (heads * dim, hidden),
        "attention-k": (kv, hidden),
        "attention-v": (kv, hidden),
        "attention-o": (hidden, heads * dim),
    }


def gated_ffn_shapes(config) -> dict[str, tuple[int, ...]]:
    """A gated FFN: gate and up read the hidden state, down writes it."""
    hidden, inter = config.hidden_size, config.intermediate_size
    return {"ffn-gate": (inter, hidden), "ffn-up": (inter, hidden), "ffn-down": (hidden, inter)}


def stacked_experts_shapes(config, experts: int) -> dict[str, tuple[int, ...]]:
    """transformers 5 routed experts: fused gate_up and down as 3-D parameters, plus the router."""
    hidden, inter = config.hidden_size, config.intermediate_size
    return {
        "experts-gate-up": (experts, 2 * inter, hidden),
        "experts-down": (experts, hidden, inter),
        "router": (experts, hidden),
    }


def vocab_shapes(config) -> dict[str, tuple[int, ...]]:
    """Input embedding and output head."""
    return {"embed": (config.vocab_size, config.hidden_size), "lm-head": (config.vocab_size, config.hidden_size)}
