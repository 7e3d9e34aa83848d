"""The plugin host: one object owns the pluggy manager, the plugins' failures and sources, and the merged registry.

Callers never touch ``pm.hook``: each hook has one typed method here, and every method asks the
plugins through the same isolation loop (``_ask``): a plugin that raises or answers garbage is
recorded as a failure and named in a warning, and the rest keep working; ``None`` or
``Decline(reason)`` is a quiet "not mine". ``$LORA_REGISTRY_STRICT_PLUGINS=1`` makes failures
fatal, ``$LORA_REGISTRY_DISABLE_PLUGINS=a,b`` blocks plugins (pluggy's blocking), and
``$LORA_REGISTRY_TRACE_PLUGINS=1`` writes every hook call and its outcome to stderr.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import ModelLoadError, PluginError, RegistryError
from .hookspecs import Decline, Null
from .registry import Registry, load_registry, read_toml

if TYPE_CHECKING:  # pragma: no cover
    from .tree import Leaf, ModuleTree

ENTRY_POINT_GROUP = "lora_registry"
#: Comma list of plugin names to block (built-in or third-party).
DISABLE_ENV = "LORA_REGISTRY_DISABLE_PLUGINS"
#: Set to 1 to make any plugin failure fatal instead of a warning (for plugin authors).
STRICT_ENV = "LORA_REGISTRY_STRICT_PLUGINS"
#: Set to 1 to trace every hook call on stderr (for plugin authors).
TRACE_ENV = "LORA_REGISTRY_TRACE_PLUGINS"
#: a TOML file of the user's own presets (and architecture entries), merged last (``--presets FILE`` overrides it)
PRESETS_ENV = "LORA_REGISTRY_PRESETS"

# Registration order sets precedence: pluggy calls the last registered first, and trylast
# implementations after all others. generic and declarative are trylast; the architecture
# plugins come next; third-party plugins, registered last, are asked first. Among trylast
# implementations pluggy calls the first registered last, so generic is registered after declarative.
BUILTIN_PLUGINS = ("declarative", "generic", "falcon", "gemma", "gpt2", "olmo", "qwen", "llama", "mistral", "phi")


class PluginWarning(UserWarning):
    """A plugin failed and was skipped (the warning names it and says what went wrong)."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or that failed when asked."""

    plugin: str
    error: str


@dataclass(frozen=True)
class Answer:
    """Which plugin classified a model, its roles, and what happened on the way."""

    plugin: str
    roles: dict[str, str | None]
    #: why each leaf the plugin explicitly left without a role has none (``Null(reason)`` answers)
    null_reasons: dict[str, str] = field(default_factory=dict)
    #: plugins that failed while being asked (one line each)
    warnings: tuple[str, ...] = ()
    #: plugins that declined with a reason (``Decline``), ``{plugin: reason}``
    declines: dict[str, str] = field(default_factory=dict)


class NeedsModule(Exception):
    """Raised on the fast path when a plugin that takes the module would be asked: build the model instead."""


