"""One resolution, written for the trainer the user has: axolotl, LLaMA-Factory, Unsloth or torchtune.

Every exporter takes an ``AdapterPlan`` (``resolution.plan(settings)``: the single source of truth for
ranks, alphas and targets) and returns a plain dict in the trainer's own option names, keys in a stable order. The exported
options make the trainer adapt exactly the resolved set: where the trainer cannot express it, or
a setting of ``config``, the exporter raises ``ConfigError`` saying what and what to do instead. It
never widens or narrows the set. Option names and semantics follow the trainers' own code:
axolotl 0.19 (``utils/schemas/peft.py``, ``loaders/adapter.py``), LLaMA-Factory 0.9.5
(``hparams/finetuning_args.py``, ``model/adapter.py``), Unsloth 2026.10 (``models/llama.py`` and
``models/vision.py`` ``get_peft_model``), torchtune 0.6.1 (``models/*/_model_builders.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import peft_compat
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .plan import AdapterPlan

# LoraConfig fields that describe the adapter file, not what gets adapted or how.
_METADATA = frozenset(
    {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode"}
)
_ROLE_FIELDS = {"r", "lora_alpha", "lora_dropout", "target_modules", "target_parameters"}


def _refuse_unknown(config, trainer: str, handled: set[str]) -> None:
    """Refuse a non-default LoraConfig setting outside ``handled``: the export would drop it silently."""
    default = peft_compat.lora_config_defaults()
    for key, value in config.to_dict().items():
        if key not in handled and key not in _METADATA and value != default.get(key):
            raise ConfigError(f"cannot write LoraConfig {key}={value!r} for {trainer}; use --format peft")


def _target_modules(config) -> list[str] | str:
    """``target_modules`` as the resolution made it: a regex string, or a sorted suffix / name list."""
    targets = config.target_modules
    if targets is None:
        return []
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


# --------------------------------------------------------------------------- axolotl
def axolotl(plan: AdapterPlan) -> dict[str, Any]:
    """axolotl YAML options (``adapter: lora``, ``lora_*``, ``peft_*``).

    axolotl hands ``lora_target_modules`` (a list or a regex string) and ``lora_target_parameters``
    to PEFT unchanged and forwards ``lora_rank_pattern`` / ``lora_alpha_pattern``, so every
    resolution can be expressed; ``lora_target_linear: false`` is written so a base config cannot
    add every linear layer. Refuses: bias other than none (axolotl always passes ``bias="none"``),
    ``init_lora_weights=False`` (forwarded only when truthy), a fractional alpha (typed int) and
    PEFT-only settings. (Dropout with ``target_parameters``, which its schema rejects, PEFT and so
    ``lora_config`` refuse already.)
    """
    config = plan.lora_config()
    name = "axolotl"
    _refuse_unknown(
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
    suffixes when they are, else the full module names. Refuses: 3-D expert weights (no
    target_parameters), per-role ranks or alphas, leaves outside the language model, a fractional
    alpha, init other than the default or PiSSA, bias and other PEFT-only settings.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "LLaMA-Factory"
    _refuse_unknown(
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
        "lora_target": ",".join(_comma_targets(resolution, config)),
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


def _comma_targets(resolution, config) -> list[str]:
    """Entries for ``lora_target`` that select exactly the resolved modules by suffix and by substring."""
    selected = set(resolution.target_keys().values())
    names = [n for n in resolution.model_map.all_module_names if n]
    suffixes = None if isinstance(config.target_modules, str) else _target_modules(config)
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
def unsloth(plan: AdapterPlan) -> dict[str, Any]:
    """Keyword arguments for Unsloth's ``FastLanguageModel.get_peft_model`` (``FastModel`` takes the same).

    Unsloth passes an explicit ``target_modules`` list or regex and ``target_parameters`` to PEFT,
    and forwards extra keywords (``use_dora``, ``rank_pattern``, ``alpha_pattern``) to ``LoraConfig``.
    ``target_parameters`` is always written, empty if need be: left out, Unsloth adds MoE expert
    weights on its own. Refuses: the embed and lm-head roles (Unsloth moves embed_tokens and
    lm_head to modules_to_save, trained whole, not with LoRA) and PEFT-only settings.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "Unsloth"
    _refuse_unknown(
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
    whole = [role for role in resolution.names_by_role() if role in ("embed", "lm-head")]
    if whole:
        raise ConfigError(
            f"Unsloth trains embed_tokens and lm_head whole (modules_to_save), not with LoRA, so {' and '.join(whole)} "
            "cannot be exported; drop them or use --format peft"
        )
    out: dict[str, Any] = {
        "r": config.r,
        "target_modules": _target_modules(config),
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "bias": config.bias,
        "use_rslora": bool(config.use_rslora),
        "init_lora_weights": config.init_lora_weights,
        "target_parameters": list(config.target_parameters or []),
    }
    if config.modules_to_save:
        out["modules_to_save"] = list(config.modules_to_save)
    if config.loftq_config:
        loftq = config.loftq_config  # a dict, or PEFT's LoftQConfig dataclass
        out["loftq_config"] = dict(loftq) if isinstance(loftq, dict) else dataclasses.asdict(loftq)
    if config.use_dora:
        out["use_dora"] = True
    if config.rank_pattern:
        out["rank_pattern"] = dict(config.rank_pattern)
    if config.alpha_pattern:
        out["alpha_pattern"] = dict(config.alpha_pattern)
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
    at one rank. Refuses: a model with no builder, any other role (fused qkv or gate-up, experts,
    router, embeddings: torchtune splits or lacks them), part of the MLP, a role missing from some
    layers, no attention role (the builders need one), lm-head on tied embeddings, per-role ranks,
    target_parameters, DoRA on the 405B builder, and every setting besides rank, alpha, dropout, DoRA.
    """
    resolution, config = plan.resolution, plan.lora_config()
    name = "torchtune"
    _refuse_unknown(config, name, _ROLE_FIELDS | {"rank_pattern", "alpha_pattern", "use_dora"})
    builder = torchtune_builder(resolution.model_map)
    _one_rank(config, name, "lora_rank and lora_alpha")
    by_role = resolution.names_by_role()
    other = [
        role
        for role in by_role
        if role not in _TORCHTUNE_ATTENTION and role not in _TORCHTUNE_MLP and role != "lm-head"
    ]
    if other or config.target_parameters:
        raise ConfigError(
            f"torchtune's LoRA builders cannot adapt {', '.join(other) or 'target_parameters'}: they adapt only "
            "q_proj, k_proj, v_proj, output_proj, the whole MLP and the output projection; use --format peft"
        )
    mlp = _TORCHTUNE_MLP & set(by_role)
    if mlp and mlp != _TORCHTUNE_MLP:
        raise ConfigError(
            f"torchtune's apply_lora_to_mlp adapts gate, up and down together, so {', '.join(sorted(mlp))} alone "
            "cannot be expressed; select all of ffn or none of it"
        )
    layers = resolution.model_map.config.get("num_hidden_layers")
    partial = [role for role, names in by_role.items() if role != "lm-head" and len(names) != layers]
    if partial:
        raise ConfigError(
            f"torchtune adapts a projection in all {layers} layers, but {partial[0]} is not in every layer; use --format peft"
        )
    attention = [module for role, module in _TORCHTUNE_ATTENTION.items() if role in by_role]
    if not attention:
        raise ConfigError(
            "torchtune's LoRA builders need at least one attention projection (lora_attn_modules); add q, k, v or o"
        )
    output = "lm-head" in by_role
    if output and resolution.model_map.config.get("tie_word_embeddings"):
        raise ConfigError(
            "torchtune cannot put LoRA on an output projection tied to the embedding (apply_lora_to_output); drop lm-head"
        )
    if config.use_dora and builder.endswith("_405b"):
        raise ConfigError(f"{builder} takes no use_dora; drop DoRA or use --format peft")
    args: dict[str, Any] = {"_component_": builder, "lora_attn_modules": attention, "apply_lora_to_mlp": bool(mlp)}
    if not builder.startswith(
        ("torchtune.models.gemma.", "torchtune.models.gemma2.")
    ):  # Gemma builders lack the option
        args["apply_lora_to_output"] = output
    args.update(lora_rank=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout)
    if config.use_dora:
        args["use_dora"] = True
    return {"model": args}


# --------------------------------------------------------------------------- registry and text
EXPORTS: dict[str, Callable[[AdapterPlan], dict[str, Any]]] = {
    "axolotl": axolotl,
    "llamafactory": llamafactory,
    "unsloth": unsloth,
    "torchtune": torchtune,
}


def render(name: str, data: dict[str, Any]) -> str:
    """The text a user pastes: YAML for axolotl, LLaMA-Factory and torchtune, a Python call for Unsloth."""
    if name not in EXPORTS:
        raise ConfigError(f"unknown export {name!r}; choose from {', '.join(EXPORTS)}")
    if name == "unsloth":
        args = "".join(f"    {key}={value!r},\n" for key, value in data.items())
        return (
            "# FastModel.get_peft_model and FastVisionModel.get_peft_model take the same arguments\n"
            f"model = FastLanguageModel.get_peft_model(\n    model,\n{args})\n"
        )
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1 << 16)
