"""Role specs: ``"q,v,ffn"`` or ``["q", "v", "ffn"]`` expanded into concrete roles.

Besides roles and aliases, a resolution accepts PEFT's keyword ``all-linear`` (``all_linear=True``):
a request with no roles of its own, which ``resolve_map`` expands by PEFT's rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import RoleError
from .peft_compat import ALL_LINEAR
from .registry import Registry


@dataclass(frozen=True)
class RoleRequest:
    """One item of a role spec as the user wrote it, and the concrete roles it stands for."""

    written: str
    roles: tuple[str, ...]


def parse_roles(spec: str | Sequence[str], registry: Registry, *, all_linear: bool = False) -> list[RoleRequest]:
    """Split a role spec into requests, expanding aliases; unknown names raise ``RoleError``.

    With ``all_linear``, PEFT's ``all-linear`` is accepted as a request with no roles of its own.
    """
    items = _split(spec)
    if not items:
        raise RoleError("no roles given; pass e.g. --roles q,v or --roles all (see `lora-registry roles`)")
    requests, seen = [], set()
    for item in items:
        if item in seen:
            continue
        seen.add(item)
        if item in registry.roles:
            requests.append(RoleRequest(item, (item,)))
        elif item == ALL_LINEAR and all_linear:
            requests.append(RoleRequest(item, ()))
        elif item in registry.aliases:
            requests.append(RoleRequest(item, registry.aliases[item]))
        else:
            known = known_names(registry) + ([ALL_LINEAR] if all_linear else [])
            raise RoleError(f"unknown role or alias {item!r}; known: {', '.join(known)}")
    return requests


def unknown_words(spec: str | Sequence[str], registry: Registry) -> list[str]:
    """The items of ``spec`` that are neither a role, an alias nor ``all-linear`` (as written, lower-cased)."""
    try:
        items = _split(spec)
    except RoleError:
        return []
    known = set(registry.roles) | set(registry.aliases) | {ALL_LINEAR}
    return [item for item in dict.fromkeys(items) if item not in known]


def known_names(registry: Registry) -> list[str]:
    """Every role and alias, roles first."""
    return list(registry.roles) + list(registry.aliases)


def expand(spec: str | Sequence[str], registry: Registry) -> list[str]:
    """The concrete roles of a spec, in vocabulary order, without duplicates."""
    wanted = {role for request in parse_roles(spec, registry) for role in request.roles}
    return [role for role in registry.roles if role in wanted]


def _split(spec: str | Sequence[str] | Iterable[str]) -> list[str]:
    if isinstance(spec, str):
        parts = spec.split(",")
    else:
        try:
            parts = [p for item in spec for p in str(item).split(",")]
        except TypeError:
            raise RoleError(f"roles must be a comma list or a list of strings, not {type(spec).__name__}") from None
    return [p.strip().lower() for p in parts if p.strip()]