class PluginHost:
    """The plugins lora-registry asks, their failures and sources, and the registry they add up to.

    Build it with ``get_plugin_host()``. ``registry`` is merged once: the built-in ``registry.toml``,
    every plugin's fragment (lowest precedence first), then the user's presets file.
    """

    def __init__(self, pm: pluggy.PluginManager, presets: str | os.PathLike[str] | None = None) -> None:
        self.pm = pm
        self.failures: list[PluginFailure] = []
        self.sources: dict[str, tuple[str, str]] = {}
        self.presets_file = os.fspath(presets) if presets else (os.environ.get(PRESETS_ENV) or None)
        self._registry: tuple[Registry, tuple[str, ...]] | None = None
        self._trace = os.environ.get(TRACE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}

    # ------------------------------------------------------------------ plugins
    def register(self, plugin: object, name: str, source: tuple[str, str] = ("?", "?")) -> None:
        """Register ``plugin`` under ``name`` (tests and embedding applications); the registry is re-merged.

        A blocked name (``$LORA_REGISTRY_DISABLE_PLUGINS``) registers nothing, as in pluggy.
        """
        if self.pm.register(plugin, name=name) is None:
            return
        self.sources.setdefault(name, source)
        self._registry = None

    def get_plugin(self, name: str) -> object | None:
        """The registered plugin called ``name``, or ``None``."""
        return self.pm.get_plugin(name)

    def plugin_names(self) -> list[str]:
        """Every registered plugin, classification order first, then the plugins that do not classify."""
        order = self.precedence()
        return order + [name for name, plugin in self.pm.list_name_plugin() if plugin is not None and name not in order]

    def hooks_of(self, name: str) -> list[str]:
        """The hooks plugin ``name`` implements."""
        plugin = self.pm.get_plugin(name)
        return sorted(h.name for h in (self.pm.get_hookcallers(plugin) or [])) if plugin is not None else []

    def precedence(self) -> list[str]:
        """Plugin names in the order they are asked to classify a model."""
        return [impl.plugin_name for impl in reversed(self.pm.hook.lora_registry_classify.get_hookimpls())]

    # ------------------------------------------------------------------ the registry
    @property
    def registry(self) -> Registry:
        """The built-in registry, merged with every plugin's fragment and the user's presets file (once)."""
        return self._merged()[0]

    @property
    def registry_warnings(self) -> tuple[str, ...]:
        """One line per plugin fragment that was ignored."""
        return self._merged()[1]

    def _merged(self) -> tuple[Registry, tuple[str, ...]]:
        if self._registry is None:
            registry = load_registry()
            notes: list[str] = []
            # get_hookimpls() lists the lowest precedence first, so a higher-precedence fragment overrides.
            for impl in self.pm.hook.lora_registry_registry_fragment.get_hookimpls():
                try:
                    fragment = self._call(impl, {})
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
                    message = f"plugin {impl.plugin_name!r} registry fragment ignored: {_one_line(exc)}"
                    notes.append(message)
                    self._fail(impl.plugin_name, message)
            if self.presets_file:  # the user's own file: its errors are the user's, and fatal
                registry = registry.merged(read_toml(self.presets_file), str(self.presets_file))
            self._registry = (registry, tuple(notes))
        return self._registry

    # ------------------------------------------------------------------ typed hooks
    def model_types(self) -> dict[str, list[str]]:
        """``{plugin name: [model types it names]}``; failures recorded and skipped."""
        out: dict[str, list[str]] = {}
        for impl, result in self._ask("lora_registry_model_types", {"registry": self.registry}):
            if isinstance(result, BaseException):
                out[impl.plugin_name] = []
                continue
            try:
                out[impl.plugin_name] = sorted(str(t) for t in (result or []))
            except TypeError:
                self._fail(impl.plugin_name, "lora_registry_model_types answered something that is not a list")
                out[impl.plugin_name] = []
        return out

    def build_model(self, model_type: str, config: Mapping[str, Any], label: str) -> tuple[Any, str] | None:
        """``(module, plugin)`` from the first plugin that builds ``model_type`` on the meta device, or ``None``.

        A plugin that fails here is named in a ``ModelLoadError``: it is the only way to build that model.
        """
        import torch

        from .loading import quiet

        for impl in reversed(self.pm.hook.lora_registry_build_model.get_hookimpls()):
            try:
                with quiet(), torch.device("meta"):
                    model = self._call(impl, {"model_type": model_type, "config": config})
            except Exception as exc:
                raise ModelLoadError(
                    f"{label}: plugin {impl.plugin_name!r} failed to build {model_type!r}: {_one_line(exc)}"
                ) from None
            if model is None or isinstance(model, Decline):
                continue
            if not isinstance(model, torch.nn.Module):
                raise ModelLoadError(
                    f"{label}: plugin {impl.plugin_name!r} built a {type(model).__name__}, not a torch.nn.Module"
                )
            return model, impl.plugin_name
        return None

    def module_tree(self, model_type: str, config: Mapping[str, Any]) -> tuple[ModuleTree, str] | None:
        """``(tree, plugin)`` from the first plugin that models this ``config.json`` without building it, or ``None``."""
        from .tree import ModuleTree

        for impl, result in self._ask("lora_registry_module_tree", {"model_type": model_type, "config": config}):
            if result is None or isinstance(result, (Decline, BaseException)):
                continue
            if not isinstance(result, ModuleTree):
                self._fail(
                    impl.plugin_name, f"lora_registry_module_tree answered {type(result).__name__}, not a ModuleTree"
                )
                continue
            return result, impl.plugin_name
        return None

    def classify(
        self,
        *,
        model_type: str,
        config: Any,
        leaves: list[Leaf],
        model: Any,
        tree: ModuleTree,
        forced: str | None = None,
        fast: bool = False,
    ) -> Answer:
        """Ask plugins in precedence order; the first valid answer that is not ``None`` or ``Decline`` wins.

        A plugin that raises or answers garbage is named in a warning and skipped (fatal under
        ``$LORA_REGISTRY_STRICT_PLUGINS``, or when ``forced`` names it). ``forced`` asks only that
        plugin. With ``fast`` (no module: the map comes from a tree), reaching a plugin that takes
        the ``model`` argument raises ``NeedsModule`` so the caller builds the model instead.
        """
        registry = self.registry
        impls = list(reversed(self.pm.hook.lora_registry_classify.get_hookimpls()))
        if forced is not None:
            impls = [impl for impl in impls if impl.plugin_name == forced]
            if not impls:
                names = ", ".join(sorted(self.plugin_names()))
                raise PluginError(f"no plugin named {forced!r} answers classification; installed: {names}")
        kwargs = {
            "model_type": model_type,
            "config": config,
            "leaves": leaves,
            "model": model,
            "registry": registry,
            "tree": tree,
        }
        leaf_names = {leaf.name for leaf in leaves}
        notes: list[str] = []
        declines: dict[str, str] = {}
        for impl in impls:
            if fast and "model" in impl.argnames:
                raise NeedsModule(impl.plugin_name)
            try:
                result = self._call(impl, kwargs)
                if result is None:
                    continue
                if isinstance(result, Decline):
                    declines[impl.plugin_name] = str(result.reason)
                    continue
                roles, reasons = validate_answer(impl.plugin_name, result, leaf_names, registry)
            except Exception as exc:  # isolation: one plugin must not take the others down
                if fast:
                    raise NeedsModule(impl.plugin_name) from exc  # it may answer once it sees the module
                if strict_plugins() or forced is not None:
                    if isinstance(exc, PluginError):
                        raise
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} failed: {exc.__class__.__name__}: {_one_line(exc)}"
                    ) from exc
                message = (
                    exc.args[0]
                    if isinstance(exc, PluginError)
                    else (
                        f"plugin {impl.plugin_name!r} failed and was skipped: {exc.__class__.__name__}: {_one_line(exc)}"
                    )
                )
                notes.append(message)
                self._fail(impl.plugin_name, message)
                continue
            return Answer(
                impl.plugin_name, {leaf.name: roles.get(leaf.name) for leaf in leaves}, reasons, tuple(notes), declines
            )
        if forced is not None:
            why = f": {declines[forced]}" if forced in declines else ""
            raise PluginError(f"plugin {forced!r} does not understand model_type {model_type!r}{why}")
        return Answer("none", {leaf.name: None for leaf in leaves}, {}, tuple(notes), declines)

    # ------------------------------------------------------------------ who answers what
    def answers(self) -> dict[str, dict[str, Any]]:
        """Per model type any classifying plugin or registry entry names: which plugin answers it, and why.

        ``{model_type: {"plugin", "why", "also"}}``, where ``also`` lists lower-precedence plugins
        that name it too. Model types nobody names go to the generic fallback.
        """
        order = self.precedence()
        declared: dict[str, list[str]] = {}
        for plugin, types in self.model_types().items():
            if plugin not in order:
                continue  # names model types for the fast path only (module trees), does not classify
            for model_type in types:
                if model_type != "*":
                    declared.setdefault(model_type, []).append(plugin)
        registry = self.registry
        if "declarative" in order:
            for model_type in registry.architectures:
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
                package = self.sources.get(first, ("?", "?"))[0]
                why = f"third-party plugin from {package}: installed plugins are asked first"
            out[model_type] = {"plugin": first, "why": why, "also": plugins[1:]}
        return out

    def fingerprint(self) -> str:
        """A digest of what the plugins contribute: their names, packages and versions, and the merged registry."""
        parts = [[name, *self.sources.get(name, ("?", "?"))] for name in sorted(self.plugin_names())]
        return hashlib.sha256(json.dumps([parts, self.registry.digest()], sort_keys=True).encode()).hexdigest()

    # ------------------------------------------------------------------ the isolation loop
    def _ask(self, hook: str, kwargs: Mapping[str, Any]) -> Iterator[tuple[Any, Any]]:
        """Call every implementation of ``hook``, highest precedence first; yield ``(impl, result or exception)``."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                result = self._call(impl, kwargs)
            except Exception as exc:
                if strict_plugins():
                    raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {_one_line(exc)}") from exc
                self._fail(impl.plugin_name, f"{hook} failed: {exc.__class__.__name__}: {_one_line(exc)}")
                yield impl, exc
                continue
            yield impl, result

    def _call(self, impl: Any, kwargs: Mapping[str, Any]) -> Any:
        """Call one implementation with the arguments it names (keyword arguments only)."""
        args = {arg: kwargs[arg] for arg in impl.argnames if arg in kwargs}
        if not self._trace:
            return impl.function(**args)
        name = impl.function.__name__
        try:
            result = impl.function(**args)
        except Exception as exc:
            print(
                f"[lora-registry] {impl.plugin_name}.{name}({', '.join(args)}) raised {exc.__class__.__name__}: {exc}",
                file=sys.stderr,
            )
            raise
        shown = type(result).__name__ if not isinstance(result, (str, int, type(None), Decline)) else repr(result)
        print(f"[lora-registry] {impl.plugin_name}.{name}({', '.join(args)}) -> {shown}", file=sys.stderr)
        return result

    def _fail(self, plugin: str, message: str) -> None:
        failure = PluginFailure(plugin, message)
        if failure not in self.failures:
            self.failures.append(failure)


def get_plugin_host(
    *,
    builtins: Iterable[str] | None = None,
    entry_points: bool = True,
    presets: str | os.PathLike[str] | None = None,
) -> PluginHost:
    """Build a plugin host: hookspecs, the built-in plugins, then third-party entry points.

    ``builtins`` limits the built-in plugins registered (all by default); ``entry_points=False``
    skips third-party discovery, so a test can build a host with exactly what it needs.
    ``presets`` is the user's TOML file of presets and architecture entries (default:
    ``$LORA_REGISTRY_PRESETS``). Plugins named in ``$LORA_REGISTRY_DISABLE_PLUGINS`` are blocked;
    a plugin that fails to import is recorded in ``failures``, warned about, and the rest keep working.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm, presets)
    for name in disabled_plugins():
        pm.set_blocked(name)
    for name in BUILTIN_PLUGINS if builtins is None else builtins:
        if pm.is_blocked(name):
            continue
        module = importlib.import_module(f"lora_registry.plugins.{name}")
        pm.register(module, name=name)
        host.sources[name] = ("lora-registry", own_version())
    if entry_points:
        _load_entry_points(host)
    pm.check_pending()
    return host


