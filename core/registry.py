"""The shared data in ``registry.toml``: roles, aliases, presets, scopes, name families, architectures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .errors import RegistryError

SCOPES = ("language", "vision", "audio", "projector")
#: Top-level tables of the built-in ``registry.toml``; a plugin's fragment may hold only ``FRAGMENT_KEYS``.
REGISTRY_KEYS = (
    "schema",
    "roles",
    "aliases",
    "fused",
    "served_by",
    "presets",
    "scopes",
    "names",
    "blocks",
    "limits",
    "architectures",
    "gpus",
)
FRAGMENT_KEYS = ("schema", "presets", "architectures")
_PRESET_KEYS = ("description", "roles", "rank", "alpha", "rank_for", "alpha_for")
_ARCHITECTURE_KEYS = ("layers", "layer_roles", "model_roles")
#: ``[limits]`` kinds: the LoRA never changes the output, or trains only without the fused mamba_ssm kernels
LIMIT_KINDS = ("never", "kernels")


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
    source: str = "registry.toml"


@dataclass(frozen=True)
class Limit:
    """Why LoRA cannot train a leaf PEFT accepts (``kind`` ``"never"``), or trains it only without fused kernels (``"kernels"``)."""

    kind: str
    why: str


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
    #: GPU memory in GiB by lower-case name, aliases included (``plan --gpu``)
    gpus: Mapping[str, float] = field(default_factory=dict)
    #: one-role alias -> the roles that do its job where the model lacks its role (``[served_by]``)
    served_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: ``"Class.attribute"`` or ``"Class"`` -> why LoRA cannot train such a leaf (``[limits]``)
    limits: Mapping[str, Limit] = field(default_factory=dict)

    def merged(self, fragment: Mapping[str, Any], source: str) -> Registry:
        """Return a registry with ``fragment``'s presets and architectures added (a fragment wins on clashes)."""
        _check_keys(fragment, FRAGMENT_KEYS, source, "a registry fragment")
        extra = _parse_fragment(fragment, source, set(self.roles), set(self.aliases))
        return Registry(
            roles=self.roles,
            aliases=self.aliases,
            fused=self.fused,
            presets={**self.presets, **extra["presets"]},
            scopes=self.scopes,
            names=self.names,
            blocks=self.blocks,
            architectures={**self.architectures, **extra["architectures"]},
            gpus=self.gpus,
            served_by=self.served_by,
            limits=self.limits,
        )

    def digest(self) -> str:
        """A digest of the whole registry's content (for cache keys): any change to roles, names or entries changes it."""
        import hashlib
        import json

        def plain(value: Any) -> Any:
            if isinstance(value, Mapping):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if hasattr(value, "__dataclass_fields__"):
                return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__ if k != "source"}
            return value

        cached = self.__dict__.get("_digest")
        if cached is None:
            # the GPU table sizes plans, not maps: a new card must not invalidate every cached map
            fields = [k for k in self.__dataclass_fields__ if k != "gpus"]
            text = json.dumps(plain({k: getattr(self, k) for k in fields}), sort_keys=True)
            cached = hashlib.sha256(text.encode()).hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached


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
    _check_keys(data, REGISTRY_KEYS, source, "registry.toml")
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
        if role not in known or not isinstance(into, str) or into not in known:
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
    served_by = {}
    for alias, targets in _table(data, "served_by", source).items():
        if len(aliases.get(alias, ())) != 1:
            raise RegistryError(f"{source}: served_by.{alias} must name a one-role alias")
        served_by[alias] = _role_list(targets, known, f"{source}: served_by.{alias}")
    limits = {}
    for key, entry in _table(data, "limits", source).items():
        where = f"{source}: limits.{key}"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where} must be a table")
        _check_keys(entry, ("kind", "why"), where, "a limit")
        kind, why = _require(entry, "kind", str, where), _require(entry, "why", str, where)
        if kind not in LIMIT_KINDS:
            raise RegistryError(f"{where}.kind must be one of {', '.join(LIMIT_KINDS)}, not {kind!r}")
        limits[key] = Limit(kind, why)
    rest = _parse_fragment(data, source, known, set(aliases))
    gpus = _parse_gpus(_table(data, "gpus", source), source)
    return Registry(
        roles=roles,
        aliases=aliases,
        fused=fused,
        presets=rest["presets"],
        scopes=scopes,
        names=names,
        blocks=blocks,
        architectures=rest["architectures"],
        gpus=gpus,
        served_by=served_by,
        limits=limits,
    )


