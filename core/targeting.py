"""Exact, compact PEFT targets: the shortest name suffixes that match the selected set and nothing else.

Under PEFT's matching rules (``peft_compat.matches_target_modules``: a list entry is a name or a
dotted suffix of one, a string a regex that must match the whole name), a suffix like ``q_proj``
that also names a vision tower's module is wrong; these helpers only emit targets proven exact
against every name in the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

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

    Layer and expert indices are generalised to ``\\d+`` when that stays exact; otherwise the
    names are listed (factored on their common prefix).
    """
    chosen = sorted(set(selected))
    universe = list(universe)
    general = sorted({_generalise(name) for name in chosen})
    regex = _factor(general)
    if {n for n in universe if matches_target_modules(regex, n)} == set(chosen):
        return regex
    return _factor([re.escape(name) for name in chosen])


def _suffixes(name: str) -> Iterator[str]:
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
    rest = [r"\.".join(s[len(prefix) :]) for s in split]
    head = r"\.".join(prefix)
    body = "(?:" + "|".join(rest) + ")"
    return head + r"\." + body if head else body
