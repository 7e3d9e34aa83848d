"""The adapter plan: LoRA settings applied to a resolution, every check run once, with what it costs.

``Resolution.plan(settings)`` builds an ``AdapterPlan``: the rank of each leaf, PEFT's
``target_modules`` / ``target_parameters`` / ``rank_pattern`` / ``alpha_pattern``, the exact
``modules_to_save`` names and the ``Cost``. Every output (the ``LoraConfig``, the JSON document,
``adapter_config.json``, the trainers' exports, the tables) is read off the plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import peft_compat
from .errors import ConfigError
from .quantization import weight_memory
from .targeting import exact_regex, exact_suffixes

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from .memory import MemoryPlan, MemorySettings
    from .resolution import Resolution
    from .settings import LoraSettings

#: bytes per value at each precision the cost is given for
PRECISIONS = {"fp32": 4, "bf16": 2}


@dataclass(frozen=True)
class Cost:
    """What an adapter costs to train, known before training: its trainable parameters and their memory.

    ``lora`` holds the LoRA A and B matrices per role; ``dora`` the DoRA magnitude vectors;
    ``biases`` the base-model biases ``bias="all"`` or ``"lora_only"`` makes trainable;
    ``modules_to_save`` the full trainable copy of each module PEFT saves whole.
    """

    lora: dict[str, int]
    dora: int = 0
    biases: int = 0
    modules_to_save: dict[str, int] = field(default_factory=dict)
    base_parameters: int = 0
    #: the base model's weights in bytes at bf16, 8-bit and 4-bit (``quantization.weight_memory``)
    base_weights: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every trainable parameter: what ``requires_grad`` counts on the PEFT model."""
        return sum(self.lora.values()) + self.dora + self.biases + sum(self.modules_to_save.values())

    @property
    def share(self) -> float | None:
        """``total`` as a fraction of the base model's parameters (``None`` when those are unknown)."""
        return self.total / self.base_parameters if self.base_parameters else None

    def memory(self, precision: str = "fp32") -> dict[str, int]:
        """Bytes for the trainable weights, their gradients and AdamW's two states, and their total.

        Each is one value per trainable parameter, at 4 bytes (``"fp32"``) or 2 (``"bf16"``):
        torch's AdamW keeps ``exp_avg`` and ``exp_avg_sq`` in the parameter's dtype. The frozen
        base model and activations are not included.
        """
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        return _training_bytes(self.total * PRECISIONS[precision])

    def adapter_memory(self, model_bytes: int = 2) -> dict[str, int]:
        """Bytes for the trainable weights, gradients, AdamW states and total at the dtypes PEFT allocates.

        On a model loaded at ``model_bytes`` per value (2: bf16), ``get_peft_model``'s default
        ``autocast_adapter_dtype=True`` makes the LoRA matrices and DoRA magnitudes fp32, while
        trainable biases and ``modules_to_save`` copies keep the model's dtype
        (``peft_compat.adapter_value_bytes``); gradients and AdamW states follow each parameter's dtype.
        """
        size = peft_compat.adapter_value_bytes(model_bytes)
        each = (
            sum(self.lora.values()) * size["lora"]
            + self.dora * size["dora"]
            + self.biases * size["biases"]
            + sum(self.modules_to_save.values()) * size["modules_to_save"]
        )
        return _training_bytes(each)

    def to_dict(self) -> dict[str, Any]:
        """The ``"cost"`` object of ``resolve --format json``."""
        return {
            "lora_by_role": dict(self.lora),
            "dora_magnitudes": self.dora,
            "biases": self.biases,
            "modules_to_save": dict(self.modules_to_save),
            "total": self.total,
            "base_parameters": self.base_parameters,
            "share": self.share,
            "memory_bytes": {precision: self.memory(precision) for precision in PRECISIONS},
            "adapter_memory_bytes": self.adapter_memory(),
            "base_weight_bytes": dict(self.base_weights),
        }


def _training_bytes(weights: int) -> dict[str, int]:
    """The trainable weights' bytes, their gradients' (the same), AdamW's two states' (twice) and the total."""
    return {"weights": weights, "gradients": weights, "adamw_states": 2 * weights, "total": 4 * weights}


