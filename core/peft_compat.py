"""PEFT's behaviour, restated once: every rule lora-registry relies on, each naming the PEFT function it mirrors.

This is the only module that imports PEFT internals or restates a PEFT rule, so a PEFT upgrade
means auditing this file. ``tests/test_peft_compat.py`` checks each function against real PEFT
(0.21) on a tiny model. Functions that must answer without torch (the fast path) read PEFT's and
transformers' tables from their source files when neither is imported yet, and import them
otherwise; a test holds the two readings equal for every model type.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from .tree import Leaf, ModuleTree

#: ``LoraConfig.bias`` values (``BaseTuner._mark_only_adapters_as_trainable`` implements these)
BIAS_CHOICES = ("none", "all", "lora_only")
#: ``init_lora_weights`` strings ``LoraLayer.reset_lora_parameters`` implements, besides True, False and ``pissa_niter_<N>``
INIT_CHOICES = ("gaussian", "eva", "olora", "pissa", "corda", "loftq", "orthogonal", "mica", "lora_ga")
#: inits that read the wrapped module's ``.weight`` (``LoraLayer.pissa_init``, ``olora_init``, ``corda_init``, ...)
WEIGHT_READING_INITS = ("olora", "corda", "loftq", "orthogonal", "lora_ga")
#: ``lora_config`` options whose effect on ``LoraConfig.to_dict()`` is known without PEFT
PLAIN_OPTIONS = frozenset({"lora_dropout", "bias", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save"})


# ----------------------------------------------------------------------------- matching rules
def matches_target_modules(
    targets: str | Sequence[str],
    name: str,
    *,
    layers_to_transform: Sequence[int] | int | None = None,
    layers_pattern: str | Sequence[str] | None = None,
) -> bool:
    """``tuners_utils.check_target_module_exists`` without exclusions: a list entry ``t`` matches ``name``
    when ``name == t`` or ``name`` ends with ``"." + t``; a string is a regex that must match the whole name.

    With ``layers_to_transform`` (a non-empty list, or an int), a name matched by a suffix (not one
    given in full) must also carry one of those layer indices (``layer_index``); a name without one
    is dropped.
    """
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    if name in targets:
        return True  # a full name is taken as is: the layer filter never applies to it
    if not any(name.endswith("." + t) for t in targets):
        return False
    if layers_to_transform is None or (not isinstance(layers_to_transform, int) and len(layers_to_transform) == 0):
        return True
    index = layer_index(name, layers_pattern)
    if index is None:
        return False
    return index == layers_to_transform if isinstance(layers_to_transform, int) else index in layers_to_transform


def layer_index(name: str, layers_pattern: str | Sequence[str] | None = None) -> int | None:
    """The layer index ``check_target_module_exists`` reads from a module name, or ``None``.

    Without ``layers_pattern``: the first ``<segment>.<digits>.`` after at least one leading segment
    (lazy, so an expert index further in never counts). With it: the first ``<pattern>.<digits>.``
    at the start or after a dot, for the first pattern (inserted into the regex unescaped) that matches.
    """
    if layers_pattern is None or len(layers_pattern) == 0:
        match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", name)
    else:
        match = None
        for pattern in [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern:
            match = re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", name)
            if match is not None:
                break
    return int(match.group("idx")) if match else None


def matches_target_parameters(targets: Iterable[str], key: str) -> bool:
    """``BaseTuner._inject_parameters``: a ``target_parameters`` entry is the parameter's full name or a ``.``-suffix of it."""
    return any(key == t or key.endswith("." + t) for t in targets)


def matches_pattern_key(key: str, name: str) -> bool:
    """``utils.other.get_pattern_key``: a ``rank_pattern`` / ``alpha_pattern`` key matches ``(.*\\.)?(key)$``."""
    return re.match(rf"(.*\.)?({key})$", name) is not None


def matches_modules_to_save(entry: str, name: str) -> bool:
    """``utils.other._set_trainable``: a ``modules_to_save`` entry copies every module whose name ends with it (no dot needed)."""
    return name.endswith(entry)


def inside_modules_to_save(entry: str, name: str) -> bool:
    """``tuners_utils.check_target_module_exists``: a target at or inside a module to save is excluded (its LoRA would vanish)."""
    return re.match(rf"(^|.*\.){re.escape(entry)}($|\..*)", name) is not None


