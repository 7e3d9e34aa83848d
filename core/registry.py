"""The shared data in ``registry.toml``: roles, aliases, presets, scopes, name families, architectures."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .errors import RegistryError

SCOPES = ("language", "vision", "audio", "projector")


@dataclass(frozen=True)
class Preset:
    """A named LoRA recipe: roles plus rank and alpha, with per-role overrides."""

    name: str
    description: str
    roles: str
    rank: int
    alpha: float
    rank_for: Mapping[str, int] = field(default_factory=dict)
    alpha_for: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Architecture:
    """A declarative architecture entry: where the layer stack is and which module plays which role."""

    model_type: str
    layers: tuple[str, ...]  # the layer stack(s): "model.layers", or encoder and decoder stacks
    layer_roles: Mapping[str, tuple[str, ...]]
    model_roles: Mapping[str, tuple[str, ...]]
    plugin: str | None = None
    source: str = "registry.toml"


@dataclass(frozen=True)
class Registry:
    """Everything ``registry.toml`` holds, validated."""

    roles: Mapping[str, str]
    aliases: Mapping[str, tuple[str, ...]]
    fused: Mapping[str, str]
    presets: Mapping[str, Preset]
    scopes: Mapping[str, tuple[str, ...]]
    names: Mapping[str, Mapping[str, tuple[str, ...]]]
    blocks: Mapping[str, tuple[str, ...]]
    architectures: Mapping[str, Architecture]

    def merged(self, fragment: Mapping[str, Any], source: str) -> "Registry":
        """Return a registry with ``fragment``'s presets and architectures added (a fragment wins on clashes)."""
        extra = _parse_fragment(fragment, source, set(self.roles))
        return Registry(
            roles=self.roles,
            aliases=self.aliases,
            fused=self.fused,
            presets={**self.presets, **extra["presets"]},
            scopes=self.scopes,
            names=self.names,
            blocks=self.blocks,
            architectures={**self.architectures, **extra["architectures"]},
        )


def builtin_registry_path() -> Path:
    """Where the built-in ``registry.toml`` is: inside the installed package, or at the source tree's top."""
    packaged = resources.files("lora_registry").joinpath("registry.toml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "registry.toml"


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    """Read and validate the built-in ``registry.toml`` (cached)."""
    path = builtin_registry_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{path}: {exc}") from None
    return parse_registry(data, str(path))


def parse_registry(data: Mapping[str, Any], source: str) -> Registry:
    """Validate a full registry document; errors name ``source`` and the offending key."""
    roles = _table(data, "roles", source)
    for role, text in roles.items():
        if not isinstance(text, str):
            raise RegistryError(f"{source}: roles.{role} must be a string")
    known = set(roles)
    aliases = {}
    for alias, targets in _table(data, "aliases", source).items():
        aliases[alias] = _role_list(targets, known, f"{source}: aliases.{alias}")
    fused = {}
    for role, into in _table(data, "fused", source).items():
        if role not in known or into not in known:
            raise RegistryError(f"{source}: fused.{role} names an unknown role")
        fused[role] = into
    scopes = {}
    for scope, words in _table(data, "scopes", source).items():
        if scope not in SCOPES:
            raise RegistryError(f"{source}: scopes.{scope} is not one of {', '.join(SCOPES)}")
        scopes[scope] = tuple(w.lower() for w in _str_list(words, f"{source}: scopes.{scope}"))
    names = {}
    for block, table in _table(data, "names", source).items():
        if not isinstance(table, dict):
            raise RegistryError(f"{source}: names.{block} must be a table")
        names[block] = {
            role: tuple(_str_list(v, f"{source}: names.{block}.{role}"))
            for role, v in table.items()
            if _check_role(role, known, f"{source}: names.{block}")
        }
    blocks = {k: tuple(_str_list(v, f"{source}: blocks.{k}")) for k, v in _table(data, "blocks", source).items()}
    rest = _parse_fragment(data, source, known)
    return Registry(roles, aliases, fused, rest["presets"], scopes, names, blocks, rest["architectures"])


def _parse_fragment(data: Mapping[str, Any], source: str, known: set[str]) -> dict[str, dict]:
    presets = {}
    for name, p in _table(data, "presets", source).items():
        where = f"{source}: presets.{name}"
        if not isinstance(p, dict):
            raise RegistryError(f"{where} must be a table")
        try:
            presets[name] = Preset(
                name=name,
                description=str(p.get("description", "")),
                roles=_require(p, "roles", str, where),
                rank=_require(p, "rank", int, where),
                alpha=float(_require(p, "alpha", (int, float), where)),
                rank_for={str(k): int(v) for k, v in dict(p.get("rank_for", {})).items()},
                alpha_for={str(k): float(v) for k, v in dict(p.get("alpha_for", {})).items()},
            )
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{where}: {exc}") from None
    architectures = {}
    for model_type, a in _table(data, "architectures", source).items():
        where = f"{source}: architectures.{model_type}"
        if not isinstance(a, dict):
            raise RegistryError(f"{where} must be a table")
        if "layers" not in a:
            raise RegistryError(f"{where}: missing key 'layers'")
        layers = tuple(_str_list(a["layers"], f"{where}.layers"))
        layer_roles = {
            role: tuple(_str_list(v, f"{where}.layer_roles.{role}"))
            for role, v in dict(a.get("layer_roles", {})).items()
            if _check_role(role, known, f"{where}.layer_roles")
        }
        model_roles = {
            role: tuple(_str_list(v, f"{where}.model_roles.{role}"))
            for role, v in dict(a.get("model_roles", {})).items()
            if _check_role(role, known, f"{where}.model_roles")
        }
        if not layer_roles:
            raise RegistryError(f"{where}.layer_roles is empty")
        plugin = a.get("plugin")
        if plugin is not None and not isinstance(plugin, str):
            raise RegistryError(f"{where}.plugin must be a string")
        architectures[model_type] = Architecture(model_type, layers, layer_roles, model_roles, plugin, source)
    return {"presets": presets, "architectures": architectures}


def _table(data: Mapping[str, Any], key: str, source: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise RegistryError(f"{source}: {key} must be a table")
    return value


def _require(table: Mapping[str, Any], key: str, kind, where: str):
    if key not in table:
        raise RegistryError(f"{where}: missing key {key!r}")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RegistryError(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RegistryError(f"{where} must be a string or a list of non-empty strings")
    return value


def _role_list(value: Any, known: set[str], where: str) -> tuple[str, ...]:
    roles = _str_list(value, where)
    for role in roles:
        _check_role(role, known, where)
    return tuple(roles)


def _check_role(role: str, known: set[str], where: str) -> bool:
    if role not in known:
        raise RegistryError(f"{where}: unknown role {role!r}")
    return True