@dataclass(frozen=True)
class AdapterPlan:
    """A resolution with LoRA settings applied: what PEFT will be told, and what it will cost.

    ``ranks`` / ``alphas`` are the per-role overrides in effect (a preset's defaults only where
    their roles were resolved); ``leaf_ranks`` the rank of every selected leaf.
    """

    resolution: Resolution
    settings: LoraSettings
    ranks: dict[str, int]
    alphas: dict[str, float]
    leaf_ranks: dict[str, int]
    target_modules: list[str] | str
    target_parameters: list[str]
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    modules_to_save: list[str] | None
    cost: Cost
    #: PEFT's layer selection, where it (with ``target_modules`` as suffixes) expresses the resolved layers exactly
    layers_to_transform: list[int] | None = None
    layers_pattern: str | list[str] | None = None

    @property
    def warnings(self) -> list[str]:
        """The resolution's warnings."""
        return self.resolution.warnings

    def rank_of(self, role: str) -> int:
        """The rank ``role`` gets."""
        return self.ranks.get(role, self.settings.r)

    @property
    def task_type(self) -> str | None:
        """``LoraConfig.task_type``: the one the settings name, else the one for the class the model was built as.

        ``peft_compat.task_type_for``: ``LlamaForCausalLM`` -> CAUSAL_LM, ``T5ForConditionalGeneration``
        -> SEQ_2_SEQ_LM, a vision-language model -> CAUSAL_LM; ``None`` for a class PEFT has no task for.
        """
        if self.settings.task_type is not None:
            return None if self.settings.task_type == "NONE" else self.settings.task_type
        return peft_compat.task_type_for(self.resolution.model_map.tree.root_class)

    def options(self) -> dict[str, Any]:
        """PEFT's options as ``LoraConfig`` keyword arguments (``modules_to_save`` as exact names)."""
        return {**self.settings.peft_options(), "modules_to_save": self.modules_to_save}

    def lora_kwargs(self) -> dict[str, Any]:
        """Every ``LoraConfig`` keyword argument of this plan."""
        kwargs: dict[str, Any] = dict(
            r=self.settings.r,
            lora_alpha=self.settings.alpha,
            target_modules=self.target_modules,
            rank_pattern=dict(self.rank_pattern),
            alpha_pattern=dict(self.alpha_pattern),
        )
        if self.target_parameters:
            kwargs["target_parameters"] = list(self.target_parameters)
        if self.layers_to_transform is not None:
            kwargs["layers_to_transform"] = list(self.layers_to_transform)
            if self.layers_pattern is not None:
                kwargs["layers_pattern"] = self.layers_pattern
        if self.settings.task_type is not None:
            kwargs["task_type"] = self.task_type
        kwargs.update(self.options())
        return kwargs

    def lora_config(self) -> LoraConfig:
        """The ``peft.LoraConfig`` that adapts exactly the resolved set with these settings."""
        return peft_compat.new_lora_config(self.lora_kwargs())

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` document."""
        resolution = self.resolution
        kwargs = self.lora_kwargs()
        if set(self.settings.peft_options()) <= peft_compat.PLAIN_OPTIONS:
            # LoraConfig accepts every combination these options can take once they were checked, and only
            # turns a list target_modules into a set: the same document without importing PEFT.
            target_modules, target_parameters = kwargs["target_modules"], kwargs.get("target_parameters")
        else:
            config = self.lora_config()
            target_modules, target_parameters = config.target_modules, config.target_parameters
        if isinstance(target_modules, (list, set, frozenset, tuple)):
            target_modules = sorted(target_modules)
        layers: dict[str, Any] = (
            {"layers": {stack: list(kept) for stack, kept in resolution.layers.items()}} if resolution.layers else {}
        )
        if self.layers_to_transform is not None:  # target_modules alone would select every layer
            layers["layers_to_transform"] = list(self.layers_to_transform)
            layers["layers_pattern"] = self.layers_pattern
        return {
            "model": resolution.model_map.model,
            "model_type": resolution.model_map.model_type,
            "plugin": resolution.model_map.plugin,
            "roles": resolution.names_by_role(),
            "scopes": list(resolution.scopes),
            "target_modules": target_modules,
            "target_parameters": list(target_parameters or []),
            "trainable_parameters": self.cost.total,
            "warnings": list(resolution.warnings),
            **layers,
            "cost": self.cost.to_dict(),
        }

    def memory(self, settings: MemorySettings, *, search: bool = True) -> MemoryPlan:
        """The peak GPU memory of a training step with this adapter (``lora_registry.memory.plan_memory``).

        The model is built afresh from the map's recipe (its config, on the meta device) at a few
        depths; this plan's ``lora_config()`` is applied with PEFT. With ``settings.gpu`` the answer
        says whether it fits and, unless ``search`` is off, the largest length and batch that do.
        A layer selection (``--layers``) makes every layer simulated.
        """
        from .memory import MemorySettings, plan_memory

        if not isinstance(settings, MemorySettings):
            raise ConfigError(f"settings must be a MemorySettings, not {type(settings).__name__}")
        model_map = self.resolution.model_map
        recipe = model_map.recipe()
        if recipe is None:
            raise ConfigError(f"{model_map.model}: this map has no model to simulate; inspect the model itself")
        return plan_memory(
            recipe.config,
            self.lora_config(),
            settings,
            model_label=model_map.model,
            build_model=recipe.build,
            search=search,
            uniform=not self.resolution.layers,
        )

    def adapter_config(self) -> str:
        """``adapter_config.json`` text, as ``LoraConfig.save_pretrained`` writes it (deterministic).

        ``base_model_name_or_path`` is the hub id or path the model was given as (``null`` for a bare
        model_type or a model object: no checkpoint to name); ``task_type`` is ``self.task_type``.
        """
        config = self.lora_config()
        config.base_model_name_or_path = base_model_reference(self.resolution.model_map.model)
        config.task_type = self.task_type
        data = config.to_dict()
        for key, value in list(data.items()):
            if isinstance(value, (set, frozenset)):
                data[key] = sorted(value)
        return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def base_model_reference(label: Any) -> str | None:
    """What ``base_model_name_or_path`` names for a model given as ``label``: a local path or a hub id, else ``None``.

    A bare name (``llama``) is a model_type: transformers' default config, no checkpoint. (A local folder
    of that name wins, as it does when the model is read.)
    """
    if not isinstance(label, str) or not label.strip():
        return None
    from pathlib import Path

    if Path(label).expanduser().exists() or "/" in label:
        return label
    return None


def build_plan(resolution: Resolution, settings: LoraSettings) -> AdapterPlan:
    """Apply ``settings`` to ``resolution``: per-role ranks, exact patterns and ``modules_to_save``, the cost.

    The combinations PEFT would refuse are checked here, once (``peft_compat.check_targets``).
    """
    from .resolution import per_role

    # A preset's per-role overrides are defaults: they apply where their roles were resolved.
    ranks = {**{k: v for k, v in settings.default_ranks.items() if resolution.covers(k)}, **settings.ranks}
    alphas = {**{k: v for k, v in settings.default_alphas.items() if resolution.covers(k)}, **settings.alphas}
    role_ranks = per_role(ranks, resolution, "rank")
    role_alphas = per_role(alphas, resolution, "alpha")
    by_role = resolution.names_by_role()
    leaf_ranks = {name: role_ranks.get(role, settings.r) for role, names in by_role.items() for name in names}
    saved = resolution.modules_to_save(settings.modules_to_save)
    options = {**settings.peft_options(), "modules_to_save": saved}
    peft_compat.check_targets(
        options, resolution.leaves, resolution.target_keys(), leaf_ranks, resolution.model_map.all_module_names
    )
    layered = resolution.layered_targets()
    target_modules, layers, pattern = layered if layered is not None else (resolution.target_modules(), None, None)
    return AdapterPlan(
        resolution=resolution,
        settings=settings,
        ranks=dict(role_ranks),
        alphas=dict(role_alphas),
        leaf_ranks=leaf_ranks,
        target_modules=target_modules,
        target_parameters=resolution.target_parameters(),
        rank_pattern=_pattern(resolution, role_ranks),
        alpha_pattern=_pattern(resolution, role_alphas),
        modules_to_save=saved,
        cost=_cost(resolution, settings, leaf_ranks, saved),
        layers_to_transform=layers,
        layers_pattern=pattern,
    )


def _cost(
    resolution: Resolution, settings: LoraSettings, leaf_ranks: Mapping[str, int], saved: list[str] | None
) -> Cost:
    by_role = resolution.names_by_role()
    role_of = {name: role for role, names in by_role.items() for name in names}
    lora = dict.fromkeys(by_role, 0)
    dora = 0
    for leaf in resolution.leaves:
        rank = leaf_ranks[leaf.name]
        count = peft_compat.lora_parameters(leaf, rank)
        if settings.init_lora_weights == "mica":
            count -= peft_compat.mica_frozen_parameters(leaf, rank)
        lora[role_of[leaf.name]] += count
        if settings.use_dora:
            dora += peft_compat.dora_parameters(leaf)
    tree = resolution.model_map.tree
    copies = {name: peft_compat.modules_to_save_parameters(tree, name) for name in saved or []}
    biases = peft_compat.bias_parameters(tree, resolution.leaves, settings.bias, saved or [])
    return Cost(lora, dora, biases, copies, resolution.model_map.base_parameters, weight_memory(tree))


def _pattern(resolution: Resolution, per_role: Mapping[str, Any]) -> dict[str, Any]:
    """PEFT pattern keys for per-role overrides: exact among this resolution's own targets."""
    if not per_role:
        return {}
    keys = resolution.target_keys()
    by_role = {role: [keys[n] for n in names] for role, names in resolution.names_by_role().items()}
    targeted = [key for names in by_role.values() for key in names]
    pattern: dict[str, Any] = {}
    for role, value in per_role.items():
        names = by_role.get(role, [])
        if not names:
            continue
        suffixes = exact_suffixes(names, targeted)
        if suffixes is None:
            pattern[exact_regex(names, targeted)] = value
        else:
            for suffix in suffixes:
                pattern[re.escape(suffix)] = value
    return pattern
