"""One adapter plan, written for the trainer the user has: axolotl, LLaMA-Factory, Unsloth, torchtune, MLX-LM, ms-swift, LitGPT.

Every exporter takes an ``AdapterPlan`` (``resolution.plan(settings)``: the single source of truth for
ranks, alphas and targets) and returns a plain dict in the trainer's own option names, keys in a
stable order. The exported options make the trainer adapt exactly the resolved set: where the
trainer cannot express it, or a setting of the plan, the exporter raises ``ConfigError`` saying what
and what to do instead. It never widens or narrows the set. Where the trainer builds the model
differently (torchtune and LitGPT split Phi-3's fused ``qkv_proj``) the export follows what the
trainer does with the model and says so in an ``ExportWarning``. Option names and semantics follow
the trainers' own code: axolotl 0.19 (``utils/schemas/peft.py``, ``loaders/adapter.py``),
LLaMA-Factory 0.9.5 (``hparams/finetuning_args.py``, ``model/adapter.py``), Unsloth 2026.10
(``models/llama.py`` and ``models/vision.py`` ``get_peft_model``), torchtune 0.6.1
(``models/*/_model_builders.py``), MLX-LM 0.32 (``tuner/utils.py`` ``linear_to_lora_layers``),
ms-swift 4.6 (``arguments/tuner_args.py``, ``pipelines/train/tuner.py``), LitGPT 0.5.13
(``lora.py``, ``scripts/convert_hf_checkpoint.py``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import peft_compat
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .inspection import Leaf
    from .plan import AdapterPlan
    from .resolution import Resolution


class ExportWarning(UserWarning):
    """The trainer adapts what was asked, but not as the PEFT plan does (another split, another count, a tie)."""


# LoraConfig fields that describe the adapter file, not what gets adapted or how.
_METADATA = frozenset(
    {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode"}
)
_ROLE_FIELDS = {"r", "lora_alpha", "lora_dropout", "target_modules", "target_parameters"}
# The plan's layer selection (from --layers / --last-layers): each exporter writes it in its trainer's form.
_LAYER_FIELDS = frozenset({"layers_to_transform", "layers_pattern"})


def _refuse_unknown(plan: AdapterPlan, config: Any, trainer: str, handled: set[str]) -> None:
    """Refuse a non-default LoraConfig setting outside ``handled``: the export would drop it silently."""
    for key in _LAYER_FIELDS & set(plan.settings.extra):
        raise ConfigError(
            f"cannot write LoraConfig {key}={plan.settings.extra[key]!r} for {trainer}; "
            "select layers with --layers or --last-layers (layers=, last_layers=)"
        )
    default = peft_compat.lora_config_defaults()
    for key, value in config.to_dict().items():
        if key in handled or key in _METADATA or key in _LAYER_FIELDS or value == default.get(key):
            continue
        raise ConfigError(f"cannot write LoraConfig {key}={value!r} for {trainer}; use --format peft")


def _target_modules(config) -> list[str] | str:
    """``target_modules`` as the plan made it: a regex string, or a sorted suffix / name list."""
    targets = config.target_modules
    if targets is None:
        return []
    return targets if isinstance(targets, str) else sorted(targets)


def _flat_target_modules(resolution: Resolution) -> list[str] | str:
    """``target_modules`` without PEFT's layer options: suffixes where exact, else a regex or the names."""
    targets = resolution.target_modules()
    return targets if isinstance(targets, str) else sorted(targets)


def _whole(value: float, trainer: str, what: str) -> int:
    """``value`` for an option the trainer types as int; a fraction cannot be written there."""
    if float(value).is_integer():
        return int(value)
    raise ConfigError(
        f"{trainer} takes {what} as a whole number, not {value}; choose a whole number or use --format peft"
    )


def _one_rank(config, trainer: str, option: str) -> None:
    if config.rank_pattern or config.alpha_pattern:
        raise ConfigError(
            f"{trainer} has one {option} for every module, so per-role ranks or alphas cannot be expressed; "
            "drop them or use --format peft"
        )


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --------------------------------------------------------------------------- fused modules a trainer splits
def _parts(resolution: Resolution) -> dict[str, list[str]]:
    """``{resolved role: the roles a trainer that splits fused modules adapts for it}``.

    A fused role (``attention-qkv``) the user reached by asking for some of its parts (``q,v``) stands
    for those parts; reached directly (``qkv``, ``attention``, ``all``) for all of them. Other roles
    stand for themselves.
    """
    fused = resolution.registry.fused
    out: dict[str, list[str]] = {}
    for role in resolution.names_by_role():
        parts = [part for part, into in fused.items() if into == role]
        asked = [part for part, into in resolution.substituted.items() if into == role]
        out[role] = [part for part in parts if part in asked] if asked else parts or [role]
    return out


