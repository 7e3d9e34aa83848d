"""The plugin manager: built-in plugins, third-party entry points, isolation and precedence."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import warnings as pywarnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pluggy

from . import hookspecs
from .errors import PluginError, RegistryError
from .registry import Registry, load_registry

ENTRY_POINT_GROUP = "lora_registry"
#: Comma list of plugin names to leave unregistered (built-in or third-party).
DISABLE_ENV = "LORA_REGISTRY_DISABLE_PLUGINS"
#: Set to 1 to make any plugin failure fatal instead of a warning (for plugin authors).
STRICT_ENV = "LORA_REGISTRY_STRICT_PLUGINS"
#: a TOML file of the user's own presets, merged last (``--presets FILE`` overrides it)
PRESETS_ENV = "LORA_REGISTRY_PRESETS"

# Registration order sets precedence: pluggy calls the last registered first, and trylast
# implementations after all others. generic and declarative are trylast; the architecture
# plugins come next; third-party plugins, registered last, are asked first. Among trylast
# implementations pluggy calls the first registered last, so generic is registered after declarative.
BUILTIN_PLUGINS = ("declarative", "generic", "llama", "mistral", "phi")


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or that failed when asked."""

    plugin: str
    error: str


@dataclass
class Answer:
    """Which plugin classified a model, its roles, and what went wrong on the way."""

    plugin: str
    roles: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)
    #: why each leaf the plugin explicitly left without a role has none (``Null(reason)`` answers)
    null_reasons: dict[str, str] = field(default_factory=dict)


def get_plugin_manager(*, builtins: Iterable[str] | None = None, entry_points: bool = True) -> pluggy.PluginManager:
    """Build a plugin manager: hookspecs, the built-in plugins, then third-party entry points.

    ``builtins`` limits the built-in plugins registered (all by default); ``entry_points=False``
    skips third-party discovery, so a test can build a manager with exactly what it needs.
    Plugins named in ``$LORA_REGISTRY_DISABLE_PLUGINS`` are skipped; plugins that fail to import
    are recorded in ``pm.lora_registry_failures`` and reported, and the rest keep working.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.lora_registry_failures = []  # type: ignore[attr-defined]
    pm.lora_registry_sources = {}  # type: ignore[attr-defined]
    disabled = disabled_plugins()
    for name in BUILTIN_PLUGINS if builtins is None else builtins:
        if name in disabled:
            continue
        module = importlib.import_module(f"lora_registry.plugins.{name}")
        pm.register(module, name=name)
        pm.lora_registry_sources[name] = ("lora-registry", _own_version())
    if entry_points:
        _load_entry_points(pm, disabled)
    pm.check_pending()
    return pm


def disabled_plugins() -> set[str]:
    """Plugin names listed in ``$LORA_REGISTRY_DISABLE_PLUGINS``."""
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def strict_plugins() -> bool:
    """True when ``$LORA_REGISTRY_STRICT_PLUGINS`` asks for plugin failures to be fatal."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def classify(pm, *, model_type, config, leaves, model, registry, forced: str | None = None) -> Answer:
    """Ask plugins in precedence order; the first valid, non-``None`` answer wins.

    A plugin that raises or answers garbage is named in a warning and skipped (fatal under
    ``$LORA_REGISTRY_STRICT_PLUGINS``). ``forced`` asks only the plugin of that name.
    """
    impls = list(reversed(pm.hook.lora_registry_classify.get_hookimpls()))
    if forced is not None:
        impls = [impl for impl in impls if impl.plugin_name == forced]
        if not impls:
            names = ", ".join(sorted(name for name, _ in pm.list_name_plugin()))
            raise PluginError(f"no plugin named {forced!r} answers classification; installed: {names}")
    kwargs = {"model_type": model_type, "config": config, "leaves": leaves, "model": model, "registry": registry}
    leaf_names = {leaf.name for leaf in leaves}
    notes: list[str] = []
    for impl in impls:
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            if result is None:
                continue
            roles, reasons = validate_answer(impl.plugin_name, result, leaf_names, registry)
        except Exception as exc:  # isolation: one plugin must not take the others down
            if strict_plugins() or forced is not None:
                if isinstance(exc, PluginError):
                    raise
                raise PluginError(f"plugin {impl.plugin_name!r} failed: {exc.__class__.__name__}: {exc}") from exc
            message = exc.args[0] if isinstance(exc, PluginError) else (
                f"plugin {impl.plugin_name!r} failed and was skipped: {exc.__class__.__name__}: {exc}"
            )
            notes.append(message)
            _record_failure(pm, impl.plugin_name, message)
            continue
        return Answer(impl.plugin_name, {leaf.name: roles.get(leaf.name) for leaf in leaves}, notes, reasons)
    if forced is not None:
        raise PluginError(f"plugin {forced!r} does not understand model_type {model_type!r}")
    return Answer("none", {leaf.name: None for leaf in leaves}, notes)