# ----------------------------------------------------------------------------- what PEFT creates
def lora_parameters(leaf: Leaf, r: int) -> int:
    """Trainable parameters PEFT's LoRA adds to ``leaf`` at rank ``r``.

    ``lora.layer.Linear`` / ``Embedding``: ``r * (in + out)``; ``lora.layer._ConvNd``: ``r * in * kernel
    + out * r``; ``lora.layer.ParamWrapper`` (``target_parameters``): ``lora_A (r*E, in)``,
    ``lora_B (out, r*E)`` for a 3-D ``(E, out, in)`` tensor, plain ``r * (in + out)`` for 2-D.
    """
    shape = leaf.shape
    if leaf.lora_type == "parameter":
        experts = shape[0] if len(shape) == 3 else 1
        return r * experts * (shape[-1] + shape[-2])
    if leaf.lora_type == "conv":
        kernel = 1
        for k in shape[2:]:
            kernel *= k
        return r * shape[1] * kernel + shape[0] * r
    return r * (shape[0] + shape[1])


def mica_frozen_parameters(leaf: Leaf, r: int) -> int:
    """``variants.MiCALinearVariant`` / ``MiCAEmbeddingVariant`` freeze B: ``out x r``, or ``dim x r`` for an embedding."""
    return r * (leaf.shape[1] if leaf.lora_type == "embedding" else leaf.shape[0])


def dora_parameters(leaf: Leaf) -> int:
    """``lora.dora``: one magnitude per output feature (channel), per embedding dimension for an embedding."""
    return leaf.shape[1] if leaf.lora_type == "embedding" else leaf.shape[0]


def bias_parameters(tree: ModuleTree, leaves: Sequence[Leaf], bias: str, saved: Sequence[str]) -> int:
    """Base-model biases ``BaseTuner._mark_only_adapters_as_trainable`` makes trainable.

    ``"all"``: every parameter named ``*.bias`` outside a module to save (``ModulesToSaveWrapper``
    freezes the originals); ``"lora_only"``: the bias of each module PEFT wraps in a LoRA layer.
    """
    if bias == "all":
        total = 0
        for name, shape in tree.parameters():
            if (name == "bias" or name.endswith(".bias")) and not any(name.startswith(s + ".") for s in saved):
                total += _numel(shape)
        return total
    if bias == "lora_only":
        owners = {leaf.owner for leaf in leaves}
        total = 0
        for owner in owners:
            node = tree.node(owner)
            bias_shape = dict(node.params).get("bias") if node is not None else None
            if bias_shape is not None:
                total += _numel(bias_shape)
        return total
    return 0


def modules_to_save_parameters(tree: ModuleTree, name: str) -> int:
    """The trainable copy ``ModulesToSaveWrapper`` makes of module ``name``: every parameter under it (tied ones too)."""
    return sum(
        _numel(shape)
        for node in tree.nodes
        if node.name == name or node.name.startswith(name + ".")
        for _, shape in node.params
    )


def adapter_value_bytes(model_bytes: int = 2) -> dict[str, int]:
    """Bytes per trainable value as ``get_peft_model`` allocates them on a model loaded at ``model_bytes`` per value.

    ``tuners_utils.cast_adapter_dtype`` (``autocast_adapter_dtype=True``, the default) upcasts every
    bf16/fp16 parameter of a tuner layer's adapter (``lora_A``, ``lora_B``, embedding LoRA, DoRA's
    ``lora_magnitude_vector``, ``ParamWrapper``'s expert LoRA) to fp32. Base-model biases made
    trainable by ``bias`` and ``ModulesToSaveWrapper``'s copies are not tuner-layer adapters: they
    keep the model's dtype.
    """
    adapter = max(4, model_bytes)
    return {"lora": adapter, "dora": adapter, "biases": model_bytes, "modules_to_save": model_bytes}


# ----------------------------------------------------------------------------- the transformers-5 MoE rename
def renamed_module_names(model_type: str) -> frozenset[str]:
    """Module names PEFT rewrites into expert parameters for this model_type.

    ``transformers_weight_conversion.convert_peft_config_for_transformers``: with transformers 5,
    PEFT converts ``target_modules`` entries ending in the v4 MoE names (``gate``, ``w1``/``w2``/``w3``
    for Mixtral-like models; ``gate``, ``gate_proj``, ``up_proj``, ``down_proj`` for Qwen2-MoE-like
    ones, DeepSeek included) into ``target_parameters`` of the stacked experts, and turns a regex
    ``target_modules`` into bare leaf names first. A dense FFN's ``down_proj`` in such a model would
    silently become the experts' ``down_proj``. Empty when PEFT does no such conversion.
    """
    return frozenset(rename_table(model_type))