def _whole_value(value: object) -> int:
    """A config size as an int (0 where the config has none)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _split_lora(resolution: Resolution, leaf: Leaf, role: str, parts: list[str], r: int, trainer: str) -> int:
    """LoRA parameters a trainer creates on ``leaf`` (fused ``role``) when it adapts each of ``parts`` separately at rank ``r``."""
    shape = tuple(leaf.shape)
    count, out, inner = (shape[0], shape[-2], shape[-1]) if len(shape) == 3 else (1, shape[0], shape[1])
    if role.endswith("gate-up"):
        sizes = dict.fromkeys(parts, out // 2)
    else:
        config = resolution.model_map.config
        heads = _whole_value(config.get("num_attention_heads"))
        kv = _whole_value(config.get("num_key_value_heads")) or heads
        if not heads or out % (heads + 2 * kv):
            raise ConfigError(f"{trainer}: cannot tell the q, k and v sizes inside {leaf.name}; use --format peft")
        head = out // (heads + 2 * kv)
        sizes = {"attention-q": heads * head, "attention-k": kv * head, "attention-v": kv * head}
    return sum(r * count * (inner + sizes[part]) for part in parts)


def _warn_split(plan: AdapterPlan, trainer: str, split: dict[str, list[str]], how: str) -> None:
    """Say where the trainer's own split of fused modules changes the LoRA from the PEFT plan's."""
    resolution = plan.resolution
    fused = {role: parts for role, parts in split.items() if parts != [role]}
    if not fused:
        return
    names = resolution.names_by_role()
    by_name = {leaf.name: leaf for leaf in resolution.leaves}
    theirs = sum(
        _split_lora(resolution, by_name[name], role, parts, plan.rank_of(role), trainer)
        for role, parts in fused.items()
        for name in names[role]
    )
    total = plan.cost.total - sum(plan.cost.lora[role] for role in fused) + theirs
    example = names[next(iter(fused))][0]
    adapted = [part for parts in fused.values() for part in parts]
    registry = resolution.registry.fused
    frozen = [part for part, into in registry.items() if into in fused and part not in adapted]
    rest = f"; {', '.join(frozen)} {'stays' if len(frozen) == 1 else 'stay'} frozen" if frozen else ""
    warnings.warn(
        f"{trainer} {how} ({example}): it adapts {', '.join(adapted)} with a LoRA each{rest}; "
        f"{total:,} trainable parameters (PEFT on the fused modules: {plan.cost.total:,})",
        ExportWarning,
        stacklevel=3,
    )


def _covers_every_layer(resolution: Resolution, trainer: str) -> None:
    """Refuse a role that is not selected in every layer that has it (the trainer adapts a role everywhere)."""
    model_map = resolution.model_map
    for role, names in resolution.names_by_role().items():
        everywhere = model_map.leaves_with_role(role, resolution.scopes)
        if len(names) != len(everywhere):
            raise ConfigError(
                f"{trainer} adapts a module in every layer that has it, but {role} is selected in "
                f"{len(names)} of {len(everywhere)}; drop --layers / --last-layers or use --format peft"
            )


# --------------------------------------------------------------------------- axolotl
def axolotl(plan: AdapterPlan) -> dict[str, Any]:
    """axolotl YAML options (``adapter: lora``, ``lora_*``, ``peft_*``).

    axolotl hands ``lora_target_modules`` (a list or a regex string), ``lora_target_parameters`` and
    ``peft_layers_to_transform`` / ``peft_layers_pattern`` to PEFT unchanged and forwards
    ``lora_rank_pattern`` / ``lora_alpha_pattern``, so every resolution can be expressed;
    ``lora_target_linear: false`` is written so a base config cannot add every linear layer.
    Refuses: bias other than none (axolotl always passes ``bias="none"``), ``init_lora_weights=False``
    (forwarded only when truthy), a fractional alpha (typed int) and PEFT-only settings. (Dropout
    with ``target_parameters``, which its schema rejects, PEFT and so ``lora_config`` refuse already.)
    """
    config = plan.lora_config()
    name = "axolotl"
    _refuse_unknown(
        plan,
        config,
        name,
        _ROLE_FIELDS
        | {"rank_pattern", "alpha_pattern", "use_dora", "use_rslora", "init_lora_weights", "modules_to_save"},
    )
    if config.init_lora_weights is False:
        raise ConfigError(
            "axolotl ignores peft_init_lora_weights: false, so init_lora_weights=False cannot be expressed; use --format peft"
        )
    parameters = list(config.target_parameters or [])
    out: dict[str, Any] = {
        "adapter": "lora",
        "lora_r": config.r,
        "lora_alpha": _whole(config.lora_alpha, name, "lora_alpha"),
        "lora_dropout": config.lora_dropout,
        "lora_target_linear": False,
        "lora_target_modules": _target_modules(config),
    }
    if parameters:
        out["lora_target_parameters"] = parameters
    if plan.layers_to_transform is not None:
        out["peft_layers_to_transform"] = list(plan.layers_to_transform)
        if plan.layers_pattern is not None:
            out["peft_layers_pattern"] = _as_list(plan.layers_pattern)  # typed list[str] in its schema
    if config.rank_pattern:
        out["lora_rank_pattern"] = dict(config.rank_pattern)
    if config.alpha_pattern:
        out["lora_alpha_pattern"] = {
            k: _whole(v, name, "lora_alpha_pattern values") for k, v in config.alpha_pattern.items()
        }
    if config.use_dora:
        out["peft_use_dora"] = True
    if config.use_rslora:
        out["peft_use_rslora"] = True
    if config.init_lora_weights is not True:
        out["peft_init_lora_weights"] = config.init_lora_weights
    if config.modules_to_save:
        out["lora_modules_to_save"] = list(config.modules_to_save)
    return out


# --------------------------------------------------------------------------- LLaMA-Factory
def llamafactory(plan: AdapterPlan) -> dict[str, Any]:
    """LLaMA-Factory arguments (``finetuning_type: lora``, ``lora_target``, ``lora_rank``, ...).

    ``lora_target`` is split on commas and given to PEFT as a list (name suffixes), or, for the
    multimodal models LLaMA-Factory registers, widened to every module name containing an entry
    minus the vision tower and projector. The exported list is exact under both rules: the short
    suffixes when they are, else the full module names (it has no layer option, so a layer
    selection is written as names). Refuses: 3-D expert weights (no target_parameters), per-role
    ranks or alphas, leaves outside the language model, a fractional alpha, init other than the
    default or PiSSA, bias and other PEFT-only settings.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "LLaMA-Factory"
    _refuse_unknown(
        plan,
        config,
        name,
        _ROLE_FIELDS
        | {"rank_pattern", "alpha_pattern", "use_dora", "use_rslora", "init_lora_weights", "modules_to_save"},
    )
    if config.target_parameters:
        raise ConfigError(
            "LLaMA-Factory has no target_parameters, so 3-D expert weights "
            f"({', '.join(config.target_parameters)}) cannot be targeted; use --format axolotl or peft"
        )
    _one_rank(config, name, "lora_rank and lora_alpha")
    if any(leaf.scope != "language" for leaf in resolution.leaves):
        raise ConfigError(
            "LLaMA-Factory keeps vision towers and projectors out of lora_target (freeze_vision_tower); "
            "resolve with --scope language or use --format peft"
        )
    init = config.init_lora_weights
    pissa = isinstance(init, str) and (init == "pissa" or init.startswith("pissa_niter_"))
    if init is not True and not pissa:
        raise ConfigError(
            f"LLaMA-Factory offers only the default and PiSSA initialisation, not init_lora_weights={init!r}; use --format peft"
        )
    out: dict[str, Any] = {
        "finetuning_type": "lora",
        "lora_target": ",".join(_comma_targets(resolution)),
        "lora_rank": config.r,
        "lora_alpha": _whole(config.lora_alpha, name, "lora_alpha"),
        "lora_dropout": config.lora_dropout,
    }
    if config.use_rslora:
        out["use_rslora"] = True
    if config.use_dora:
        out["use_dora"] = True
    if pissa:
        out["pissa_init"] = True
        out["pissa_iter"] = -1 if init == "pissa" else int(str(init).removeprefix("pissa_niter_"))
    if config.modules_to_save:
        out["additional_target"] = ",".join(config.modules_to_save)
    return out


