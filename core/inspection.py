"""``inspect``: every LoRA-targetable leaf of a model, with its role, shape, layer and scope.

The flow: MODEL -> a module tree (from ``config.json`` through a plugin's ``lora_registry_module_tree``
hook: the fast path; or from the model built on the meta device) -> the plugins' classification
-> a ``ModelMap``, complete plain data whichever path made it, cached on disk where asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .registry import Registry
from .tree import Leaf, ModuleTree

if TYPE_CHECKING:  # pragma: no cover
    import pluggy
    import torch
    from transformers import PretrainedConfig

    from .host import PluginHost
    from .loading import ConfigSource

    #: MODEL as ``inspect`` and ``resolve`` take it: a model_type, a path or hub id, a config, or a built module
    ModelInput = str | os.PathLike[str] | PretrainedConfig | torch.nn.Module
    #: ``plugin_manager=``: a host (``get_plugin_host()``), a bare pluggy manager, or ``None`` for every plugin
    PluginManagerArg = PluginHost | pluggy.PluginManager | None
    #: a value of ``ModelMap.config``
    ConfigValue = int | float | str | bool | None

__all__ = ["Leaf", "ModelHandle", "ModelMap", "fast_map", "inspect", "verify_model_map"]

#: The architecture sizes a ``ModelMap`` keeps from the config (as transformers names them; text config of a VLM).
CONFIG_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
)
_MAP_FORMAT = 1  # bumped when the serialised form changes


class ModelHandle:
    """The ``nn.Module`` behind a map: the one given or built, or a way to build it when first asked.

    Only ``explain`` and PEFT checks need the module; a map from the fast path or the cache builds it
    on the meta device the first time ``module`` is read.
    """

    def __init__(
        self,
        module: torch.nn.Module | None = None,
        build: Callable[[], torch.nn.Module] | None = None,
        recipe: Callable[[], Any] | None = None,
    ) -> None:
        self._module = module
        self._build = build
        self._recipe = recipe

    @property
    def built(self) -> bool:
        """True when the module exists already."""
        return self._module is not None

    def module(self) -> torch.nn.Module | None:
        """The module (built now if it was not); ``None`` when there is none and no way to build it."""
        if self._module is None and self._build is not None:
            self._module = self._build()
        return self._module

    def recipe(self) -> Any:
        """How to build the model afresh (``loading.ModelRecipe``, read now), or ``None`` when unknown."""
        return self._recipe() if self._recipe is not None else None


@dataclass(frozen=True)
class ModelMap:
    """The result of ``inspect``: every targetable leaf and the role the answering plugin gave it.

    Plain data: the same whether it came from ``config.json`` alone, the built model or the cache.
    ``tree`` holds every module and parameter (names, classes, shapes); ``config`` the architecture
    sizes (``CONFIG_KEYS``); ``declines`` the plugins that said "not mine" and why. ``module`` is a
    handle to the ``nn.Module`` (built on first use where the map came from the fast path or cache).
    """

    model: str
    model_type: str
    plugin: str
    leaves: tuple[Leaf, ...]
    roles: Mapping[str, str | None]
    tree: ModuleTree = field(repr=False)
    warnings: tuple[str, ...] = ()
    base_parameters: int = 0
    #: why a leaf has no role, where the answering plugin said (``Null(reason)``)
    null_reasons: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, ConfigValue] = field(default_factory=dict, repr=False)
    declines: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: ``{adapter: target_parameters}`` of the adapters a given PEFT model already has: a further adapter must use the same
    peft_target_parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    registry: Registry | None = field(default=None, compare=False, repr=False)
    handle: ModelHandle | None = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ the module, when needed
    @property
    def module(self) -> torch.nn.Module:
        """The ``nn.Module`` (meta device), built now if this map came from the fast path or the cache.

        ``ModelLoadError`` for a map read back (``from_json``) without a way to build its model.
        """
        module = self.handle.module() if self.handle is not None else None
        if module is None:
            from .errors import ModelLoadError

            raise ModelLoadError(f"{self.model}: this map has no module and no way to build it")
        return module

    def recipe(self) -> Any:
        """How to build this model afresh on the meta device (``loading.ModelRecipe``), or ``None`` for a map without a model.

        The memory simulation (``AdapterPlan.memory``) builds from it, at a few depths.
        """
        return self.handle.recipe() if self.handle is not None else None

    @property
    def all_module_names(self) -> tuple[str, ...]:
        """Every module name, ``named_modules()`` order (the bare model's names)."""
        return self.tree.module_names()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Every parameter name, ``named_parameters()`` order (the bare model's names)."""
        return self.tree.parameter_names()

    # ------------------------------------------------------------------ queries
    def leaves_with_role(self, role: str, scopes: tuple[str, ...] = ("language",)) -> list[Leaf]:
        """Leaves of ``role`` within ``scopes``, in model order."""
        return [leaf for leaf in self.leaves if self.roles.get(leaf.name) == role and leaf.scope in scopes]

    def present_roles(self, scopes: tuple[str, ...] = ("language",)) -> list[str]:
        """Roles that at least one leaf in ``scopes`` has, in vocabulary order."""
        found = {self.roles.get(leaf.name) for leaf in self.leaves if leaf.scope in scopes}
        return [role for role in self.vocabulary.roles if role in found]

    @property
    def vocabulary(self) -> Registry:
        """The registry this map was classified with (the built-in one for a map read back from JSON)."""
        if self.registry is not None:
            return self.registry
        from .registry import load_registry

        return load_registry()

    def parameter_totals(self) -> dict[str, int]:
        """Base-model parameters held by the leaves of each role (``null`` for leaves with no role).

        A tied weight (an LM head sharing the input embedding's) is counted once, where it is first
        held, so the totals never add up to more than ``base_parameters``.
        """
        totals: dict[str, int] = {}
        for leaf in self.leaves:
            key = self.roles.get(leaf.name) or "null"
            weight = leaf.name + ".weight" if leaf.kind == "module" else leaf.name
            totals[key] = totals.get(key, 0) + (0 if weight in self.tree.tied else leaf.numel)
        return totals

    def to_dict(self) -> dict[str, Any]:
        """``{"model", "model_type", "plugin", "modules": [...]}`` as documented in the README."""
        return {
            "model": self.model,
            "model_type": self.model_type,
            "plugin": self.plugin,
            "modules": [leaf.to_dict(self.roles.get(leaf.name)) for leaf in self.leaves],
        }

    # ------------------------------------------------------------------ serialisation (the cache)
    def to_json(self) -> dict[str, Any]:
        """Everything but the label, registry and module handle, JSON-ready (``from_json`` reads it back)."""
        return {
            "format": _MAP_FORMAT,
            "model_type": self.model_type,
            "plugin": self.plugin,
            "roles": [self.roles.get(leaf.name) for leaf in self.leaves],
            "null_reasons": dict(self.null_reasons),
            "warnings": list(self.warnings),
            "base_parameters": self.base_parameters,
            "config": dict(self.config),
            "declines": dict(self.declines),
            "peft_target_parameters": {k: list(v) for k, v in self.peft_target_parameters.items()},
            "tree": self.tree.to_dict(),
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, model: str, registry: Registry, handle: ModelHandle | None = None
    ) -> ModelMap:
        """Read ``to_json()``'s form back; the leaves are derived from the tree again (one rule)."""
        if data.get("format") != _MAP_FORMAT:
            raise ValueError("another map format")
        tree = ModuleTree.from_dict(data["tree"])
        leaves = tuple(tree.leaves(registry))
        roles = data["roles"]
        if len(roles) != len(leaves):
            raise ValueError("roles do not match the leaves")
        return cls(
            model=model,
            model_type=data["model_type"],
            plugin=data["plugin"],
            leaves=leaves,
            roles={leaf.name: role for leaf, role in zip(leaves, roles)},
            tree=tree,
            warnings=tuple(data["warnings"]),
            base_parameters=int(data["base_parameters"]),
            null_reasons=dict(data["null_reasons"]),
            config=dict(data["config"]),
            declines=dict(data["declines"]),
            peft_target_parameters={k: tuple(v) for k, v in data.get("peft_target_parameters", {}).items()},
            registry=registry,
            handle=handle,
        )


def inspect(
    model: ModelInput | ModelMap,
    *,
    trust_remote_code: bool = False,
    plugin_manager: PluginManagerArg = None,
    plugin: str | None = None,
    fast: bool = False,
    cache: bool = False,
    revision: str | None = None,
) -> ModelMap:
    """Map every LoRA-targetable leaf of MODEL onto its role.

    MODEL is anything ``load_model`` accepts: a model_type, a ``config.json`` path or its folder,
    a hub id (``owner/name``, optionally ``@revision``; ``revision=`` does the same), a
    ``PretrainedConfig`` or a built ``nn.Module`` (PEFT-wrapped too). ``plugin_manager`` is a ``PluginHost`` (default: ``get_plugin_host()``);
    ``plugin`` forces one plugin by name.

    ``fast=True`` answers from ``config.json`` alone where a plugin describes the model's tree
    (no torch, no transformers); ``cache=True`` reads and writes the on-disk cache
    (``lora_registry.cache``). Both only apply to a path, hub id or model_type.
    """
    from .host import as_host

    host = as_host(plugin_manager)
    if isinstance(model, ModelMap):
        return model
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if revision is not None:
        from .hub import with_revision

        model = with_revision(model, revision)  # owner/name@REV: every step reads it from the id
    key = None
    if isinstance(model, str) and (fast or cache):
        from . import cache as disk
        from .loading import read_source

        source = read_source(model)
        if source is not None:
            if cache and disk.enabled():
                key = disk.map_key(source, host, plugin=plugin, trust_remote_code=trust_remote_code)
                found = disk.load_map(
                    key,
                    model=source.label,
                    registry=host.registry,
                    handle=_lazy_handle(model, trust_remote_code, host),
                )
                if found is not None:
                    return found
            if fast:
                mapped = _from_source(source, host, plugin, trust_remote_code)
                if mapped is not None:
                    if key is not None:
                        disk.store_map(key, mapped)
                    return mapped
    from .loading import load_model

    loaded = load_model(model, trust_remote_code=trust_remote_code, plugin_manager=host)
    mapped = _from_module(loaded, host, plugin, _recipe_loader(model, trust_remote_code, host))
    if key is not None:
        from . import cache as disk

        disk.store_map(key, mapped)
    return mapped


def fast_map(
    model: str | os.PathLike[str],
    plugin_manager: PluginManagerArg = None,
    *,
    plugin: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> ModelMap | None:
    """The map from ``config.json`` alone (no cache), or ``None`` where no plugin models this config exactly."""
    from .host import as_host
    from .loading import read_source

    source = read_source(os.fspath(model), revision=revision)
    return _from_source(source, as_host(plugin_manager), plugin, trust_remote_code) if source is not None else None


def _from_source(
    source: ConfigSource, host: PluginHost, plugin: str | None, trust_remote_code: bool
) -> ModelMap | None:
    """The fast path for a source read without torch: ``None`` without config data, where no plugin's tree
    answers, or where a plugin that needs the module would be asked."""
    from .host import NeedsModule

    if source.data is None:
        return None
    try:
        return _from_tree(source.label, source.data, host, plugin, trust_remote_code)
    except NeedsModule:
        return None


# ----------------------------------------------------------------------------- the two paths
def _from_module(
    loaded: Any, host: PluginHost, plugin: str | None, recipe: Callable[[], Any] | None = None
) -> ModelMap:
    """The map of a built (or given) model."""
    tree = ModuleTree.from_module(loaded.held if loaded.held is not None else loaded.model)
    return _classified(
        loaded.label,
        loaded.model_type,
        loaded.config,
        tree,
        loaded.model,
        host,
        plugin,
        ModelHandle(loaded.model, recipe=recipe),
        list(loaded.warnings),
        peft_target_parameters=loaded.peft_target_parameters,
    )


def _from_tree(
    label: str,
    data: Mapping[str, Any],
    host: PluginHost,
    plugin: str | None,
    trust_remote_code: bool,
) -> ModelMap | None:
    """The map from ``config.json`` alone, where a plugin's ``lora_registry_module_tree`` answers; else ``None``."""
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        return None
    found = host.module_tree(model_type, data)
    if found is None:
        return None
    tree, _ = found
    config = ConfigView(model_type, tree.config)
    return _classified(
        label,
        model_type,
        config,
        tree,
        None,
        host,
        plugin,
        _lazy_handle(label, trust_remote_code, host),
        [],
        fast=True,
    )


def _classified(
    label: str,
    model_type: str,
    config: Any,
    tree: ModuleTree,
    model: Any,
    host: PluginHost,
    plugin: str | None,
    handle: ModelHandle,
    notes: list[str],
    fast: bool = False,
    peft_target_parameters: Mapping[str, tuple[str, ...]] | None = None,
) -> ModelMap:
    registry = host.registry
    leaves = tree.leaves(registry)
    answer = host.classify(
        model_type=model_type, config=config, leaves=leaves, model=model, tree=tree, forced=plugin, fast=fast
    )
    return ModelMap(
        model=label,
        model_type=model_type,
        plugin=answer.plugin,
        leaves=tuple(leaves),
        roles=answer.roles,
        tree=tree,
        warnings=tuple([*host.registry_warnings, *notes, *answer.warnings]),
        base_parameters=tree.parameter_count(),
        null_reasons=answer.null_reasons,
        config=config_summary(config),
        declines=answer.declines,
        peft_target_parameters=dict(peft_target_parameters or {}),
        registry=registry,
        handle=handle,
    )


def _lazy_handle(label: str, trust_remote_code: bool, host: PluginHost) -> ModelHandle:
    """A handle that builds ``label`` (a revision rides in the id, ``owner/name@REV``) when first asked."""

    def build() -> Any:
        from .loading import load_model

        return load_model(label, trust_remote_code=trust_remote_code, plugin_manager=host).model

    return ModelHandle(build=build, recipe=_recipe_loader(label, trust_remote_code, host))


def _recipe_loader(source: Any, trust_remote_code: bool, host: PluginHost) -> Callable[[], Any]:
    def recipe() -> Any:
        from .loading import load_recipe

        return load_recipe(source, trust_remote_code=trust_remote_code, plugin_manager=host)

    return recipe


class ConfigView:
    """The config values a plugin's module tree recorded, read as attributes (what classification sees on the fast path)."""

    def __init__(self, model_type: str, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)
        self.model_type = model_type

    def to_dict(self) -> dict[str, Any]:
        """The values as a dict."""
        return dict(self.__dict__)


def config_summary(config: Any) -> dict[str, ConfigValue]:
    """``CONFIG_KEYS`` of a config (the text config of a composite one), ``None`` where it has no such value."""
    if config is None:
        return {}
    text = config.get_text_config() if callable(getattr(config, "get_text_config", None)) else config
    out: dict[str, ConfigValue] = {"model_type": getattr(config, "model_type", None)}
    for key in CONFIG_KEYS:
        value = _attribute(text, key)
        if value is None and key == "tie_word_embeddings":
            value = _attribute(config, key)
        out[key] = value if isinstance(value, (int, float, str, bool)) or value is None else None
    return out


def _attribute(config: Any, key: str) -> Any:
    # transformers' per-layer configs (dots3_note) raise their own error for a global read of a per-layer value
    try:
        return getattr(config, key, None)
    except Exception:
        return None


# ----------------------------------------------------------------------------- --verify
def verify_model_map(fast: ModelMap, slow: ModelMap) -> None:
    """Check a fast-path (or cached) map against the one from the built model; ``ModelLoadError`` names the first difference."""
    from .errors import ModelLoadError

    def fail(what: str) -> None:
        raise ModelLoadError(
            f"{slow.model}: --verify: the fast path differs from the model transformers builds: {what}"
        )

    fast_leaves = {leaf.name: leaf for leaf in fast.leaves}
    slow_leaves = {leaf.name: leaf for leaf in slow.leaves}
    for name in slow_leaves:
        if name not in fast_leaves:
            fail(f"the model has {name!r}, the fast path does not")
    for name, leaf in fast_leaves.items():
        other = slow_leaves.get(name)
        if other is None:
            fail(f"the fast path has {name!r}, the model does not")
            continue
        for attr in ("kind", "lora_type", "shape", "layer", "scope"):
            if getattr(leaf, attr) != getattr(other, attr):
                fail(f"{name} {attr} is {getattr(other, attr)!r}, the fast path says {getattr(leaf, attr)!r}")
        if fast.roles.get(name) != slow.roles.get(name):
            fail(f"{name} has role {slow.roles.get(name)!r}, the fast path says {fast.roles.get(name)!r}")
    if [leaf.name for leaf in fast.leaves] != [leaf.name for leaf in slow.leaves]:
        fail("the leaves come in another order")
    if fast.all_module_names != slow.all_module_names:
        diff = next(iter(sorted(set(fast.all_module_names) ^ set(slow.all_module_names))), "(order)")
        fail(f"module names differ at {diff!r}")
    if fast.parameter_names != slow.parameter_names:
        diff = next(iter(sorted(set(fast.parameter_names) ^ set(slow.parameter_names))), "(order)")
        fail(f"parameter names differ at {diff!r}")
    if fast.base_parameters != slow.base_parameters:
        fail(f"base parameters {slow.base_parameters:,}, the fast path says {fast.base_parameters:,}")
    if (fast.plugin, fast.model_type) != (slow.plugin, slow.model_type):
        fail(
            f"plugin {slow.plugin!r} for {slow.model_type!r}, the fast path says {fast.plugin!r} for {fast.model_type!r}"
        )
