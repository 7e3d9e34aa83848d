"""Exact, compact PEFT targets: the shortest name suffixes that match the selected set and nothing else.

Under PEFT's matching rules (``peft_compat.matches_target_modules``: a list entry is a name or a
dotted suffix of one, a string a regex that must match the whole name), a suffix like ``q_proj``
that also names a vision tower's module is wrong; these helpers only emit targets proven exact
against every name in the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .peft_compat import matches_target_modules


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
    """A regex PEFT matches against exactly ``selected`` among ``universe`` (``peft_compat.matches_target_modules``).

    Layer and expert indices are generalised to ``\\d+`` when that stays exact; otherwise each
    index that varies is spelled as the alternation of the selected numbers, in numeric order
    (``model\\.layers\\.(?:0|1|24|25)\\.self_attn\\.(?:q_proj|v_proj)``); otherwise the names are
    listed (factored on their common prefix, in numeric order).
    """
    chosen = sorted(set(selected), key=_natural)
    universe = list(universe)
    for regex in (_factor(sorted({_generalise(name) for name in chosen})), _indexed(chosen)):
        if regex is None:
            continue
        if {n for n in universe if matches_target_modules(regex, n)} == set(chosen):
            return regex
    return _factor([re.escape(name) for name in chosen])


def exact_layered(
    selected: Sequence[str], universe: Sequence[str], stacks: Iterable[str]
) -> tuple[list[str], list[int], str | list[str] | None] | None:
    """``(target_modules, layers_to_transform, layers_pattern)`` that select exactly ``selected`` among ``universe``, or ``None``.

    Under PEFT's rule (``peft_compat.matches_target_modules`` with a layer selection): digit-free
    suffixes for the names inside layers, the layer indices they sit in, and no ``layers_pattern`` if
    PEFT's default index rule finds the right layers, else the shortest tail of the layer stacks' names
    that does (``language_model.layers`` on a VLM, whose vision tower has layers too). Names outside
    any layer are given in full (PEFT never filters those by layer). Proven against every name.
    """
    from .peft_compat import layer_index, matches_target_modules

    chosen = set(selected)
    if not chosen:
        return None
    for pattern in _layer_patterns(stacks):
        index = {name: layer_index(name, pattern) for name in universe}
        layers = sorted({i for n in chosen if (i := index.get(n)) is not None})
        if not layers:
            continue
        kept = set(layers)
        layered = [n for n in chosen if index.get(n) is not None]
        suffixes = exact_suffixes(layered, [n for n in universe if index[n] in kept])
        if suffixes is None:
            continue
        targets = suffixes + sorted(chosen.difference(layered))
        picked = {
            n
            for n in universe
            if matches_target_modules(targets, n, layers_to_transform=layers, layers_pattern=pattern)
        }
        if picked == chosen:
            return targets, layers, pattern
    return None


def _layer_patterns(stacks: Iterable[str]) -> Iterator[str | list[str] | None]:
    """``None`` (PEFT's default rule), then ever longer tails of the stacks' names: ``layers``, ``language_model.layers``, ..."""
    yield None
    split = sorted({tuple(stack.split(".")) for stack in stacks if stack})
    for k in range(1, max((len(parts) for parts in split), default=0) + 1):
        tails = sorted({".".join(parts[-k:]) for parts in split})
        yield tails[0] if len(tails) == 1 else tails


def _suffixes(name: str) -> Iterator[str]:
    parts = name.split(".")
    for k in range(1, len(parts) + 1):
        tail = parts[-k:]
        if tail[0].isdigit():
            return  # a suffix starting with an index would tie the target to one layer
        yield ".".join(tail)


def _natural(name: str) -> list[Any]:
    """Sort key: numbers as numbers (``layers.2`` before ``layers.10``)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split(".")]


def _indexed(names: Sequence[str]) -> str | None:
    """Names grouped on their first index, as ``prefix\\.(?:0|1|7)\\.(?:rest|...)`` alternatives (``None``: an index at an end)."""
    groups: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    templates: dict[tuple[str, str], list[int]] = {}
    literals: list[str] = []
    for name in names:
        parts = name.split(".")
        digits = [i for i, part in enumerate(parts) if part.isdigit()]
        if not digits:
            literals.append(re.escape(name))
            continue
        i = digits[0]  # the first index is the layer's (PEFT reads it so too); any later one stays literal
        if i in (0, len(parts) - 1):
            return None
        templates.setdefault((".".join(parts[:i]), ".".join(parts[i + 1 :])), []).append(int(parts[i]))
    for (prefix, rest), indices in templates.items():
        groups.setdefault((prefix, tuple(sorted(indices))), []).append(rest)
    alternatives = []
    for (prefix, numbers), rests in sorted(groups.items()):
        index = "(?:" + "|".join(map(str, numbers)) + ")" if len(numbers) > 1 else str(numbers[0])
        body = [re.escape(rest) for rest in sorted(rests)]
        tail = body[0] if len(body) == 1 else "(?:" + "|".join(body) + ")"
        alternatives.append(re.escape(prefix) + r"\." + index + r"\." + tail)
    alternatives += literals
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


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
    rest = [r"\.".join(s[len(prefix) :]) for s in split]
    head = r"\.".join(prefix)
    body = "(?:" + "|".join(rest) + ")"
    return head + r"\." + body if head else body