def _comma_targets(resolution: Resolution) -> list[str]:
    """Entries for ``lora_target`` that select exactly the resolved modules by suffix and by substring."""
    selected = set(resolution.target_keys().values())
    names = [n for n in resolution.model_map.all_module_names if n]
    flat = _flat_target_modules(resolution)
    suffixes = None if isinstance(flat, str) else flat
    for targets in (suffixes, [leaf.name for leaf in resolution.leaves]):
        if not targets:
            continue
        by_suffix = {n for n in names if peft_compat.matches_target_modules(targets, n)}
        by_substring = {n for n in names if any(t in n for t in targets)}
        if by_suffix == selected == by_substring:
            return list(targets)
    raise ConfigError(
        "LLaMA-Factory's lora_target (names matched as suffixes, or as substrings for multimodal models) "
        "cannot single out exactly the resolved modules; use --format axolotl or peft"
    )


# --------------------------------------------------------------------------- Unsloth
#: FastLanguageModel.from_pretrained builds these model_types with FastLlamaModel (unsloth/models/loader.py), whose
#: get_peft_model hands a target list to PEFT as written. Every other model_type loads through FastModel, and
#: FastLanguageModel.get_peft_model then calls FastModel's with finetune_vision_layers=False, which turns a target
#: list into Unsloth's own regex of leaf names (get_peft_regex): full names match nothing there, suffixes are
#: narrowed. FastModel.get_peft_model, with its defaults, passes the list to PEFT as written.
UNSLOTH_LLAMA_PATH = frozenset({"llama", "mistral", "gemma", "gemma2", "qwen2", "qwen3"})
# _redirect_embedding_targets: target_modules entries with these leaf names go to modules_to_save instead.
_UNSLOTH_WHOLE = ("embed_tokens", "lm_head")


