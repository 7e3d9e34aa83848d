"""Hook specifications: the whole contract between lora-registry and its architecture plugins.

Every hook is called with keyword arguments only. An implementation may accept any subset of a
hook's arguments (pluggy passes only the ones it names), so arguments added in a later
``HOOKSPEC_VERSION`` never break an older plugin. The plugin host (``lora_registry.host``) calls
each plugin in turn and isolates failures: an exception or an invalid answer names the plugin in a
warning and the next plugin is asked; ``None`` (or ``Decline(reason)``) is a quiet "not mine".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Registry
    from .tree import Leaf, ModuleTree

PROJECT_NAME = "lora_registry"
#: Bumped whenever a hook or a hook argument is added. ``lora-registry plugins`` shows it.
#: 1: model_types, registry_fragment, classify. 2: build_model. 3: module_tree; classify's ``tree``;
#: model_types' ``registry``.
HOOKSPEC_VERSION = 3

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class Null:
    """An explicit "no role" with the reason, as a ``lora_registry_classify`` answer value.

    ``None`` still means "no role", but without a reason; ``inspect`` and the coverage report
    show the reason, and the sweep test requires one for every language-model leaf.
    """

    reason: str


@dataclass(frozen=True)
class Decline:
    """A plugin's "not mine", with the reason: the same as returning ``None``, but ``inspect`` can say why.

    Return it from ``lora_registry_classify`` or ``lora_registry_module_tree`` when the model is
    one the plugin names but does not recognise (another head, a renamed module upstream). It is
    not a failure: no warning is raised and the next plugin is asked.
    """

    reason: str


#: What ``lora_registry_classify`` may answer for one leaf.
RoleAnswer = Union[str, Null, None]  # noqa: UP007 - a runtime alias that must work on Python 3.10


# ----------------------------------------------------------------------------- discovery


@hookspec
def lora_registry_model_types(registry: Registry) -> Iterable[str] | None:
    """Name the model types this plugin answers for.

    :param registry: the merged ``Registry`` (hookspec version 3), for plugins whose model types are data.
    :return: an iterable of ``model_type`` strings (as in ``config.json``), ``["*"]`` for a
        fallback that tries any model, or ``None``. Used by ``lora-registry plugins`` to show
        which plugin answers each model type; ``lora_registry_classify`` still decides per model.
    """


@hookspec
def lora_registry_registry_fragment() -> Mapping[str, Any] | str | None:
    """Contribute data to the registry with no resolver code (a data-only plugin).

    :return: a ``registry.toml`` fragment holding ``[presets.*]`` and/or ``[architectures.*]``
        tables, either parsed (a mapping) or as TOML text; or ``None``. Architecture entries
        added this way answer as declarative entries; presets become usable by name.
    """


# ----------------------------------------------------------------------------- building


@hookspec(firstresult=True)
def lora_registry_build_model(model_type: str, config: Mapping[str, Any]) -> Any | None:
    """Build a model whose ``model_type`` transformers does not know (hookspec version 2).

    Asked only for such model types, before any remote code (``auto_map``) is considered, so
    an installed plugin is how an architecture outside transformers becomes inspectable from a
    ``config.json`` or by its model_type. The call runs inside ``torch.device("meta")``.

    :param model_type: the ``model_type`` to build.
    :param config: the parsed ``config.json`` (a dict); ``{"model_type": model_type}`` when the
        user named only the model_type, so the plugin's defaults apply.
    :return: a ``torch.nn.Module`` built without weights (its ``config`` attribute, if any, is
        passed to ``lora_registry_classify``), or ``None`` when this plugin does not build it.
    """


@hookspec(firstresult=True)
def lora_registry_module_tree(model_type: str, config: Mapping[str, Any]) -> ModuleTree | Decline | None:
    """Describe the model a ``config.json`` builds, without building it: the fast path (hookspec version 3).

    Answer only where the tree is exactly what the built model would have (every module name,
    class, parameter name and shape, in ``named_modules()`` order): the tests of the built-in
    plugins check that against transformers. Anything not modelled exactly (an unknown key or
    value, another ``architectures`` head, quantization) must decline, and the model is built
    on the meta device instead. Write the tree with ``lora_registry.tree.TreeBuilder`` and put
    the config values your classification reads, defaults applied, in ``build(config=...)``.
    Must not import torch or transformers: its purpose is to answer without them.

    :param model_type: the config's ``model_type``.
    :param config: the parsed ``config.json`` as the user gave it (a dict).
    :return: a ``ModuleTree``, or ``None`` / ``Decline(reason)`` when this plugin does not model
        this config exactly.
    """


# ----------------------------------------------------------------------------- classification


@hookspec
def lora_registry_classify(
    model_type: str,
    config: Any,
    leaves: list[Leaf],
    model: Any,
    registry: Registry,
    tree: ModuleTree,
) -> Mapping[str, RoleAnswer] | Iterable[tuple[str, RoleAnswer]] | Decline | None:
    """Give each LoRA-targetable leaf of a model its role.

    Plugins are asked in precedence order (third-party plugins, then the built-in architecture
    plugins, then declarative entries, then the generic fallback); the first that returns
    something other than ``None`` or ``Decline`` answers.

    :param model_type: ``config.model_type`` of the model (``""`` when unknown).
    :param config: the transformers ``PretrainedConfig``; on the fast path an object with the
        same attributes for the values the plugin's ``lora_registry_module_tree`` put in its
        tree's ``config``; ``None`` for a bare module without one.
    :param leaves: every targetable leaf (``Leaf``: ``name``, ``kind``, ``shape``, ``layer``,
        ``stack``, ``scope``, ``module_class``, ``parent_classes``, ``path_classes``).
    :param model: the ``torch.nn.Module`` (built on the meta device, never with weights), or
        ``None`` on the fast path. A plugin that names this argument is taken to need the module:
        while it is asked before the answering plugin, the fast path steps aside.
    :param registry: the merged ``Registry`` (roles, aliases, names, architecture entries).
    :param tree: the ``ModuleTree``: every module with its class and parameter shapes, and
        which modules are the input and output embeddings (hookspec version 3).
    :return: ``None`` or ``Decline(reason)`` when this plugin does not understand the model;
        otherwise a mapping (or an iterable of pairs) from leaf name to a role of the
        vocabulary, or ``Null(reason)`` (the leaf has no role, and why), or ``None`` (no role, no
        reason given). Leaves left out count as ``None``. Names that are not leaves, unknown
        roles, or a leaf given two roles make the answer invalid: the plugin is named in a
        warning and the next plugin is asked.
    """
