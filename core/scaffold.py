"""``scaffold``: a starting declarative entry (TOML) for an architecture only the generic fallback understands."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from .errors import PluginError
from .inspection import ModelMap

_DIGITS = re.compile(r"(?<=[._])\d+(?=\.|$)")  # a layer or expert index: layers.3, expert_3


def scaffold(model_map: ModelMap, *, allow_plugin: bool = False) -> str:
    """Write the ``[architectures.<model_type>]`` entry that reproduces ``model_map``'s language-model roles.

    The entry names the layer stack(s), each role's module names inside one layer (expert indices
    become ``*``) and the model-level roles, with the leaves left without a role listed as comments
    and why. Raises ``PluginError`` when a dedicated plugin already answers (unless ``allow_plugin``)
    or when one name plays two roles in different layers, which an entry cannot express.
    """
    if model_map.plugin != "generic" and not allow_plugin:
        raise PluginError(
            f"{model_map.model_type or model_map.model}: already answered by plugin {model_map.plugin!r}; "
            "scaffold is for architectures only the generic fallback understands"
        )
    if not model_map.model_type:
        raise PluginError(f"{model_map.model}: no model_type, so a declarative entry could not be found for it")
    stacks: dict[str, None] = {}
    layer_roles: dict[str, dict[str, None]] = defaultdict(dict)
    model_roles: dict[str, dict[str, None]] = defaultdict(dict)
    seen: dict[str, str] = {}
    nulls: dict[str, str] = {}
    for leaf in model_map.leaves:
        if leaf.scope != "language":
            continue
        role = model_map.roles.get(leaf.name)
        if role is None:
            reason = model_map.null_reasons.get(leaf.name, "no role")
            nulls.setdefault(_generalise(leaf.name), reason)
            continue
        if leaf.layer is None:
            model_roles[role][leaf.name] = None
            continue
        stack = leaf.stack or ""
        rest = leaf.name[len(stack) + len(str(leaf.layer)) + 2 :]
        stacks[stack] = None
        pattern = _generalise(rest)
        if seen.setdefault(pattern, role) != role:
            raise PluginError(
                f"{model_map.model_type}: {pattern!r} is {seen[pattern]} in some layers and {role} in others; "
                "a declarative entry cannot express that, write a Python plugin"
            )
        layer_roles[role][pattern] = None
    if not layer_roles:
        raise PluginError(f"{model_map.model_type}: no language-model layer leaf has a role; nothing to scaffold")
    order = list(model_map.vocabulary.roles)
    key = _toml_key(model_map.model_type)
    lines = [
        f"# Declarative entry for model_type {model_map.model_type!r}, written by `lora-registry scaffold`",
        f"# from what the {model_map.plugin} plugin found in {model_map.model} ({model_map.tree.root_class}).",
        "# Review every line against the model's code before shipping it (registry.toml or a plugin's",
        '# lora_registry_registry_fragment hook). "*" matches a number (an expert index).',
        f"[architectures.{key}]",
        f"layers = {_value(list(stacks))}",
        "",
        f"[architectures.{key}.layer_roles]",
    ]
    lines += [f"{role} = {_value(list(layer_roles[role]))}" for role in order if role in layer_roles]
    if model_roles:
        lines += ["", f"[architectures.{key}.model_roles]"]
        lines += [f"{role} = {_value(list(model_roles[role]))}" for role in order if role in model_roles]
    if nulls:
        lines += ["", "# Left without a role (the entry does not name them):"]
        lines += [f"#   {name}: {reason}" for name, reason in nulls.items()]
    return "\n".join(lines) + "\n"


def _generalise(rest: str) -> str:
    return _DIGITS.sub("*", rest)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _value(items: list[Any]) -> str:
    return json.dumps(items[0]) if len(items) == 1 else "[" + ", ".join(json.dumps(i) for i in items) + "]"