def unsloth(plan: AdapterPlan) -> dict[str, Any]:
    """Unsloth's ``get_peft_model`` call: ``{"function": ..., "arguments": {keyword arguments}}``.

    ``FastLanguageModel.get_peft_model`` for the model_types Unsloth loads with its Llama path
    (``UNSLOTH_LLAMA_PATH``), ``FastModel.get_peft_model`` for every other one, so the target list
    reaches PEFT as written. ``target_modules`` is always a list (older releases iterate a string
    character by character): suffixes, with Unsloth's ``layers_to_transform`` / ``layers_pattern``
    for a layer selection where they are exact, else the full names. ``target_parameters`` is
    always written, empty if need be: left out, Unsloth adds MoE expert weights on its own.
    ``modules_to_save`` holds the shortest exact names (``embed_tokens``, ``lm_head``).
    Refuses: LoRA on modules named embed_tokens or lm_head (Unsloth moves them to
    modules_to_save, trained whole), other modules to save on the Llama path (it takes only
    embeddings and norms there), and PEFT-only settings.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "Unsloth"
    _refuse_unknown(
        plan,
        config,
        name,
        _ROLE_FIELDS
        | {
            "bias",
            "use_rslora",
            "init_lora_weights",
            "modules_to_save",
            "loftq_config",
            "use_dora",
            "rank_pattern",
            "alpha_pattern",
        },
    )
    whole = [leaf.name for leaf in resolution.leaves if leaf.short_name in _UNSLOTH_WHOLE]
    if whole:
        roles = sorted({resolution.model_map.roles.get(n) or n for n in whole})
        raise ConfigError(
            f"Unsloth trains embed_tokens and lm_head whole (modules_to_save), not with LoRA, so {' and '.join(roles)} "
            f"({whole[0]}) cannot be exported; drop them (--modules-to-save saves them whole) or use --format peft"
        )
    llama_path = resolution.model_map.model_type in UNSLOTH_LLAMA_PATH
    targets, layers, pattern = _unsloth_targets(plan)
    out: dict[str, Any] = {
        "r": config.r,
        "target_modules": targets,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "bias": config.bias,
        "use_rslora": bool(config.use_rslora),
        "init_lora_weights": config.init_lora_weights,
        "target_parameters": list(config.target_parameters or []),
    }
    if layers is not None:
        out["layers_to_transform"] = layers
        if pattern is not None:
            out["layers_pattern"] = pattern
    saved = _unsloth_modules_to_save(plan, llama_path)
    if saved:
        out["modules_to_save"] = saved
    if config.loftq_config:
        loftq = config.loftq_config  # a dict, or PEFT's LoftQConfig dataclass
        out["loftq_config"] = dict(loftq) if isinstance(loftq, dict) else dataclasses.asdict(loftq)
    if config.use_dora:
        out["use_dora"] = True
    if config.rank_pattern:
        out["rank_pattern"] = dict(config.rank_pattern)
    if config.alpha_pattern:
        out["alpha_pattern"] = dict(config.alpha_pattern)
    function = "FastLanguageModel" if llama_path else "FastModel"
    return {"function": f"{function}.get_peft_model", "arguments": out}


def _unsloth_targets(plan: AdapterPlan) -> tuple[list[str], list[int] | None, str | list[str] | None]:
    """``target_modules`` as a list, with Unsloth's layer options where they are exact."""
    from .peft_compat import layer_index
    from .targeting import exact_layered

    resolution = plan.resolution
    targets, layers, pattern = plan.target_modules, plan.layers_to_transform, plan.layers_pattern
    if isinstance(targets, str):
        names = resolution.target_module_names()
        stacks = {leaf.stack for leaf in resolution.leaves if leaf.stack and leaf.name in set(names)}
        layered = exact_layered(names, resolution.model_map.all_module_names, stacks)
        targets, layers, pattern = layered if layered is not None else (sorted(names), None, None)
    if layers is not None:
        # vision.py _target_parameters_in_layers: Unsloth keeps only target_parameters inside those layers
        kept = set(layers)
        outside = [
            key
            for key in resolution.target_keys().values()
            if key not in set(resolution.target_module_names()) and layer_index(key, pattern) not in kept
        ]
        if outside:
            return sorted(resolution.target_module_names()), None, None
    return sorted(targets), (list(layers) if layers is not None else None), pattern


def _unsloth_modules_to_save(plan: AdapterPlan, llama_path: bool) -> list[str]:
    """``modules_to_save`` as the shortest names that still match exactly one module each (``lm_head``, ``embed_tokens``)."""
    model_map = plan.resolution.model_map
    names = [n for n in model_map.all_module_names if n]
    out = []
    for full in plan.modules_to_save or []:
        parts = full.split(".")
        short = next(
            tail
            for tail in (".".join(parts[-k:]) for k in range(1, len(parts) + 1))
            if [n for n in names if peft_compat.matches_modules_to_save(tail, n)] == [full]
        )
        leaf = short.rsplit(".", 1)[-1]
        # llama.py: FastLlamaModel.get_peft_model raises for anything but embeddings and norm layers
        norm = all("Norm" in node.cls for node in model_map.tree.nodes if node.name and node.name.endswith(short))
        if llama_path and leaf not in _UNSLOTH_WHOLE and not norm:
            raise ConfigError(
                f"Unsloth's FastLanguageModel (how it loads {model_map.model_type}) trains only embed_tokens, lm_head "
                f"and norm layers whole, not {full}; drop it from --modules-to-save or use --format peft"
            )
        out.append(short)
    saved = {n.rsplit(".", 1)[-1] for n in out}
    if set(_UNSLOTH_WHOLE) <= saved and model_map.config.get("tie_word_embeddings"):
        warnings.warn(
            "Unsloth keeps embed_tokens and lm_head tied when both are saved on a model that ties them "
            "(ensure_weight_tying), so it trains one copy where the PEFT plan counts two",
            ExportWarning,
            stacklevel=3,
        )
    return out


