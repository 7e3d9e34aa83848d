"""Hook specifications: the whole contract between lora-registry and its architecture plugins.

Every hook is called with keyword arguments only. An implementation may accept any subset of a
hook's arguments (pluggy passes only the ones it names), so arguments added in a later
``HOOKSPEC_VERSION`` never break an older plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pluggy

PROJECT_NAME = "lora_registry"
#: Bumped whenever a hook or a hook argument is added. ``lora-registry plugins`` shows it.
#: 1: model_types, registry_fragment, classify. 2: build_model.
HOOKSPEC_VERSION = 2

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class Null:
    """An explicit "no role" with the reason, as a ``lora_registry_classify`` answer value.

    ``None`` still means "no role", but without a reason; ``inspect`` and the coverage report
    show the reason, and the sweep test requires one for every language-model leaf.
    """

    reason: str


# ----------------------------------------------------------------------------- discovery

@hookspec
def lora_registry_model_types() -> Iterable[str] | None:
    """Name the model types this plugin answers for.

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


# ----------------------------------------------------------------------------- classification

@hookspec
def lora_registry_classify(
    model_type: str,
    config: Any,
    leaves: "list[Leaf]",  # noqa: F821 - lora_registry.inspection.Leaf
    model: Any,
    registry: Any,
) -> Mapping[str, str | None] | Iterable[tuple[str, str | None]] | None:
    """Give each LoRA-targetable leaf of a model its role.

    Plugins are asked in precedence order (third-party plugins, then the built-in architecture
    plugins, then declarative entries, then the generic fallback); the first that returns
    something other than ``None`` answers.

    :param model_type: ``config.model_type`` of the model (``""`` when unknown).
    :param config: the transformers ``PretrainedConfig``, or ``None`` for a bare module.
    :param leaves: every targetable leaf (``Leaf``: ``name``, ``kind``, ``shape``, ``layer``,
        ``scope``, ``module_class``, ``parent_classes``, ``path_classes``).
    :param model: the ``torch.nn.Module`` (built on the meta device, never with weights).
    :param registry: the merged ``Registry`` (roles, aliases, names, architecture entries).
    :return: ``None`` when this plugin does not understand the model; otherwise a mapping (or
        an iterable of pairs) from leaf name to a role of the vocabulary, or ``Null(reason)``
        (the leaf has no role, and why), or ``None`` (no role, no reason given). Leaves left out
        count as ``None``. Names that are not leaves, unknown
        roles, or a leaf given two roles make the answer invalid: the plugin is named in a
        warning and the next plugin is asked.
    """