def _parse_gpus(table: Mapping[str, Any], source: str) -> dict[str, float]:
    """``[gpus]``: ``NAME = GiB`` entries and an ``aliases`` table of ``ALIAS = "NAME"``; keys lower-cased."""
    gpus: dict[str, float] = {}
    for name, size in table.items():
        if name == "aliases":
            continue
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size < 100_000:
            raise RegistryError(f"{source}: gpus.{name} must be a positive number of GiB, not {size!r}")
        gpus[name.lower()] = float(size)
    aliases = table.get("aliases", {})
    if not isinstance(aliases, dict):
        raise RegistryError(f"{source}: gpus.aliases must be a table")
    for alias, target in aliases.items():
        if not isinstance(target, str) or target.lower() not in gpus:
            raise RegistryError(f"{source}: gpus.aliases.{alias} must name a GPU in [gpus], not {target!r}")
        gpus[alias.lower()] = gpus[target.lower()]
    return gpus


def _parse_fragment(
    data: Mapping[str, Any], source: str, known: set[str], aliases: Iterable[str] = ()
) -> dict[str, dict]:
    names = known | set(aliases)  # what a preset's roles, rank_for and alpha_for may name
    presets = {}
    for name, p in _table(data, "presets", source).items():
        where = f"{source}: presets.{name}"
        if not isinstance(p, dict):
            raise RegistryError(f"{where} must be a table")
        _check_keys(p, _PRESET_KEYS, where, "a preset")
        roles = _require(p, "roles", str, where)
        rank = _rank(_require(p, "rank", int, where), f"{where}.rank")
        alpha = _alpha(_require(p, "alpha", (int, float), where), f"{where}.alpha")
        items = [item.strip().lower() for item in roles.split(",") if item.strip()]
        if not items:
            raise RegistryError(f"{where}.roles is empty")
        for item in items:
            if item not in names:
                raise RegistryError(f"{where}.roles: unknown role or alias {item!r}")
        description = p.get("description", "")
        if not isinstance(description, str):
            raise RegistryError(f"{where}.description must be a string")
        presets[name] = Preset(
            name=name,
            description=description,
            roles=roles,
            rank=rank,
            alpha=alpha,
            rank_for={
                key: _rank(v, f"{where}.rank_for.{key}")
                for key, v in _per_role_table(p, "rank_for", names, where).items()
            },
            alpha_for={
                key: _alpha(v, f"{where}.alpha_for.{key}")
                for key, v in _per_role_table(p, "alpha_for", names, where).items()
            },
        )
    architectures = {}
    for model_type, a in _table(data, "architectures", source).items():
        where = f"{source}: architectures.{model_type}"
        if not isinstance(a, dict):
            raise RegistryError(f"{where} must be a table")
        _check_keys(a, _ARCHITECTURE_KEYS, where, "an architecture entry")
        if "layers" not in a:
            raise RegistryError(f"{where}: missing key 'layers'")
        layers = tuple(_str_list(a["layers"], f"{where}.layers"))
        layer_roles = {
            role: tuple(_str_list(v, f"{where}.layer_roles.{role}"))
            for role, v in _table(a, "layer_roles", where).items()
            if _check_role(role, known, f"{where}.layer_roles")
        }
        model_roles = {
            role: tuple(_str_list(v, f"{where}.model_roles.{role}"))
            for role, v in _table(a, "model_roles", where).items()
            if _check_role(role, known, f"{where}.model_roles")
        }
        if not layer_roles:
            raise RegistryError(f"{where}.layer_roles is empty")
        architectures[model_type] = Architecture(model_type, layers, layer_roles, model_roles, source)
    return {"presets": presets, "architectures": architectures}


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A user's TOML file (presets and architecture entries), with one-line errors naming it."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read presets file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: invalid TOML: {exc}") from None


def _check_keys(data: Any, allowed: tuple[str, ...], where: str, what: str) -> None:
    # An unknown key is a typo (rank-for, layer-roles) or data this version would silently ignore.
    if not isinstance(data, Mapping):
        raise RegistryError(f"{where}: must be a table, not {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise RegistryError(f"{where}: unknown key {key!r} in {what}; allowed: {', '.join(allowed)}")


def _table(data: Mapping[str, Any], key: str, source: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise RegistryError(f"{source}: {key} must be a table")
    return value


def _per_role_table(preset: Mapping[str, Any], key: str, names: set[str], where: str) -> dict:
    table = _table(preset, key, where)
    for name in table:
        if str(name).strip().lower() not in names:
            raise RegistryError(f"{where}.{key}: unknown role or alias {name!r}")
    return table


def _rank(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RegistryError(f"{where} must be a positive whole number, not {value!r}")
    return value


def _alpha(value: Any, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
    if not ok:
        raise RegistryError(f"{where} must be a positive number, not {value!r}")
    return float(value)


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
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise RegistryError(f"{where} must be a non-empty string or a non-empty list of non-empty strings")
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