def rename_table(model_type: str) -> dict[str, str]:
    """PEFT's ``{v4 module name: v5 parameter name}`` for this model_type (empty if PEFT does not convert it)."""
    tables = _conversion_tables()
    if tables is None:
        return {}
    pattern, targets, fused, converted = tables
    base = pattern.get(model_type)
    if base is None or not targets.get(base) or not fused.get(base) or not converted(model_type):
        return {}
    return dict(targets[base])


_Tables = tuple[dict[str, str], dict[str, dict[str, str]], dict[str, Any], Any]


def _conversion_tables() -> _Tables | None:
    """(PEFT's model_type -> base pattern, base -> rename table, base -> fused targets, model types transformers converts)."""
    if "peft" in sys.modules or "torch" in sys.modules:
        return _imported_tables()
    return _source_tables() or _imported_tables()


@functools.cache
def _imported_tables() -> _Tables | None:
    try:
        from peft.utils.transformers_weight_conversion import (
            _MODEL_TO_CONVERSION_PATTERN,
            _MOE_FUSED_TARGETS,
            _MOE_TARGET_MODULE_MAPPING,
        )
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    except Exception:
        return None

    def converted(model_type: str) -> bool:
        return get_checkpoint_conversion_mapping(model_type) is not None

    return dict(_MODEL_TO_CONVERSION_PATTERN), dict(_MOE_TARGET_MODULE_MAPPING), dict(_MOE_FUSED_TARGETS), converted


@functools.cache
def _source_tables() -> _Tables | None:
    """The same tables read from the two source files with ``ast`` (no import: no torch)."""
    import importlib.util

    try:
        peft_spec = importlib.util.find_spec("peft")
        tf_spec = importlib.util.find_spec("transformers")
        if peft_spec is None or tf_spec is None:
            return None
        if not peft_spec.submodule_search_locations or not tf_spec.submodule_search_locations:
            return None
        from pathlib import Path

        peft_file = (
            Path(next(iter(peft_spec.submodule_search_locations))) / "utils" / "transformers_weight_conversion.py"
        )
        tf_file = Path(next(iter(tf_spec.submodule_search_locations))) / "conversion_mapping.py"
        tf_tree = ast.parse(tf_file.read_text(encoding="utf-8"))
        peft_tree = ast.parse(peft_file.read_text(encoding="utf-8"))
        pattern = dict(_module_dict(tf_tree, "_MODEL_TO_CONVERSION_PATTERN"))
        mapping_keys = _function_dict_keys(tf_tree, "_build_checkpoint_conversion_mapping", "mapping")
        # _build_checkpoint_conversion_mapping: its literal keys, then every key of transformers' pattern table
        converted = (set(pattern) | mapping_keys).__contains__
        for target in _subscript_assignments(peft_tree, "_MODEL_TO_CONVERSION_PATTERN"):
            pattern[target[0]] = target[1]
        targets = _module_dict(peft_tree, "_MOE_TARGET_MODULE_MAPPING")
        fused = _module_dict(peft_tree, "_MOE_FUSED_TARGETS")
        if not targets or not pattern:
            return None
        return pattern, targets, fused, converted
    except (OSError, SyntaxError, ValueError, StopIteration):
        return None


def _module_dict(tree: ast.Module, name: str) -> dict[str, Any]:
    for node in tree.body:
        target = (
            node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else (node.target if isinstance(node, ast.AnnAssign) else None)
        )
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id == name and isinstance(value, ast.Dict):
            return dict(ast.literal_eval(value))
    return {}


def _function_dict_keys(tree: ast.Module, function: str, variable: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Assign)
                    and len(inner.targets) == 1
                    and isinstance(inner.targets[0], ast.Name)
                    and inner.targets[0].id == variable
                    and isinstance(inner.value, ast.Dict)
                ):
                    return {
                        k.value for k in inner.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                    }
    return set()


def _subscript_assignments(tree: ast.Module, name: str) -> list[tuple[str, str]]:
    out = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
            sub = node.targets[0]
            if isinstance(sub.value, ast.Name) and sub.value.id == name:
                out.append((ast.literal_eval(sub.slice), ast.literal_eval(node.value)))
    return out


# ----------------------------------------------------------------------------- targets PEFT refuses, "all-linear"
#: ``tuners_utils._check_lora_target_modules_mamba``: the model types (``model.config.model_type`` of the
#: model given to PEFT) and module names on which PEFT raises for LoRA
MAMBA_MODEL_TYPES = frozenset({"falcon_h1", "mamba", "mamba2", "falcon_mamba", "nemotron_h"})
MAMBA_REFUSED_MODULES = frozenset({"out_proj", "conv1d"})
#: ``utils.constants.INCLUDE_LINEAR_LAYERS_SHORTHAND``
ALL_LINEAR = "all-linear"