#: The name the README and earlier versions use; it returns the host.
get_plugin_manager = get_plugin_host


def as_host(plugins: PluginHost | pluggy.PluginManager | None) -> PluginHost:
    """A ``PluginHost`` for what a caller passed as ``plugin_manager=`` (a host, a bare pluggy manager, or nothing)."""
    if plugins is None:
        return get_plugin_host()
    if isinstance(plugins, PluginHost):
        return plugins
    if isinstance(plugins, pluggy.PluginManager):
        host = PluginHost(plugins)
        for name, _ in plugins.list_name_plugin():
            host.sources[name] = ("lora-registry", own_version()) if name in BUILTIN_PLUGINS else ("?", "?")
        return host
    raise PluginError(
        f"plugin_manager must be a PluginHost (lora_registry.get_plugin_host()), not {type(plugins).__name__}"
    )


def disabled_plugins() -> set[str]:
    """Plugin names listed in ``$LORA_REGISTRY_DISABLE_PLUGINS``."""
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def strict_plugins() -> bool:
    """True when ``$LORA_REGISTRY_STRICT_PLUGINS`` asks for plugin failures to be fatal."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def validate_answer(
    plugin: str, result: Any, leaf_names: set[str], registry: Registry
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Check a plugin's classification (existing leaf names, known roles, one role per leaf).

    Returns the roles and, for ``Null(reason)`` answers, the reasons.
    """
    if isinstance(result, Mapping):
        pairs = list(result.items())
    else:
        try:
            pairs = [tuple(item) for item in result]
        except TypeError:
            raise PluginError(
                f"plugin {plugin!r} answered {type(result).__name__}, not a mapping of leaf -> role"
            ) from None
    roles: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise PluginError(f"plugin {plugin!r} answered an entry that is not a (leaf, role) pair: {pair!r}")
        name, role = pair
        if isinstance(role, Null):
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


