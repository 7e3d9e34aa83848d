"""Exact, compact PEFT targets: the shortest name suffixes that match the selected set and nothing else.

PEFT matches a ``target_modules`` list entry ``t`` against a module name ``n`` when ``n == t`` or
``n.endswith("." + t)``; a string is a regex that must ``fullmatch``. ``target_parameters`` entries
match parameter names the same way (no regex). A suffix like ``q_proj`` that also names a vision
tower's module is therefore wrong; these helpers only emit targets proven exact against every
name in the model.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Sequence


def exact_suffixes(selected: Sequence[str], universe: Iterable[str]) -> list[str] | None:
    """Shortest digit-free suffixes matching exactly ``selected`` among ``universe``, or ``None``.

    ``None`` means some selected name can only be told apart by a layer or expert index.
    """
    chosen = set(selected)
    if not chosen:
        return []
    # How many names outside the selection carry each digit-free suffix.
    outside: dict[str, int] = {}
    for name in universe:
        if name in chosen:
            continue
        for suffix in _suffixes(name):
            outside[suffix] = outside.get(suffix, 0) + 1
    picked: set[str] = set()
    for name in chosen:
        for suffix in _suffixes(name):
            if suffix not in outside:
                picked.add(suffix)
                break
        else:
            return None
    return sorted(picked, key=lambda s: (s.count("."), s))


def exact_regex(selected: Sequence[str], universe: Iterable[str]) -> str:
    """A regex that ``re.fullmatch``es exactly ``selected`` among ``universe``.

    Layer and expert indices are generalised to ``\\d+`` when that stays exact; otherwise the
    names are listed (factored on their common prefix).
    """
    chosen = sorted(set(selected))
    universe = list(universe)
    general = sorted({_generalise(name) for name in chosen})
    regex = _factor(general)
    compiled = re.compile(regex)
    if {n for n in universe if compiled.fullmatch(n)} == set(chosen):
        return regex
    return _factor([re.escape(name) for name in chosen])


def matches_list(targets: Sequence[str], name: str) -> bool:
    """PEFT's list rule: ``name == t`` or ``name.endswith('.' + t)`` for some ``t``."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _suffixes(name: str):
    parts = name.split(".")
    for k in range(1, len(parts) + 1):
        tail = parts[-k:]
        if tail[0].isdigit():
            return  # a suffix starting with an index would tie the target to one layer
        yield ".".join(tail)


def _generalise(name: str) -> str:
    return r"\.".join(r"\d+" if part.isdigit() else re.escape(part) for part in name.split("."))


def _factor(patterns: Sequence[str]) -> str:
    if len(patterns) == 1:
        return patterns[0]
    split = [p.split(r"\.") for p in patterns]
    prefix = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    # keep at least one component in each alternative
    prefix = prefix[: min(len(s) for s in split) - 1]
    rest = [r"\.".join(s[len(prefix):]) for s in split]
    head = r"\.".join(prefix)
    body = "(?:" + "|".join(rest) + ")"
    return head + r"\." + body if head else body


@lru_cache(maxsize=None)
def peft_renamed_leaves(model_type: str) -> frozenset[str]:
    """Module names PEFT rewrites into expert parameters for this model_type.

    With transformers 5, PEFT converts ``target_modules`` entries ending in the v4 MoE names
    (``gate``, ``w1``/``w2``/``w3`` for Mixtral-like models; ``gate``, ``gate_proj``, ``up_proj``,
    ``down_proj`` for Qwen2-MoE-like ones, DeepSeek included) into ``target_parameters`` of the
    stacked experts, and turns a regex ``target_modules`` into bare leaf names first. A dense FFN's
    ``down_proj`` in such a model would silently become the experts' ``down_proj``. Empty when PEFT
    does no such conversion (or its private tables moved).
    """
    try:
        from peft.utils.transformers_weight_conversion import (
            _MODEL_TO_CONVERSION_PATTERN,
            _MOE_TARGET_MODULE_MAPPING,
        )
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    except Exception:
        return frozenset()
    base = _MODEL_TO_CONVERSION_PATTERN.get(model_type)
    mapping = _MOE_TARGET_MODULE_MAPPING.get(base) if base else None
    if not mapping:
        return frozenset()
    try:
        if get_checkpoint_conversion_mapping(model_type) is None:
            return frozenset()
    except Exception:
        return frozenset()
    return frozenset(mapping)
