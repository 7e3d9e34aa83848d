"""Declarative architecture entries from ``registry.toml`` and plugins' registry fragments."""

from __future__ import annotations

from lora_registry import hookimpl
from lora_registry.architectures import match_entry


@hookimpl
def lora_registry_model_types(registry):
    """Every model_type with an ``[architectures.*]`` entry in the merged registry."""
    return sorted(registry.architectures)


@hookimpl(trylast=True)
def lora_registry_classify(model_type, leaves, registry):
    """Answer for a model_type that has an entry, when every role the entry lists is found in the model."""
    entry = registry.architectures.get(model_type)
    if entry is None:
        return None
    return match_entry(entry, leaves)
