"""Leaves LoRA cannot train: PEFT refuses them, or accepts them while the model never runs the adapter.

A role says what a leaf is; a limit says whether a LoRA there would learn anything. Resolutions
read the limits of the model they select from: aliases (``all``, ``mixer``, ``all-linear``) leave
out a leaf PEFT refuses (``peft_compat.lora_refusal``) or whose adapter never changes the output
(``[limits]`` kind ``never`` in ``registry.toml``), with one warning naming it; asking for its role
explicitly is an error saying why. A leaf whose adapter trains only without the fused mamba_ssm
kernels (kind ``kernels``) is kept, with one warning. ``inspect`` still shows every leaf's role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .peft_compat import lora_refusal

if TYPE_CHECKING:  # pragma: no cover
    from .inspection import ModelMap
    from .tree import Leaf

#: limit kinds that keep a leaf out of every resolution
BLOCKING = ("refused", "never")


@dataclass(frozen=True)
class LeafLimit:
    """Why LoRA on one leaf would fail or not train: ``kind`` is ``refused`` (PEFT raises), ``never``
    (the adapter never changes the output) or ``kernels`` (it trains only without the fused kernels)."""

    kind: str
    why: str

    @property
    def blocking(self) -> bool:
        """True when no resolution may target the leaf."""
        return self.kind in BLOCKING


def lora_limits(model_map: ModelMap) -> dict[str, LeafLimit]:
    """``{leaf name: LeafLimit}`` for the leaves of ``model_map`` that have one (computed once per map)."""
    cached = model_map.__dict__.get("_lora_limits")
    if cached is None:
        cached = {}
        table = model_map.vocabulary.limits
        for leaf in model_map.leaves:
            found = _limit(leaf, model_map.model_type, table)
            if found is not None:
                cached[leaf.name] = found
        object.__setattr__(model_map, "_lora_limits", cached)
    return dict(cached)


def _limit(leaf: Leaf, model_type: str, table) -> LeafLimit | None:
    refusal = lora_refusal(model_type, leaf)
    if refusal is not None:
        return LeafLimit("refused", refusal)
    holder = leaf.path[-2][1] if len(leaf.path) > 1 else ""
    keys = [f"{holder}.{leaf.short_name}"]
    if leaf.kind == "module":
        keys.append(leaf.module_class)  # a leaf of that class (DeepseekV4GroupedLinear)
    for key in keys:
        entry = table.get(key)
        if entry is not None:
            return LeafLimit(entry.kind, entry.why)
    return None