def lora_refusal(model_type: str, leaf: Leaf) -> str | None:
    """Why PEFT raises for LoRA on ``leaf``, or ``None`` where it accepts it.

    ``tuners_utils._check_lora_target_modules_mamba`` (run by ``BaseTuner.inject_adapter`` for every
    matched module, and for the module holding a targeted parameter) refuses modules named
    ``out_proj`` or ``conv1d`` when the model's ``model_type`` is one of ``MAMBA_MODEL_TYPES``.
    """
    target_name = leaf.owner.rsplit(".", 1)[-1]
    if model_type in MAMBA_MODEL_TYPES and target_name in MAMBA_REFUSED_MODULES:
        return (
            f"PEFT refuses LoRA on {target_name} for model_type {model_type}, whose fused Mamba kernels use its "
            "weight without calling the module (tuners_utils._check_lora_target_modules_mamba)"
        )
    return None


def all_linear_leaves(tree: ModuleTree, leaves: Sequence[Leaf], model_type: str) -> list[Leaf]:
    """The leaves PEFT adapts for ``target_modules="all-linear"``, in model order.

    ``tuners_utils._maybe_include_all_linear_layers``: every ``nn.Linear`` (any subclass) and
    transformers ``Conv1D`` -- the tree's ``linear`` kind -- except the module
    ``get_output_embeddings()`` returns. Where PEFT converts MoE targets for transformers 5
    (``transformers_weight_conversion._resolve_string_target_modules`` and ``_convert_peft_config_moe``),
    the expansion is first cut to leaf names, the v4 expert and router names are added, and those
    names become ``target_parameters``: modules so named (dense and shared FFNs) drop out, and
    every parameter ending in the new names (3-D experts, the router's weight) comes in.
    """
    linear = [
        leaf
        for leaf in leaves
        if leaf.kind == "module" and leaf.lora_type == "linear" and leaf.name != tree.output_embedding
    ]
    table = rename_table(model_type)
    if not table:
        return linear
    short = {leaf.short_name for leaf in linear} | set(table)
    as_modules = sorted(short - set(table))
    as_parameters = sorted({table[name] for name in short if name in table})
    chosen = []
    for leaf in leaves:
        if leaf.kind == "module":
            hit = leaf.lora_type == "linear" and matches_target_modules(as_modules, leaf.name)
            hit = hit or matches_target_parameters(as_parameters, f"{leaf.name}.weight")
        else:
            hit = matches_target_parameters(as_parameters, leaf.name)
        if hit:
            chosen.append(leaf)
    return chosen


# ----------------------------------------------------------------------------- options PEFT refuses
def check_option_values(options: Mapping[str, Any]) -> None:
    """Refuse, in one line, option values PEFT would reject (or silently not honour), before any model is read.

    ``options`` holds ``lora_dropout``, ``bias``, ``use_rslora``, ``use_dora``, ``init_lora_weights``
    and any other ``LoraConfig`` keyword. Each rule names where PEFT enforces it.
    """
    dropout, bias, init = options["lora_dropout"], options["bias"], options["init_lora_weights"]
    # bias: BaseTuner._mark_only_adapters_as_trainable raises NotImplementedError for any other value.
    if bias not in BIAS_CHOICES:
        raise ConfigError(f"bias must be one of {', '.join(BIAS_CHOICES)}, not {bias!r}")
    # lora_dropout: nn.Dropout rejects p > 1; PEFT ignores p < 0, and p = 1 zeroes every LoRA input.
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"lora_dropout must be at least 0 and below 1, not {dropout!r}")
    for flag in ("use_rslora", "use_dora"):
        if not isinstance(options[flag], bool):
            raise ConfigError(f"{flag} must be True or False, not {options[flag]!r}")
    # init_lora_weights: LoraLayer.reset_lora_parameters raises "Unknown initialization" for other strings;
    # LoraLayer.pissa_init needs a whole number of iterations in "pissa_niter_<N>".
    if not (isinstance(init, bool) or init in INIT_CHOICES or re.fullmatch(r"pissa_niter_\d+", str(init))):
        raise ConfigError(
            f"init_lora_weights must be true, false, {', '.join(INIT_CHOICES)} or pissa_niter_<N>, not {init!r}"
        )
    # LoraConfig.__post_init__: "loftq" needs a loftq_config.
    if init == "loftq" and not options.get("loftq_config"):
        raise ConfigError("init_lora_weights='loftq' needs loftq_config=LoftQConfig(...) (pass it to lora_config)")
    # LoraLayer.resolve_lora_variant: MiCA and DoRA are both variants, and no layer has the pair.
    if init == "mica" and options["use_dora"]:
        raise ConfigError("init_lora_weights='mica' and use_dora cannot be combined (PEFT has no such LoRA variant)")