# --------------------------------------------------------------------------- torchtune
# torchtune 0.6.1's LoRA builders (torchtune/models/<family>/_model_builders.py): transformers
# model_type, (layers, hidden, heads, kv heads, intermediate, vocab), the builder's max_seq_len (it
# picks between builders of one shape: Llama 3 vs 3.1, Qwen2.5 base vs instruct), builder.
# Llama 3.3 70B is Llama 3.1 70B (torchtune: lora_llama3_3_70b = lora_llama3_1_70b); Qwen2 shares
# the Qwen2.5 shapes.
_TORCHTUNE_BUILDERS = [
    ("llama", (32, 4096, 32, 32, 11008, 32000), 4096, "llama2.lora_llama2_7b"),
    ("llama", (40, 5120, 40, 40, 13824, 32000), 4096, "llama2.lora_llama2_13b"),
    ("llama", (80, 8192, 64, 8, 28672, 32000), 4096, "llama2.lora_llama2_70b"),
    ("llama", (32, 4096, 32, 32, 11008, 32016), 16384, "code_llama2.lora_code_llama2_7b"),
    ("llama", (40, 5120, 40, 40, 13824, 32016), 16384, "code_llama2.lora_code_llama2_13b"),
    ("llama", (80, 8192, 64, 8, 28672, 32016), 16384, "code_llama2.lora_code_llama2_70b"),
    ("llama", (32, 4096, 32, 8, 14336, 128256), 8192, "llama3.lora_llama3_8b"),
    ("llama", (80, 8192, 64, 8, 28672, 128256), 8192, "llama3.lora_llama3_70b"),
    ("llama", (32, 4096, 32, 8, 14336, 128256), 131072, "llama3_1.lora_llama3_1_8b"),
    ("llama", (80, 8192, 64, 8, 28672, 128256), 131072, "llama3_1.lora_llama3_1_70b"),
    ("llama", (126, 16384, 128, 8, 53248, 128256), 131072, "llama3_1.lora_llama3_1_405b"),
    ("llama", (16, 2048, 32, 8, 8192, 128256), 131072, "llama3_2.lora_llama3_2_1b"),
    ("llama", (28, 3072, 24, 8, 8192, 128256), 131072, "llama3_2.lora_llama3_2_3b"),
    ("mistral", (32, 4096, 32, 8, 14336, 32000), 32768, "mistral.lora_mistral_7b"),
    ("gemma", (18, 2048, 8, 1, 16384, 256000), 8192, "gemma.lora_gemma_2b"),
    ("gemma", (28, 3072, 16, 16, 24576, 256000), 8192, "gemma.lora_gemma_7b"),
    ("gemma2", (26, 2304, 8, 4, 9216, 256000), 8192, "gemma2.lora_gemma2_2b"),
    ("gemma2", (42, 3584, 16, 8, 14336, 256000), 8192, "gemma2.lora_gemma2_9b"),
    ("gemma2", (46, 4608, 32, 16, 36864, 256000), 8192, "gemma2.lora_gemma2_27b"),
    ("phi3", (32, 3072, 32, 32, 8192, 32064), 4096, "phi3.lora_phi3_mini"),
    ("phi3", (40, 5120, 40, 10, 17920, 100352), 16384, "phi4.lora_phi4_14b"),
    ("qwen2", (24, 896, 14, 2, 4864, 151936), 32768, "qwen2_5.lora_qwen2_5_0_5b"),
    ("qwen2", (28, 1536, 12, 2, 8960, 151936), 131072, "qwen2_5.lora_qwen2_5_1_5b_base"),
    ("qwen2", (28, 1536, 12, 2, 8960, 151936), 32768, "qwen2_5.lora_qwen2_5_1_5b_instruct"),
    ("qwen2", (36, 2048, 16, 2, 11008, 151936), 32768, "qwen2_5.lora_qwen2_5_3b"),
    ("qwen2", (28, 3584, 28, 4, 18944, 152064), 131072, "qwen2_5.lora_qwen2_5_7b_base"),
    ("qwen2", (28, 3584, 28, 4, 18944, 152064), 32768, "qwen2_5.lora_qwen2_5_7b_instruct"),
    ("qwen2", (48, 5120, 40, 8, 13824, 152064), 131072, "qwen2_5.lora_qwen2_5_14b_base"),
    ("qwen2", (48, 5120, 40, 8, 13824, 152064), 32768, "qwen2_5.lora_qwen2_5_14b_instruct"),
    ("qwen2", (64, 5120, 40, 8, 27648, 152064), 131072, "qwen2_5.lora_qwen2_5_32b_base"),
    ("qwen2", (64, 5120, 40, 8, 27648, 152064), 32768, "qwen2_5.lora_qwen2_5_32b_instruct"),
    ("qwen2", (80, 8192, 64, 8, 29568, 152064), 131072, "qwen2_5.lora_qwen2_5_72b_base"),
    ("qwen2", (80, 8192, 64, 8, 29568, 152064), 32768, "qwen2_5.lora_qwen2_5_72b_instruct"),
]
_SHAPE = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)
# torchtune's names for the attention projections (lora_attn_modules); the MLP is one switch.
_TORCHTUNE_ATTENTION = {
    "attention-q": "q_proj",
    "attention-k": "k_proj",
    "attention-v": "v_proj",
    "attention-o": "output_proj",
}
_TORCHTUNE_MLP = {"ffn-gate", "ffn-up", "ffn-down"}


def torchtune_builder(model_map: Any) -> str:
    """The dotted path of the torchtune LoRA builder for this model's architecture and size."""
    config = model_map.config
    shape = tuple(config.get(key) for key in _SHAPE)
    rows = [row for row in _TORCHTUNE_BUILDERS if row[0] == model_map.model_type and row[1] == shape]
    if not rows:
        known = model_map.model_type in {row[0] for row in _TORCHTUNE_BUILDERS}
        what = (
            f"this {model_map.model_type} size ({', '.join(f'{k}={v}' for k, v in zip(_SHAPE, shape))})"
            if known
            else f"model_type {model_map.model_type}"
        )
        raise ConfigError(f"torchtune has no LoRA builder for {what}; use --format peft")
    same_length = [row for row in rows if row[2] == config.get("max_position_embeddings")]
    return "torchtune.models." + (same_length or rows)[0][3]