def validate_answer(
    plugin: str, result: Any, leaf_names: set[str], registry: Registry
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Check a plugin's answer (existing leaf names, known roles, one role per leaf).

    Returns the roles and, for ``Null(reason)`` answers, the reasons.
    """
    if isinstance(result, Mapping):
        pairs = list(result.items())
    else:
        try:
            pairs = [tuple(item) for item in result]
        except TypeError:
            raise PluginError(f"plugin {plugin!r} answered {type(result).__name__}, not a mapping of leaf -> role") from None
    roles: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise PluginError(f"plugin {plugin!r} answered an entry that is not a (leaf, role) pair: {pair!r}")
        name, role = pair
        if isinstance(role, hookspecs.Null):
            reasons[name] = str(role.reason)
            role = None
        if name not in leaf_names:
            raise PluginError(f"plugin {plugin!r} named {name!r}, which is not a targetable leaf of this model")
        if role is not None and role not in registry.roles:
            raise PluginError(f"plugin {plugin!r} gave {name!r} the unknown role {role!r}")
        if name in roles and roles[name] != role:
            raise PluginError(f"plugin {plugin!r} gave {name!r} two roles: {roles[name]!r} and {role!r}")
        roles[name] = role
    return roles, reasons


def plugin_registry(pm, user_file: str | os.PathLike | None = None) -> tuple[Registry, list[str]]:
    """The built-in registry merged with every plugin's ``registry.toml`` fragment, then the user's own file.

    ``user_file`` (default: ``$LORA_REGISTRY_PRESETS``) is a TOML file of ``[presets.*]`` (and
    ``[architectures.*]``) tables; it wins over everything else. Its errors are the user's and fatal.
    """
    registry = load_registry()
    notes: list[str] = []
    # get_hookimpls() lists the lowest precedence first, so a higher-precedence fragment overrides.
    for impl in pm.hook.lora_registry_registry_fragment.get_hookimpls():
        try:
            fragment = impl.function()
            if fragment is None:
                continue
            if isinstance(fragment, str):
                from .registry import tomllib

                fragment = tomllib.loads(fragment)
            if not isinstance(fragment, Mapping):
                raise RegistryError(f"fragment is {type(fragment).__name__}, not a table")
            registry = registry.merged(fragment, f"plugin {impl.plugin_name!r}")
        except Exception as exc:
            if strict_plugins():
                raise RegistryError(f"plugin {impl.plugin_name!r}: bad registry fragment: {exc}") from exc
            message = f"plugin {impl.plugin_name!r} registry fragment ignored: {exc}"
            notes.append(message)
            _record_failure(pm, impl.plugin_name, message)
    user_file = user_file or os.environ.get(PRESETS_ENV) or None
    if user_file:
        registry = registry.merged(_read_toml(user_file), str(user_file))
    return registry, notes


def _read_toml(path: str | os.PathLike) -> dict:
    from .registry import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read presets file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: invalid TOML: {exc}") from None


def model_types_by_plugin(pm) -> dict[str, list[str]]:
    """``{plugin name: [model types it names]}``, failures recorded and skipped."""
    out: dict[str, list[str]] = {}
    for impl in reversed(pm.hook.lora_registry_model_types.get_hookimpls()):
        try:
            types = impl.function()
            out[impl.plugin_name] = sorted(str(t) for t in (types or []))
        except Exception as exc:
            _record_failure(pm, impl.plugin_name, f"lora_registry_model_types failed: {exc}")
            out[impl.plugin_name] = []
    return out


def answering_plugins(pm, registry: Registry) -> dict[str, dict[str, Any]]:
    """Per model type any plugin or registry entry names: which plugin answers it, and why.

    ``{model_type: {"plugin", "why", "also"}}``, where ``also`` lists lower-precedence plugins
    that name it too. Model types nobody names go to the generic fallback.
    """
    order = precedence(pm)
    named = model_types_by_plugin(pm)
    declared: dict[str, list[str]] = {}
    for plugin, types in named.items():
        for model_type in types:
            if model_type != "*":
                declared.setdefault(model_type, []).append(plugin)
    for model_type, entry in registry.architectures.items():
        if "declarative" in order:
            declared.setdefault(model_type, []).append("declarative")
    out: dict[str, dict[str, Any]] = {}
    for model_type in sorted(declared):
        plugins = sorted(set(declared[model_type]), key=lambda p: order.index(p) if p in order else len(order))
        first = plugins[0]
        entry = registry.architectures.get(model_type)
        if first == "declarative":
            source = entry.source if entry else "registry.toml"
            source = "lora-registry's registry.toml" if source.endswith("registry.toml") else source
            why = f"[architectures.{model_type}] entry in {source}, used when the model has every role it lists"
        elif first in BUILTIN_PLUGINS:
            why = "built-in plugin: checks every name and shape against the config, else the next plugin answers"
        else:
            package = getattr(pm, "lora_registry_sources", {}).get(first, ("?", "?"))[0]
            why = f"third-party plugin from {package}: installed plugins are asked first"
        out[model_type] = {"plugin": first, "why": why, "also": plugins[1:]}
    return out


def precedence(pm) -> list[str]:
    """Plugin names in the order they are asked to classify a model."""
    return [impl.plugin_name for impl in reversed(pm.hook.lora_registry_classify.get_hookimpls())]


def _load_entry_points(pm, disabled: set[str]) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or pm.get_plugin(ep.name) is not None:
            continue
        dist = getattr(ep, "dist", None)
        source = (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            if strict_plugins():
                raise PluginError(f"plugin {ep.name!r} ({source[0]}) failed to load: {exc}") from exc
            message = f"plugin {ep.name!r} ({source[0]}) failed to load and was skipped: {exc.__class__.__name__}: {exc}"
            _record_failure(pm, ep.name, message)
            print(f"warning: {message}", file=sys.stderr)
            continue
        pm.lora_registry_sources[ep.name] = source


def _record_failure(pm, plugin: str, message: str) -> None:
    failures = getattr(pm, "lora_registry_failures", None)
    if failures is not None and not any(f.plugin == plugin and f.error == message for f in failures):
        failures.append(PluginFailure(plugin, message))


@functools.cache
def _own_version() -> str:
    # once per process: each lookup scans sys.path for the distribution, and every built-in asks
    try:
        from importlib.metadata import version

        return version("lora-registry")
    except Exception:
        return "dev"