def check_targets(
    options: Mapping[str, Any],
    leaves: Sequence[Leaf],
    keys: Mapping[str, str],
    leaf_ranks: Mapping[str, int],
    module_names: Sequence[str],
) -> None:
    """Refuse, in one line, what PEFT would reject with these options on these targets.

    ``keys`` maps each leaf to the name PEFT targets (a module, or a parameter through
    ``target_parameters``); ``options["modules_to_save"]`` holds exact module names.
    """
    dropout, init = options["lora_dropout"], options["init_lora_weights"]
    wrapped = [leaf for leaf in leaves if leaf.kind == "parameter" or keys[leaf.name] != leaf.name]
    convs = [leaf for leaf in leaves if leaf.lora_type == "conv" and leaf not in wrapped]
    reads_weight = isinstance(init, str) and (init.startswith("pissa") or init in WEIGHT_READING_INITS)
    if wrapped:
        example = keys[wrapped[0].name]
        # lora.ParamWrapper.__init__ (target_parameters) raises on lora_dropout != 0 and on use_dora.
        if dropout:
            raise ConfigError(
                f"lora_dropout must be 0 here: PEFT cannot apply dropout to target_parameters ({example})"
            )
        if options["use_dora"]:
            raise ConfigError(f"PEFT has no DoRA for target_parameters ({example}); drop --dora or those roles")
        # ParamWrapper.update_layer raises on any LoRA variant, and MiCA is one.
        if init == "mica":
            raise ConfigError(f"PEFT has no MiCA for target_parameters ({example}); choose another init")
        # these inits read the wrapped module's .weight: expert modules have none (AttributeError in PEFT).
        odd = [keys[leaf.name] for leaf in wrapped if keys[leaf.name].rsplit(".", 1)[-1] != "weight"]
        if reads_weight and odd:
            raise ConfigError(f"init_lora_weights={init!r} reads a module's weight; PEFT cannot apply it to {odd[0]}")
    # _ConvNd.update_layer: besides loftq and lora_ga, convs only take True, False or "gaussian" (else ValueError).
    if convs and init not in (True, False, "gaussian", "loftq", "lora_ga"):
        raise ConfigError(f"PEFT cannot use init_lora_weights={init!r} on convolutions ({convs[0].name})")
    for leaf in leaves:
        rank = leaf_ranks[leaf.name]
        # LoraLayer.orthogonal_init: an even rank only.
        if init == "orthogonal" and rank % 2:
            raise ConfigError(f"init_lora_weights='orthogonal' needs even ranks; {leaf.name} has rank {rank}")
        # mica_init: r <= min(in_features, out_features).
        if init == "mica" and rank > min(leaf.shape):
            raise ConfigError(f"init_lora_weights='mica' needs rank <= {min(leaf.shape)} for {leaf.name}, not {rank}")
    for name in options.get("modules_to_save") or []:
        also = [n for n in module_names if n != name and matches_modules_to_save(name, n)]
        if also:
            raise ConfigError(f"modules_to_save {name!r} would also copy {also[0]} (PEFT matches the end of the name)")
        for leaf in leaves:
            if inside_modules_to_save(name, leaf.owner):
                raise ConfigError(
                    f"{leaf.name} is both a LoRA target and inside modules_to_save {name!r}; "
                    "PEFT would drop its LoRA -- keep one"
                )


# ----------------------------------------------------------------------------- the adapter file
#: ``utils.peft_types.TaskType``: the values ``LoraConfig.task_type`` takes (besides ``None``)
TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM", "SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION")

