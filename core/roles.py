"""Role specs: ``"q,v,ffn"`` or ``["q", "v", "ffn"]`` expanded into concrete roles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import RoleError
from .registry import Registry


@dataclass(frozen=True)
class RoleRequest:
    """One item of a role spec as the user wrote it, and the concrete roles it stands for."""

    written: str
    roles: tuple[str, ...]


def parse_roles(spec: str | Sequence[str], registry: Registry) -> list[RoleRequest]:
    """Split a role spec into requests, expanding aliases; unknown names raise ``RoleError``."""
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
        elif item in registry.aliases:
            requests.append(RoleRequest(item, registry.aliases[item]))
        else:
            raise RoleError(f"unknown role or alias {item!r}; known: {', '.join(known_names(registry))}")
    return requests


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