def torchtune(plan: AdapterPlan) -> dict[str, Any]:
    """A torchtune recipe's ``model:`` section: the LoRA builder and its arguments.

    torchtune adapts q_proj, k_proj, v_proj, output_proj (``lora_attn_modules``), the whole MLP
    (``apply_lora_to_mlp``) and the output projection (``apply_lora_to_output``), in every layer,
    at one rank. Its Phi-3 / Phi-4 builders split the checkpoint's fused ``qkv_proj`` into q_proj,
    k_proj, v_proj and ``gate_up_proj`` into w1, w3 when they load it (``phi3_hf_to_tune``), so q,v on
    Phi-3 adapts q and v only (an ``ExportWarning`` gives the count). Refuses: a model with no builder,
    any other role (experts, router, embeddings), part of the MLP, a role missing from some layers,
    no attention role (the builders need one), lm-head on tied embeddings, per-role ranks,
    target_parameters, DoRA on the 405B builder, and every setting besides rank, alpha, dropout, DoRA.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "torchtune"
    _refuse_unknown(plan, config, name, _ROLE_FIELDS | {"rank_pattern", "alpha_pattern", "use_dora"})
    builder = torchtune_builder(resolution.model_map)
    _one_rank(config, name, "lora_rank and lora_alpha")
    split = _parts(resolution)
    wanted = {part for parts in split.values() for part in parts}
    other = [
        role
        for role in split
        if not set(split[role]) <= set(_TORCHTUNE_ATTENTION) | _TORCHTUNE_MLP and role != "lm-head"
    ]
    parameters = [key for key in config.target_parameters or []]
    if other or parameters:
        raise ConfigError(
            f"torchtune's LoRA builders cannot adapt {', '.join(other) or 'target_parameters'}: they adapt only "
            "q_proj, k_proj, v_proj, output_proj, the whole MLP and the output projection; use --format peft"
        )
    mlp = _TORCHTUNE_MLP & wanted
    if mlp and mlp != _TORCHTUNE_MLP:
        raise ConfigError(
            f"torchtune's apply_lora_to_mlp adapts gate, up and down together, so {', '.join(sorted(mlp))} alone "
            "cannot be expressed; select all of ffn or none of it"
        )
    _covers_every_layer(resolution, name)
    attention = [module for role, module in _TORCHTUNE_ATTENTION.items() if role in wanted]
    if not attention:
        raise ConfigError(
            "torchtune's LoRA builders need at least one attention projection (lora_attn_modules); add q, k, v or o"
        )
    output = "lm-head" in wanted
    if output and resolution.model_map.config.get("tie_word_embeddings"):
        raise ConfigError(
            "torchtune cannot put LoRA on an output projection tied to the embedding (apply_lora_to_output); drop lm-head"
        )
    if config.use_dora and builder.endswith("_405b"):
        raise ConfigError(f"{builder} takes no use_dora; drop DoRA or use --format peft")
    _warn_split(plan, name, split, "splits fused modules when it loads the checkpoint")
    args: dict[str, Any] = {"_component_": builder, "lora_attn_modules": attention, "apply_lora_to_mlp": bool(mlp)}
    if not builder.startswith(
        ("torchtune.models.gemma.", "torchtune.models.gemma2.")
    ):  # Gemma builders lack the option
        args["apply_lora_to_output"] = output
    args.update(lora_rank=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout)
    if config.use_dora:
        args["use_dora"] = True
    return {"model": args}


# --------------------------------------------------------------------------- MLX-LM
#: model_types whose mlx-lm model (``mlx_lm/models/<model_type>.py``) has every Linear and Embedding under
#: transformers' own name: checked module by module against mlx-lm 0.32 built from the same config.json.
#: (mlx-lm's MoE models stack the experts under other names, ``switch_mlp``; a tied LM head is no module there.)
# mlx_lm/models/{gemma,gemma2,cohere}.py: the output layer is always the embedding (no lm_head module)
_MLX_ALWAYS_TIED = frozenset({"gemma", "gemma2", "cohere"})
MLX_LM_MODEL_TYPES = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi",
        "phi3",
        "olmo2",
        "starcoder2",
        "cohere",
    }
)


def mlx_lm(plan: AdapterPlan) -> dict[str, Any]:
    """An ``mlx_lm.lora`` config file's LoRA settings: ``fine_tune_type``, ``num_layers``, ``lora_parameters``.

    ``linear_to_lora_layers`` adapts the ``lora_parameters.keys`` that are module paths relative to
    each of the last ``num_layers`` blocks (``self_attn.q_proj``), and the keys that are full module
    paths (``lm_head``, ``model.layers.3.mlp.down_proj``) wherever they are. A selection that is the
    same in each of the last N layers is written as relative keys with ``num_layers: N``, anything
    else as full paths. ``scale`` is mlx-lm's multiplier itself: ``alpha / r``, or ``alpha / sqrt(r)``
    for rsLoRA; DoRA is ``fine_tune_type: dora``. Refuses: model types whose mlx-lm names differ from
    transformers' (MoE), expert tensors and other parameter targets, an LM head tied to the embedding
    (no module in mlx-lm), per-role ranks or alphas, bias, another init, modules_to_save.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "MLX-LM"
    _refuse_unknown(
        plan,
        config,
        name,
        _ROLE_FIELDS | {"use_rslora", "use_dora", "rank_pattern", "alpha_pattern", "init_lora_weights"},
    )
    model_map = resolution.model_map
    if model_map.model_type not in MLX_LM_MODEL_TYPES:
        raise ConfigError(
            f"mlx-lm's {model_map.model_type} modules are not known to carry transformers' names, so its keys "
            f"cannot be written exactly; MLX-LM exports cover {', '.join(sorted(MLX_LM_MODEL_TYPES))}"
        )
    _one_rank(config, name, "rank and scale")
    if config.target_parameters:
        raise ConfigError(
            f"mlx-lm adapts modules only, not parameters ({config.target_parameters[0]}); use --format peft"
        )
    tied = model_map.config.get("tie_word_embeddings") or model_map.model_type in _MLX_ALWAYS_TIED
    if "lm-head" in resolution.names_by_role() and tied:
        raise ConfigError(
            f"mlx-lm's {model_map.model_type} reuses the embedding as its output layer when they are tied, so the "
            "LM head has no module to adapt; drop lm-head or use --format peft"
        )
    if config.init_lora_weights is not True:
        raise ConfigError(
            f"mlx-lm initialises LoRA one way (PEFT's default), not init_lora_weights={config.init_lora_weights!r}; "
            "use --format peft"
        )
    leaves = resolution.leaves
    layered = [leaf for leaf in leaves if leaf.layer is not None]
    if any(leaf.stack != "model.layers" for leaf in layered):
        raise ConfigError("mlx-lm counts num_layers in model.layers only; use --format peft")
    total = 1 + max(leaf.layer for leaf in model_map.leaves if leaf.stack == "model.layers" and leaf.layer is not None)
    by_layer: dict[int, set[str]] = {}
    for leaf in layered:
        if leaf.layer is None:  # pragma: no cover - layered holds stack leaves only
            continue
        by_layer.setdefault(leaf.layer, set()).add(leaf.name.removeprefix(f"{leaf.stack}.{leaf.layer}."))
    last = sorted(by_layer) == list(range(total - len(by_layer), total))
    if layered and last and len({frozenset(keys) for keys in by_layer.values()}) == 1:
        keys, num_layers = sorted(next(iter(by_layer.values()))), len(by_layer)
    else:
        keys, num_layers = [leaf.name for leaf in layered], total
    keys += [leaf.name for leaf in leaves if leaf.layer is None]
    scale = config.lora_alpha / (math.sqrt(config.r) if config.use_rslora else config.r)
    embeddings = [leaf for leaf in leaves if leaf.lora_type == "embedding"]
    if config.use_dora and embeddings:
        # tuner/dora.py DoRAEmbedding keeps a magnitude per token, PEFT's DoRA one per embedding dimension
        total = plan.cost.total + sum(leaf.shape[0] - leaf.shape[1] for leaf in embeddings)
        warnings.warn(
            f"mlx-lm's DoRA keeps a magnitude per token of {embeddings[0].name}, PEFT's one per dimension: "
            f"{total:,} trainable parameters (the PEFT plan: {plan.cost.total:,})",
            ExportWarning,
            stacklevel=2,
        )
    return {
        "fine_tune_type": "dora" if config.use_dora else "lora",
        "num_layers": num_layers,
        "lora_parameters": {"keys": keys, "rank": config.r, "scale": scale, "dropout": config.lora_dropout},
    }