def _load_entry_points(host: PluginHost) -> None:
    from importlib.metadata import entry_points

    pm = host.pm
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        dist = getattr(ep, "dist", None)
        source = (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            if strict_plugins():
                raise PluginError(f"plugin {ep.name!r} ({source[0]}) failed to load: {exc}") from exc
            message = f"plugin {ep.name!r} ({source[0]}) failed to load and was skipped: {exc.__class__.__name__}: {_one_line(exc)}"
            host._fail(ep.name, message)
            warnings.warn(message, PluginWarning, stacklevel=2)
            continue
        host.sources[ep.name] = source


@functools.cache
def own_version() -> str:
    """lora-registry's installed version (looked up once per process)."""
    try:
        from importlib.metadata import version

        return version("lora-registry")
    except Exception:
        return "dev"


def package_digest() -> str:
    """A digest of lora-registry's own files (names, sizes, times): a development change invalidates caches.

    Covers the package, its plugins and the built-in registry.toml wherever they are: an editable
    install keeps them in three places (``core/``, ``plugins/``, the project's top).
    """
    from importlib.util import find_spec

    from .registry import builtin_registry_path

    spec = find_spec("lora_registry.plugins")
    plugins = list(spec.submodule_search_locations or []) if spec is not None else []
    return _package_digest((str(Path(__file__).resolve().parent), *plugins, str(builtin_registry_path())))


@functools.cache
def _package_digest(paths: tuple[str, ...]) -> str:
    entries = set()
    for path in paths:
        found = [("", path)] if os.path.isfile(path) else []
        for root, _, files in os.walk(path):
            found.extend((root, name) for name in files if name.endswith((".py", ".toml")))
        for root, name in found:
            full = os.path.join(root, name)
            stat = os.stat(full)
            entries.add(f"{os.path.realpath(full)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."
