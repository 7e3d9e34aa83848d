"""Hook specifications: the whole contract between lora-registry and its architecture plugins.

Every hook is called with keyword arguments only. An implementation may accept any subset of a
hook's arguments (pluggy passes only the ones it names), so arguments added in a later
``HOOKSPEC_VERSION`` never break an older plugin.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pluggy

PROJECT_NAME = "lora_registry"
#: Bumped whenever a hook or a hook argument is added. ``lora-registry plugins`` shows it.
HOOKSPEC_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


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
        an iterable of pairs) from leaf name to a role of the vocabulary or ``None`` (the leaf
        has no role). Leaves left out count as ``None``. Names that are not leaves, unknown
        roles, or a leaf given two roles make the answer invalid: the plugin is named in a
        warning and the next plugin is asked.
    """