# --------------------------------------------------------------------------- ms-swift
# swift/arguments/tuner_args.py init_weights: PEFT's init_lora_weights as ms-swift spells it (lora-ga is its own code).
_SWIFT_INITS = ("gaussian", "pissa", "olora")


def ms_swift(plan: AdapterPlan) -> dict[str, Any]:
    """``swift sft`` arguments (a YAML file or ``--key value`` flags): ``tuner_type: lora``, ``target_modules`` / ``target_regex``, ...

    ``prepare_adapter`` hands an explicit ``target_modules`` list (name suffixes) or ``target_regex``
    (a regex that must match the whole name, which replaces target_modules), ``target_parameters``
    and ``modules_to_save`` to PEFT as written. It has no layer option, so a layer selection is
    written as a regex (or names). ``target_modules`` is always written: left out it is all-linear.
    Refuses: per-role ranks or alphas, ``bias=lora_only`` (it takes none or all), inits it does not
    pass through (eva, corda, orthogonal, mica, loftq without its config), a plan with no module target
    (an empty target_modules cannot be given), PEFT-only settings.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "ms-swift"
    _refuse_unknown(
        plan,
        config,
        name,
        _ROLE_FIELDS
        | {"bias", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save", "rank_pattern", "alpha_pattern"},
    )
    _one_rank(config, name, "lora_rank and lora_alpha")
    if config.bias not in ("none", "all"):
        raise ConfigError(f"ms-swift's lora_bias is none or all, not {config.bias!r}; use --format peft")
    init = config.init_lora_weights
    if isinstance(init, bool):
        init_weights = "true" if init else "false"
    elif init in _SWIFT_INITS or str(init).startswith("pissa_niter_"):
        init_weights = str(init)
    else:
        raise ConfigError(f"ms-swift's init_weights cannot pass init_lora_weights={init!r} to PEFT; use --format peft")
    flat = _flat_target_modules(resolution)
    if not flat:
        raise ConfigError(
            "ms-swift adapts all-linear when target_modules is empty, so a plan of target_parameters alone "
            "cannot be written; add a module role or use --format axolotl or peft"
        )
    out: dict[str, Any] = {"tuner_type": "lora"}
    if isinstance(flat, str):
        out["target_regex"] = flat
    else:
        out["target_modules"] = flat
    if config.target_parameters:
        out["target_parameters"] = list(config.target_parameters)
    out.update(
        lora_rank=config.r,
        lora_alpha=float(config.lora_alpha),
        lora_dropout=config.lora_dropout,  # always: its default is 0.05
        lora_bias=config.bias,
        use_rslora=bool(config.use_rslora),
        use_dora=bool(config.use_dora),
        init_weights=init_weights,
    )
    if config.modules_to_save:
        out["modules_to_save"] = list(config.modules_to_save)
    return out


# --------------------------------------------------------------------------- LitGPT
#: transformers model_types LitGPT converts (``scripts/convert_hf_checkpoint.py``) and how its MLP is built there
#: (``config.py`` ``mlp_class_name``): ``LLaMAMoE`` holds the router and every expert.
LITGPT_MODEL_TYPES = {
    "llama": "LLaMAMLP",
    "mistral": "LLaMAMLP",
    "mixtral": "LLaMAMoE",
    "gemma": "GemmaMLP",
    "gemma2": "GemmaMLP",
    "gemma3_text": "GemmaMLP",
    "phi": "GptNeoxMLP",
    "phi3": "LLaMAMLP",
    "qwen2": "LLaMAMLP",
    "qwen3": "LLaMAMLP",
    "qwen3_moe": "LLaMAMoE",
    "olmo2": "LLaMAMLP",
    "gpt_neox": "GptNeoxMLP",
    "falcon": "GptNeoxMLP",
}
_LITGPT_ATTENTION = {
    "attention-q": "lora_query",
    "attention-k": "lora_key",
    "attention-v": "lora_value",
    "attention-o": "lora_projection",
}
_FFN = ("ffn-gate", "ffn-up", "ffn-down")
_MOE = ("experts-gate", "experts-up", "experts-down", "router")


def litgpt(plan: AdapterPlan) -> dict[str, Any]:
    """``litgpt finetune lora`` options: ``lora_r``, ``lora_alpha``, ``lora_dropout`` and the six switches.

    ``lora_query`` / ``lora_key`` / ``lora_value`` enable a LoRA of rank r on each part of LitGPT's
    fused ``attn.qkv`` (so q,v on Phi-3's fused qkv_proj adapts q and v only, an ``ExportWarning``
    gives the count), ``lora_projection`` the attention output, ``lora_mlp`` the whole MLP (for
    Mixtral and Qwen3-MoE: the router and every expert), ``lora_head`` the LM head; in every layer.
    Refuses: model types LitGPT does not convert, part of the MLP, embeddings, a layer selection,
    per-role ranks, a fractional alpha (typed int), bias, DoRA, rsLoRA, another init, modules_to_save.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "LitGPT"
    _refuse_unknown(plan, config, name, _ROLE_FIELDS | {"rank_pattern", "alpha_pattern"})
    model_map = resolution.model_map
    mlp_class = LITGPT_MODEL_TYPES.get(model_map.model_type)
    if mlp_class is None:
        raise ConfigError(
            f"LitGPT does not convert {model_map.model_type} checkpoints; LitGPT exports cover "
            f"{', '.join(sorted(LITGPT_MODEL_TYPES))}"
        )
    _one_rank(config, name, "lora_r and lora_alpha")
    split = _parts(resolution)
    wanted = {part for parts in split.values() for part in parts}
    mlp_roles = _MOE if mlp_class == "LLaMAMoE" else _FFN
    other = [role for role in split if not set(split[role]) <= set(_LITGPT_ATTENTION) | set(mlp_roles) | {"lm-head"}]
    if other:
        raise ConfigError(
            f"LitGPT's LoRA switches cannot adapt {', '.join(other)}: they cover q, k, v, the attention output, "
            "the whole MLP and the LM head; use --format peft"
        )
    present = _expand(model_map.present_roles(resolution.scopes), resolution.registry.fused)
    mlp_all = {role for role in mlp_roles if role in present}
    mlp = mlp_all & wanted
    if mlp and mlp != mlp_all:
        raise ConfigError(
            f"LitGPT's lora_mlp adapts the whole MLP ({', '.join(sorted(mlp_all))}), so {', '.join(sorted(mlp))} "
            "alone cannot be expressed; select all of it or none"
        )
    _covers_every_layer(resolution, name)
    _warn_split(plan, name, split, "keeps a LoRA per projection inside fused modules")
    out: dict[str, Any] = {
        "lora_r": config.r,
        "lora_alpha": _whole(config.lora_alpha, name, "lora_alpha"),
        "lora_dropout": config.lora_dropout,
    }
    for role, option in _LITGPT_ATTENTION.items():
        out[option] = role in wanted
    out["lora_mlp"] = bool(mlp)
    out["lora_head"] = "lm-head" in wanted
    return out