# auto.py: the transformers Auto class each AutoPeftModelFor<task> loads its base model with, by the
# name of that Auto class's mapping in transformers' modeling_auto, in the order a class is looked up.
_TASK_MAPPINGS = (
    ("CAUSAL_LM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("SEQ_2_SEQ_LM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("SEQ_2_SEQ_LM", "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES"),  # Whisper: PeftModelForSeq2SeqLM wraps it
    ("CAUSAL_LM", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"),  # no VLM task type: trainers use CAUSAL_LM
    ("SEQ_CLS", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("TOKEN_CLS", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
    ("QUESTION_ANS", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
    ("FEATURE_EXTRACTION", "MODEL_MAPPING_NAMES"),
)


def task_type_for(model_class: str) -> str | None:
    """The ``task_type`` whose PEFT model wraps a model of class ``model_class`` (``LlamaForCausalLM``), or ``None``.

    ``auto.MODEL_TYPE_TO_PEFT_MODEL_MAPPING`` and the ``AutoPeftModelFor*._target_class`` values pair each
    task type with a transformers Auto class: CAUSAL_LM with AutoModelForCausalLM, SEQ_2_SEQ_LM with
    AutoModelForSeq2SeqLM, SEQ_CLS, TOKEN_CLS and QUESTION_ANS with theirs, FEATURE_EXTRACTION with
    AutoModel. The class is looked up in those Auto classes' mappings; a vision-language model
    (image-text-to-text, for which PEFT has no task type) gets CAUSAL_LM, as axolotl, LLaMA-Factory
    and Unsloth give it.
    """
    from transformers.models.auto import modeling_auto

    for task, mapping in _TASK_MAPPINGS:
        for names in getattr(modeling_auto, mapping, {}).values():
            if model_class == names or (isinstance(names, (tuple, list)) and model_class in names):
                return task
    return None


def check_task_type(value: Any) -> str | None:
    """``value`` as a ``task_type`` (case-insensitive; ``None`` or ``"none"``: none), or a one-line ``ConfigError``."""
    if value is None:
        return None
    text = str(value).strip().upper().replace("-", "_")
    if text == "NONE":
        return None
    if text not in TASK_TYPES:
        raise ConfigError(f"task_type must be one of {', '.join(TASK_TYPES)} or none, not {value!r}")
    return text


# ----------------------------------------------------------------------------- PEFT objects
def new_lora_config(kwargs: Mapping[str, Any]) -> LoraConfig:
    """``peft.LoraConfig(**kwargs)``, with PEFT's own refusals (``LoraConfig.__post_init__``) as one-line ``ConfigError``s."""
    from peft import LoraConfig

    try:
        return LoraConfig(**kwargs)
    except (TypeError, ValueError, ImportError) as exc:
        raise ConfigError(f"PEFT rejects this LoRA configuration: {' '.join(str(exc).split())}") from None


@functools.cache
def lora_config_defaults() -> dict[str, Any]:
    """``LoraConfig().to_dict()``: the value of every field a config leaves unset."""
    from peft import LoraConfig

    return LoraConfig().to_dict()


def is_tuner_layer(module: Any) -> bool:
    """A PEFT tuner layer (``tuners_utils.BaseTunerLayer``): one that wraps a base layer."""
    if "peft" not in sys.modules:
        return False  # nothing can be a tuner layer when PEFT was never imported
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover
        return False
    return isinstance(module, BaseTunerLayer)


# ----------------------------------------------------------------------------- PEFT's wrappers and layer types
def wrapped_module(module: Any) -> Any:
    """The module a PEFT wrapper stands in for, or ``None`` when ``module`` is not one of PEFT's wrappers.

    ``tuners_utils.BaseTunerLayer.get_base_layer`` (LoRA layers, nested ``lora.ParamWrapper`` s, the
    trainable-tokens layer); ``utils.other.AuxiliaryTrainingWrapper.original_module``
    (``ModulesToSaveWrapper``, whose ``modules_to_save`` copies are adapter state, and
    ``TrainableTokensWrapper``, whose ``token_adapter`` holds the original module);
    ``PeftModel.get_base_model`` and ``BaseTuner.model`` for a whole PEFT model.
    """
    classes = _peft_wrapper_classes()
    if classes is None:
        return None  # nothing can be a PEFT wrapper when PEFT was never imported
    tuner_layer, auxiliary, tuner, peft_models = classes
    if isinstance(module, tuner_layer):
        return module.get_base_layer()
    if isinstance(module, auxiliary):
        return module.original_module
    if isinstance(module, peft_models):
        return module.get_base_model()
    if isinstance(module, tuner):
        return module.model
    return None


def _peft_wrapper_classes() -> tuple[Any, Any, Any, Any] | None:
    if _WRAPPER_CLASSES:
        return _WRAPPER_CLASSES[0]
    if "peft" not in sys.modules:
        return None
    try:
        from peft import PeftMixedModel, PeftModel
        from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper
    except ImportError:  # pragma: no cover
        return None
    _WRAPPER_CLASSES.append((BaseTunerLayer, AuxiliaryTrainingWrapper, BaseTuner, (PeftModel, PeftMixedModel)))
    return _WRAPPER_CLASSES[0]


_WRAPPER_CLASSES: list[tuple[Any, Any, Any, Any]] = []  # filled once PEFT has been imported


#: The quantized Linear layers PEFT's LoRA adapts besides ``nn.Linear`` (and its subclasses: bitsandbytes'
#: ``Linear8bitLt``/``Linear4bit``, torchao-quantized Linears) and transformers' ``Conv1D``:
#: (module that defines the class, class name, the dispatcher in ``LoraModel._create_new_module``).
QUANTIZED_LINEARS = (
    ("hqq.core.quantize", "HQQLinear", "dispatch_hqq"),
    ("gptqmodel.nn_modules.qlinear", "BaseQuantLinear", "dispatch_gptq"),  # GPTQ, and AWQ (dispatch_awq)
    ("aqlm", "QuantizedLinear", "dispatch_aqlm"),
    ("eetq", "EetqLinear", "dispatch_eetq"),
    ("neural_compressor.torch.algorithms.fp8_quant._quant_common.helper_modules", "PatchedLinear", "dispatch_inc"),
)
#: Every dispatcher ``LoraModel._create_new_module`` tries, and where lora-registry accounts for it.
#: ``tests/test_peft_compat.py`` holds this list equal to PEFT's, so a new PEFT dispatcher is noticed.
LORA_DISPATCHERS = {
    "dispatch_bnb_8bit": "nn.Linear subclass (bitsandbytes Linear8bitLt)",
    "dispatch_bnb_4bit": "nn.Linear subclass (bitsandbytes Linear4bit)",
    "dispatch_torchao": "nn.Linear with a torchao tensor weight",
    "dispatch_default": "nn.Linear, transformers Conv1D, nn.Embedding, nn.Conv1d/2d/3d, target_parameters",
    **{dispatcher: f"QUANTIZED_LINEARS ({cls})" for _, cls, dispatcher in QUANTIZED_LINEARS},
    "dispatch_awq": "QUANTIZED_LINEARS (BaseQuantLinear)",
    # Megatron's parallel linears need LoraConfig.megatron_config, Transformer Engine's are not transformers
    # layers: neither occurs in a model transformers builds, and neither is adapted by a plain LoraConfig.
    "dispatch_megatron": "not a leaf (needs megatron_config)",
    "dispatch_transformer_engine": "not a leaf (Transformer Engine layers)",
}
#: Names of the integer-typed parameters or buffers that hold a quantized layer's packed weight
#: (``weight``: BitNet, HIGGS, EETQ; ``qweight``: GPTQ/AWQ; ``W_q``: HQQ; ``codes``: AQLM).
PACKED_WEIGHT_NAMES = ("weight", "qweight", "W_q", "codes")


def linear_shape(module: Any, weight_shape: Sequence[int] | None) -> tuple[int, int] | None:
    """``(out_features, in_features)`` of a layer PEFT's LoRA adapts as a Linear, or ``None`` for any other module.

    Mirrors the dispatchers of ``lora.model.LoraModel._create_new_module`` and the sizes
    ``tuners_utils._get_in_out_features`` reads: ``nn.Linear`` and its subclasses (bitsandbytes,
    torchao, FP8) by ``in_features``/``out_features``; transformers' ``Conv1D`` by its weight, stored
    ``[in, out]`` (``weight_shape`` is that weight's logical shape: ZeRO-3's ``ds_shape``, FSDP's
    unflattened shape); the quantized layers of ``QUANTIZED_LINEARS`` by ``in_features``/``out_features``.
    """
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return int(module.out_features), int(module.in_features)
    cls = type(module)
    if cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers"):
        if weight_shape is None or len(weight_shape) != 2:
            return None
        return int(weight_shape[1]), int(weight_shape[0])
    if cls.__name__ == "EetqLinear" and cls.__module__ == "transformers.integrations.eetq":
        # dispatch_eetq takes transformers' own EetqLinear too, where the eetq library is installed; weight is [in, out]
        if weight_shape is None or len(weight_shape) != 2 or importlib.util.find_spec("eetq") is None:
            return None
        return int(weight_shape[1]), int(weight_shape[0])
    for where, name, _ in QUANTIZED_LINEARS:
        found = getattr(sys.modules.get(where), name, None)  # a library never imported has no layers here
        if _instance_of(module, found):
            return int(module.out_features), int(module.in_features)
    return None


def _instance_of(module: Any, cls: Any) -> bool:
    return isinstance(cls, type) and isinstance(module, cls)


# ----------------------------------------------------------------------------- a further adapter
def adapter_target_parameters(objects: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """``{adapter name: its target_parameters}`` for the adapters of a PEFT model that use ``target_parameters``.

    ``objects`` is a model and the wrappers around it; the first with a ``peft_config`` mapping
    (``PeftModel``, ``BaseTuner``, or a transformers model given adapters by ``add_adapter``) answers.
    """
    for obj in objects:
        configs = getattr(obj, "peft_config", None)
        if isinstance(configs, Mapping) and configs:
            found = {}
            for name, config in configs.items():
                targets = getattr(config, "target_parameters", None)
                if targets and not isinstance(targets, str):
                    found[str(name)] = tuple(str(t) for t in targets)
            return found
    return {}


def further_adapter_target_parameters(
    existing: Mapping[str, Sequence[str]], selected: Iterable[str], parameter_names: Iterable[str]
) -> list[str] | None:
    """The ``target_parameters`` a further adapter must use: the existing adapters' own strings.

    ``lora.model.LoraModel._check_new_adapter_config``: when several adapters use
    ``target_parameters``, PEFT requires the same set of strings in each (the nesting of
    ``ParamWrapper`` s encodes which parameter a LoRA weight belongs to). ``existing`` holds the
    model's adapters' ``target_parameters``; ``selected`` the parameter names the new adapter
    adapts. Returns the existing strings when they match exactly ``selected`` among
    ``parameter_names`` (``BaseTuner._inject_parameters``' suffix rule), ``None`` when there is no
    existing adapter with ``target_parameters``; raises ``ConfigError`` when the sets differ.
    """
    if not existing:
        return None
    wanted = set(selected)
    names = list(parameter_names)
    adapter, targets = next(iter(sorted(existing.items())))
    hits = {name for name in names if matches_target_parameters(targets, name)}
    if hits == wanted:
        return sorted(targets)
    differ = sorted(wanted ^ hits)
    raise ConfigError(
        f"the model already has PEFT adapter {adapter!r} with target_parameters {sorted(targets)}; PEFT requires "
        f"every adapter using target_parameters to target the same parameters, and this selection "
        f"{'adds' if differ[0] in wanted else 'leaves out'} {differ[0]}: choose roles that select exactly those "
        f"{len(hits)} parameters"
    )


def module_hits(config: Any, module_names: Iterable[str], targets: Any, *, bare: bool = False) -> set[str]:
    """Module names ``tuners_utils.check_target_module_exists`` matches for ``targets`` under ``config``'s other settings.

    ``bare`` leaves out ``exclude_modules``, ``modules_to_save`` and the layer selection.
    """
    from types import SimpleNamespace

    from peft.tuners.tuners_utils import check_target_module_exists

    probe = SimpleNamespace(
        target_modules=targets,
        target_parameters=None,
        exclude_modules=None if bare else config.exclude_modules,
        modules_to_save=None if bare else config.modules_to_save,
        layers_to_transform=None if bare else config.layers_to_transform,
        layers_pattern=None if bare else config.layers_pattern,
    )
    return {name for name in module_names if check_target_module_exists(probe, name)}


def converted_config(config: Any, module: Any) -> Any:
    """A copy of ``config`` after ``convert_peft_config_for_transformers`` (the MoE rename), or ``config`` if it does nothing."""
    import copy

    converted = copy.deepcopy(config)
    try:
        from peft.utils.transformers_weight_conversion import convert_peft_config_for_transformers

        convert_peft_config_for_transformers(converted, model=module, conversions=None)
    except Exception:  # no rename in this PEFT, or PEFT refuses it: get_peft_model reports the latter
        return config
    return converted


def all_linear_targets(config: Any, module: Any) -> Any:
    """``tuners_utils._maybe_include_all_linear_layers``: what ``"all-linear"`` expands into (``None`` if unavailable)."""
    import copy

    try:
        from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

        expanded: Any = _maybe_include_all_linear_layers(copy.deepcopy(config), module)
        return expanded.target_modules
    except Exception:  # a private helper: without it, say nothing rather than guess
        return None


def apply(module: Any, config: Any) -> tuple[Any, set[str]]:
    """``peft.get_peft_model(module, config)`` (warnings silenced): the PEFT model and the names it targeted."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(module, config)
    tuner = model.base_model
    targeted = set(tuner.targeted_module_names) | set(getattr(tuner, "targeted_parameter_names", None) or [])
    return model, targeted


def _numel(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