def _expand(roles: Iterable[str], fused: Any) -> set[str]:
    """Roles with each fused role replaced by its parts (``ffn-gate-up`` -> ``ffn-gate``, ``ffn-up``)."""
    out = set()
    for role in roles:
        parts = [part for part, into in fused.items() if into == role]
        out.update(parts or [role])
    return out


# --------------------------------------------------------------------------- registry and text
EXPORTS: dict[str, Callable[[AdapterPlan], dict[str, Any]]] = {
    "axolotl": axolotl,
    "llamafactory": llamafactory,
    "unsloth": unsloth,
    "torchtune": torchtune,
    "mlx-lm": mlx_lm,
    "ms-swift": ms_swift,
    "litgpt": litgpt,
}

_UNSLOTH_NOTES = {
    "FastLanguageModel.get_peft_model": (
        "# Unsloth loads this model_type with FastLanguageModel.from_pretrained, whose get_peft_model\n"
        "# hands target_modules to PEFT as written\n"
    ),
    "FastModel.get_peft_model": (
        "# FastModel.get_peft_model, however the model was loaded: FastLanguageModel.get_peft_model would\n"
        "# rewrite target_modules into Unsloth's own regex for this model_type\n"
    ),
}


def render(name: str, data: dict[str, Any]) -> str:
    """The text a user pastes: YAML for the trainers' config files, a Python call for Unsloth."""
    if name not in EXPORTS:
        raise ConfigError(f"unknown export {name!r}; choose from {', '.join(EXPORTS)}")
    if name == "unsloth":
        function, arguments = data["function"], data["arguments"]
        args = "".join(f"    {key}={value!r},\n" for key, value in arguments.items())
        return f"{_UNSLOTH_NOTES.get(function, '')}model = {function}(\n    model,\n{args})\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1 << 16)
