"""Training configs ``explain`` reads: what axolotl, LLaMA-Factory and Unsloth hand to PEFT from their own files.

``read_trainer_config`` recognises a trainer's file (axolotl YAML, LLaMA-Factory YAML or JSON, an
Unsloth ``get_peft_model(...)`` call in a ``.py`` file or Unsloth's ``unsloth train --config`` file)
and checks what can be checked without the model; ``TrainerConfig.lora_kwargs`` then restates what
that trainer's own code builds on the model: the ``peft.LoraConfig`` keyword arguments, notes, and
the entries its own expansion dropped. Each rule names the trainer code it follows: axolotl 0.19
(``loaders/adapter.py``), LLaMA-Factory 0.9.5 (``hparams/finetuning_args.py``, ``model/adapter.py``,
``model/model_utils/misc.py``, ``model/model_utils/visual.py``), Unsloth 2026.10 (``lora_registry.unsloth``;
``unsloth_cli/config.py`` and ``studio/backend/core/training/trainer.py`` for its config file).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

TRAINERS = ("axolotl", "LLaMA-Factory", "Unsloth")

# axolotl utils/schemas/peft.py and model.py keys that only its config has
_AXOLOTL_KEYS = frozenset(
    {"adapter", "lora_r", "lora_target_modules", "lora_target_linear", "lora_target_parameters", "base_model"}
)
# LLaMA-Factory hparams: keys that only its arguments have
_LLAMAFACTORY_KEYS = frozenset(
    {"finetuning_type", "lora_target", "lora_rank", "model_name_or_path", "additional_target"}
)
# unsloth_cli/config.py LoraConfig (pydantic, extra="forbid"): the ``lora:`` section of ``unsloth train --config``
_UNSLOTH_CLI_LORA = frozenset(
    {
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "vision_all_linear",
        "use_rslora",
        "use_loftq",
        "use_dora",
        "finetune_vision_layers",
        "finetune_language_layers",
        "finetune_attention_modules",
        "finetune_mlp_modules",
    }
)

# LLaMA-Factory 0.9.5 model/model_utils/visual.py, every _register_composite_model(...) call:
# model_type -> (projector_keys, vision_model_keys, language_model_keys, lora_conflict_keys), defaults filled in.
_Keys = tuple[list[str], list[str], list[str], list[str]]
_LANGUAGE = ["language_model", "lm_head"]
_DEFAULT: _Keys = (["multi_modal_projector"], ["vision_tower"], _LANGUAGE, [])
_GLM_QWEN2_VL: _Keys = (["visual.merger"], ["visual.patch_embed", "visual.blocks"], _LANGUAGE, ["patch_embed"])
_QWEN3_VL: _Keys = (
    ["visual.merger"],
    ["visual.pos_embed", "visual.patch_embed", "visual.blocks", "visual.deepstack_merger_list"],
    _LANGUAGE,
    ["patch_embed"],
)
_QWEN3_5: _Keys = (
    ["model.visual.merger"],
    ["visual.pos_embed", "visual.patch_embed", "visual.blocks"],
    _LANGUAGE,
    ["patch_embed"],
)
LLAMAFACTORY_COMPOSITE: dict[str, _Keys] = {
    "Keye": (
        ["mlp_AR"],
        ["visual.vision_model.patch_embedding", "visual.vision_model.encoder"],
        ["model", "lm_head"],
        ["patch_embedding"],
    ),
    "dots_ocr": (["vision_tower.merger"], ["vision_tower"], ["model", "lm_head"], ["merger"]),
    "gemma3": _DEFAULT,
    "gemma3n": (
        ["multi_modal_projector"],
        ["vision_tower", "audio_tower"],
        _LANGUAGE,
        ["timm_model", "subsample_conv_projection"],
    ),
    "gemma4": (
        ["model.embed_vision", "model.embed_audio"],
        ["vision_tower", "audio_tower"],
        _LANGUAGE,
        ["per_layer_projection_norm"],
    ),
    "glm4v": _GLM_QWEN2_VL,
    "glm4v_moe": _GLM_QWEN2_VL,
    "glm_ocr": _GLM_QWEN2_VL,
    "interns1": _DEFAULT,
    "internvl": _DEFAULT,
    "kimi_vl": _DEFAULT,
    "llama4": (["multi_modal_projector"], ["vision_model"], _LANGUAGE, []),
    "llava": _DEFAULT,
    "llava_next": _DEFAULT,
    "llava_next_video": _DEFAULT,
    "minicpmo": (
        ["resampler"],
        ["vpm", "apm", "audio_avg_pooler", "audio_projection_layer", "tts"],
        ["llm"],
        ["audio_projection_layer"],
    ),
    "minicpmv": (["resampler"], ["vpm"], ["llm"], []),
    "minicpmv4_6": (["model.merger"], ["model.vision_tower"], ["model.language_model", "lm_head"], []),
    "mistral3": (["model.multi_modal_projector"], ["vision_tower"], _LANGUAGE, []),
    "mllama": (["multi_modal_projector"], ["vision_model"], _LANGUAGE, []),
    "paligemma": _DEFAULT,
    "qwen2_5_omni_thinker": (
        ["visual.merger", "audio_tower.proj"],
        ["visual.patch_embed", "visual.blocks", "audio_tower"],
        ["model", "lm_head"],
        ["patch_embed"],
    ),
    "qwen2_5_vl": _GLM_QWEN2_VL,
    "qwen2_audio": (["multi_modal_projector"], ["audio_tower"], _LANGUAGE, []),
    "qwen2_vl": _GLM_QWEN2_VL,
    "qwen3_5": _QWEN3_5,
    "qwen3_5_moe": _QWEN3_5,
    "qwen3_omni_moe_thinker": (
        ["visual.merger", "audio_tower.proj"],
        ["visual.pos_embed", "visual.patch_embed", "visual.blocks", "visual.deepstack_merger_list", "audio_tower"],
        _LANGUAGE,
        ["patch_embed"],
    ),
    "qwen3_vl": _QWEN3_VL,
    "qwen3_vl_moe": _QWEN3_VL,
    "video_llava": _DEFAULT,
}


@dataclass(frozen=True)
class Built:
    """What a trainer hands to PEFT: ``LoraConfig`` keyword arguments, notes, and its own entries that matched nothing."""

    kwargs: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    #: ``(field, entry, reason)`` for entries the trainer's own expansion dropped before PEFT saw them
    dropped: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class TrainerConfig:
    """A trainer's own LoRA config: which trainer, where it came from, its options, the base model it names."""

    trainer: str  # one of TRAINERS
    source: str
    data: Mapping[str, Any]
    base_model: str | None = None
    #: Unsloth: the get_peft_model entry point (FastLanguageModel, FastModel, ...)
    function: str | None = None

    @property
    def label(self) -> str:
        """``axolotl``, ``LLaMA-Factory``, ``Unsloth FastModel.get_peft_model``."""
        return f"{self.trainer} {self.function}.get_peft_model" if self.function else self.trainer

    def lora_kwargs(self, module: Any) -> Built:
        """What this trainer's code hands to ``peft.LoraConfig`` for ``module`` (built on the meta device).

        Raises ``ConfigError`` where the trainer itself would refuse the config for this model.
        """
        if self.trainer == "axolotl":
            return _axolotl(self, module)
        if self.trainer == "LLaMA-Factory":
            return _llamafactory(self, module)
        return _unsloth(self, module)


# --------------------------------------------------------------------------- recognising a file
def read_trainer_config(source: str, data: Any) -> TrainerConfig | None:
    """``data`` (a parsed YAML / JSON mapping, or the text of a ``.py`` file) as a trainer's config; ``None`` if it is
    a PEFT adapter config. A file that looks like a trainer's but cannot be one raises ``ConfigError``."""
    if isinstance(data, str):
        return _unsloth_call(source, data)
    if not isinstance(data, Mapping) or "peft_type" in data:
        return None
    if isinstance(data.get("lora"), Mapping):
        return _unsloth_cli(source, data)
    axolotl, llamafactory = _AXOLOTL_KEYS & set(data), _LLAMAFACTORY_KEYS & set(data)
    if axolotl and llamafactory:
        raise ConfigError(
            f"{source}: mixes axolotl keys ({', '.join(sorted(axolotl))}) with LLaMA-Factory keys "
            f"({', '.join(sorted(llamafactory))}); explain reads one trainer's config"
        )
    if axolotl:
        return _read_axolotl(source, data)
    if llamafactory:
        return _read_llamafactory(source, data)
    return None


def _read_axolotl(source: str, data: Mapping[str, Any]) -> TrainerConfig:
    adapter = data.get("adapter")
    if adapter not in ("lora", "qlora"):
        raise ConfigError(f"{source}: axolotl adapter is {adapter!r}; explain reads LoRA (adapter: lora or qlora)")
    if data.get("lora_model_dir"):
        raise ConfigError(
            f"{source}: axolotl resumes the adapter in lora_model_dir ({data['lora_model_dir']}) and ignores the "
            "lora_* keys; explain that adapter instead"
        )
    _int(data, "lora_r", source, required=True)
    if not isinstance(data.get("lora_alpha"), int) or isinstance(data.get("lora_alpha"), bool):
        raise ConfigError(f"{source}: axolotl lora_alpha must be a whole number, not {data.get('lora_alpha')!r}")
    targets = data.get("lora_target_modules")
    if targets is not None and not isinstance(targets, str) and not _strings(targets):
        raise ConfigError(f"{source}: lora_target_modules must be a regex or a list of names, not {targets!r}")
    if not targets and not data.get("lora_target_linear") and not data.get("lora_target_parameters"):
        raise ConfigError(
            f"{source}: sets no lora_target_modules, lora_target_linear or lora_target_parameters, "
            "so axolotl adapts nothing"
        )
    base = data.get("base_model_config") or data.get("base_model")
    return TrainerConfig("axolotl", source, dict(data), base if isinstance(base, str) else None)


def _read_llamafactory(source: str, data: Mapping[str, Any]) -> TrainerConfig:
    kind = data.get("finetuning_type", "lora")
    if kind != "lora":
        raise ConfigError(f"{source}: LLaMA-Factory finetuning_type is {kind!r}; explain reads LoRA")
    if data.get("adapter_name_or_path") and not data.get("create_new_adapter"):
        raise ConfigError(
            f"{source}: LLaMA-Factory resumes the adapter in adapter_name_or_path "
            f"({data['adapter_name_or_path']}); explain that adapter instead"
        )
    if data.get("use_llama_pro"):
        raise ConfigError(f"{source}: use_llama_pro expands the model first; explain does not model LLaMA Pro")
    _int(data, "lora_rank", source)
    target = data.get("lora_target", "all")
    if not isinstance(target, str) and not _strings(target):
        raise ConfigError(f"{source}: lora_target must be a comma list, not {target!r}")
    base = data.get("model_name_or_path")
    return TrainerConfig("LLaMA-Factory", source, dict(data), base if isinstance(base, str) else None)


def _unsloth_cli(source: str, data: Mapping[str, Any]) -> TrainerConfig:
    lora = data["lora"]
    unknown = sorted(set(lora) - _UNSLOTH_CLI_LORA)
    if unknown:  # its pydantic model forbids extra keys
        raise ConfigError(f"{source}: unsloth's lora section has no key {unknown[0]!r}")
    if "lora_r" in lora:
        _int(lora, "lora_r", source)
    targets = lora.get("target_modules", "")
    if not isinstance(targets, str):
        raise ConfigError(f"{source}: unsloth's lora.target_modules is one comma list, not {targets!r}")
    training = data.get("training")
    training = training if isinstance(training, Mapping) else {}
    if training.get("training_type", "lora") != "lora":
        raise ConfigError(f"{source}: unsloth training_type is {training.get('training_type')!r}; explain reads LoRA")
    base = data.get("model")
    return TrainerConfig("Unsloth", source, dict(data), base if isinstance(base, str) else None)


def _unsloth_call(source: str, text: str) -> TrainerConfig:
    """The one ``Fast*.get_peft_model(model, key=literal, ...)`` call of a Python file, and its base model if named."""
    from .unsloth import FUNCTIONS

    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ConfigError(f"{source}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    calls = [
        (node, node.func.value.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get_peft_model"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in FUNCTIONS
    ]
    if len(calls) != 1:
        raise ConfigError(
            f"{source}: explain reads a Python file holding one Unsloth get_peft_model call "
            f"({', '.join(f + '.get_peft_model' for f in FUNCTIONS)}); found {len(calls)}"
        )
    ((call, function),) = calls
    if len(call.args) > 1:
        raise ConfigError(f"{source}: pass get_peft_model's arguments by keyword (after the model)")
    arguments = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ConfigError(f"{source}: get_peft_model(**...) cannot be read; write each argument out")
        try:
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ConfigError(
                f"{source}: get_peft_model argument {keyword.arg} is not a literal value explain can read"
            ) from None
    return TrainerConfig("Unsloth", source, arguments, _from_pretrained_model(tree), function)


def _from_pretrained_model(tree: ast.AST) -> str | None:
    """The model named in a ``Fast*.from_pretrained(model_name="...")`` call, if the file has one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
            values = [kw.value for kw in node.keywords if kw.arg == "model_name"] + list(node.args[:1])
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
    return None


def _int(data: Mapping[str, Any], key: str, source: str, required: bool = False) -> None:
    value = data.get(key)
    if value is None and not required:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{source}: {key} must be a positive whole number, not {value!r}")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# --------------------------------------------------------------------------- axolotl
def _axolotl(config: TrainerConfig, module: Any) -> Built:
    """axolotl loaders/adapter.py ``_build_lora_config_kwargs`` and ``_build_peft_lora_config``."""
    from .peft_compat import renamed_module_names

    cfg = config.data
    notes = []
    targets = cfg.get("lora_target_modules") or []
    if cfg.get("lora_target_linear"):
        as_list = targets if isinstance(targets, list) else [targets]
        targets = sorted(set(as_list + axolotl_linear_names(module)))
        if not isinstance(cfg.get("lora_target_modules"), list) and cfg.get("lora_target_modules"):
            notes.append(
                "lora_target_linear turns the lora_target_modules regex into one entry of a name list, "
                "where it is matched as a name, not as a regex"
            )
    kwargs: dict[str, Any] = {}
    loftq = (cfg.get("peft") or {}).get("loftq_config") or {}
    if isinstance(loftq, Mapping) and loftq.get("loftq_bits"):
        kwargs.update(loftq_config={"loftq_bits": loftq["loftq_bits"]}, init_lora_weights="loftq")
    for option, name in (
        ("peft_init_lora_weights", "init_lora_weights"),  # only when truthy: false is dropped
        ("peft_use_dora", "use_dora"),
        ("peft_use_rslora", "use_rslora"),
        ("lora_rank_pattern", "rank_pattern"),
        ("lora_alpha_pattern", "alpha_pattern"),
        ("peft_layer_replication", "layer_replication"),
        ("peft_trainable_token_indices", "trainable_token_indices"),
    ):
        if cfg.get(option):
            kwargs[name] = cfg[option]
    if cfg.get("peft_init_lora_weights") is False:
        notes.append("axolotl drops peft_init_lora_weights: false (it forwards the option only when truthy)")
    if cfg.get("peft_ensure_weight_tying") is not None:
        kwargs["ensure_weight_tying"] = cfg["peft_ensure_weight_tying"]
    parameters = cfg.get("lora_target_parameters") or []
    dropout = cfg.get("lora_dropout") or 0.0
    model_type = getattr(getattr(module, "config", None), "model_type", "")
    if dropout and (parameters or renamed_module_names(model_type)):
        # axolotl patches PEFT's ParamWrapper to take lora_dropout on expert parameters (without applying it)
        notes.append("axolotl applies no lora_dropout to expert parameters (it patches PEFT's ParamWrapper)")
        dropout = 0.0
    if cfg.get("unfrozen_parameters"):
        notes.append(
            "unfrozen_parameters runs after PEFT and freezes every parameter it does not match, LoRA weights "
            "included; not reflected here"
        )
    cls = type(module).__name__
    task = (
        "SEQ_CLS" if "SequenceClassification" in cls else "TOKEN_CLS" if "TokenClassification" in cls else "CAUSAL_LM"
    )
    kwargs = dict(
        r=cfg["lora_r"],
        lora_alpha=cfg["lora_alpha"],
        target_modules=targets,
        target_parameters=parameters,
        layers_to_transform=cfg.get("peft_layers_to_transform"),
        layers_pattern=cfg.get("peft_layers_pattern"),
        lora_dropout=dropout,
        fan_in_fan_out=bool(cfg.get("lora_fan_in_fan_out")),
        modules_to_save=cfg.get("lora_modules_to_save") or None,
        exclude_modules=cfg.get("lora_exclude_modules") or None,
        bias="none",
        task_type=task,
        **kwargs,
    )
    return Built(kwargs, notes)


def axolotl_linear_names(module: Any) -> list[str]:
    """axolotl loaders/adapter.py ``find_all_linear_names``: leaf names of Linear-like modules, minus the output embedding."""
    import torch

    names = set()
    for name, sub in module.named_modules():
        cls = type(sub).__name__
        if isinstance(sub, torch.nn.Linear) or ("Linear" in cls and cls != "LlamaLinearScalingRotaryEmbedding"):
            parts = name.split(".")
            names.add(parts[0] if len(parts) == 1 else parts[-1])
    # loaders/utils.py get_linear_embedding_layers: (input, output) embedding leaf per model_type
    output = {"gpt_neox": "embed_out", "falcon": "lm_head", "nemotron_h": "lm_head", "bailing_hybrid": "lm_head"}
    names.discard(output.get(getattr(module.config, "model_type", ""), "lm_head"))
    return sorted(names)


# --------------------------------------------------------------------------- LLaMA-Factory
def _llamafactory(config: TrainerConfig, module: Any) -> Built:
    """LLaMA-Factory ``FinetuningArguments.__post_init__`` and model/adapter.py ``_setup_lora_tuning``."""
    cfg = config.data
    model_type = getattr(module.config, "model_type", "")
    rank = cfg.get("lora_rank", 8)
    target = _split(cfg.get("lora_target", "all")) or []
    freeze_vision = cfg.get("freeze_vision_tower", True)
    dropped: list[tuple[str, str, str]] = []
    if target == ["all"]:
        targets = llamafactory_linear_modules(module, freeze_vision)
    else:
        targets = list(target)
    composite = LLAMAFACTORY_COMPOSITE.get(model_type)
    if composite is not None:
        # model_utils/visual.py patch_target_modules: entries are substrings of full names; frozen parts are left out
        projector, vision, language, conflicts = composite
        forbidden = set(conflicts)
        if freeze_vision:
            forbidden.update(vision)
        if cfg.get("freeze_multi_modal_projector", True):
            forbidden.update(projector)
        if cfg.get("freeze_language_model", False):
            forbidden.update(language)
        names = [name for name, _ in module.named_modules()]
        kept = [n for n in names if any(t in n for t in targets) and not any(f in n for f in forbidden)]
        if target != ["all"]:
            dropped = [
                ("lora_target", t, f"is part of no module name outside the frozen parts of this {model_type}")
                for t in targets
                if not any(t in n for n in kept)
            ]
        targets = kept
    modules_to_save = _split(cfg.get("additional_target"))
    notes = []
    if cfg.get("resize_vocab") and modules_to_save is None:
        embeddings = [module.get_input_embeddings(), module.get_output_embeddings()]
        modules_to_save = sorted(
            {n.rsplit(".", 1)[-1] for n, m in module.named_modules() if n and any(m is e for e in embeddings)}
        )
        notes.append(f"resize_vocab trains the embeddings whole: modules_to_save {', '.join(modules_to_save)}")
    kwargs: dict[str, Any] = {
        "r": rank,
        "target_modules": targets,
        "lora_alpha": cfg.get("lora_alpha") or rank * 2,  # "(default: lora_rank * 2)"; 0 too
        "lora_dropout": cfg.get("lora_dropout", 0.0),
        "use_rslora": bool(cfg.get("use_rslora", False)),
        "use_dora": bool(cfg.get("use_dora", False)),
        "modules_to_save": modules_to_save,
    }
    if cfg.get("use_unsloth"):
        from .unsloth import UnslothRefusal, lora_kwargs

        try:
            built = lora_kwargs("FastLanguageModel", module, kwargs)
        except UnslothRefusal as exc:
            raise ConfigError(f"{config.source}: use_unsloth: {exc}") from None
        return Built(built, [*notes, "use_unsloth: LLaMA-Factory calls Unsloth's FastLanguageModel.get_peft_model"])
    if cfg.get("pissa_init"):
        iterations = cfg.get("pissa_iter", 16)
        kwargs["init_lora_weights"] = "pissa" if iterations == -1 else f"pissa_niter_{iterations}"
    return Built(dict(task_type="CAUSAL_LM", inference_mode=False, **kwargs), notes, dropped)


def llamafactory_linear_modules(module: Any, freeze_vision_tower: bool = True) -> list[str]:
    """LLaMA-Factory model/model_utils/misc.py ``find_all_linear_modules``: what ``lora_target: all`` means."""
    model_type = getattr(module.config, "model_type", "")
    forbidden = {"lm_head"}
    if model_type == "chatglm":
        forbidden.add("output_layer")
    elif model_type == "internlm2":
        forbidden.add("output")
    composite = LLAMAFACTORY_COMPOSITE.get(model_type)
    if composite is not None:
        forbidden.update(composite[0])
        if freeze_vision_tower:
            forbidden.update(composite[1])
    names = set()
    for name, sub in module.named_modules():
        if any(f in name for f in forbidden):
            continue
        cls = type(sub).__name__
        if "Linear" in cls and "Embedding" not in cls:
            names.add(name.split(".")[-1])
    return sorted(names)


def _split(value: Any) -> list[str] | None:
    """hparams/finetuning_args.py ``split_arg``: a comma string becomes a list of stripped names."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")]
    return list(value) if value is not None else None


# --------------------------------------------------------------------------- Unsloth
def _unsloth(config: TrainerConfig, module: Any) -> Built:
    from .unsloth import DEFAULT_TARGET_MODULES, UnslothRefusal, lora_kwargs

    notes = []
    if config.function is not None:  # a get_peft_model call
        function, arguments = config.function, dict(config.data)
    else:  # unsloth train --config: studio/backend/core/training/trainer.py
        lora = config.data["lora"]
        vision = _is_vision_model(module)
        targets = [t.strip() for t in (lora.get("target_modules") or "").split(",") if t.strip()]
        arguments = {
            "r": lora.get("lora_r", 16),
            "lora_alpha": lora.get("lora_alpha", 16),
            "lora_dropout": lora.get("lora_dropout", 0.0),
            "bias": "none",
            "use_rslora": bool(lora.get("use_rslora", False)),
        }
        if lora.get("use_dora"):
            arguments["use_dora"] = True
        if lora.get("use_loftq"):
            arguments.update(init_lora_weights="loftq", loftq_config={"loftq_bits": 4, "loftq_iter": 1})
        else:
            arguments["loftq_config"] = None
        if vision:
            function = "FastVisionModel"
            # vision models: target_modules is ignored; all-linear or Unsloth's own choice, scoped by the flags
            arguments["target_modules"] = "all-linear" if lora.get("vision_all_linear") else None
            for flag in (
                "finetune_vision_layers",
                "finetune_language_layers",
                "finetune_attention_modules",
                "finetune_mlp_modules",
            ):
                arguments[flag] = bool(lora.get(flag, True))
            if targets:
                notes.append("unsloth's config ignores lora.target_modules for a vision model")
        else:
            function = "FastLanguageModel"
            arguments["target_modules"] = (
                "all-linear" if targets == ["all-linear"] else targets or list(DEFAULT_TARGET_MODULES)
            )
    try:
        kwargs = lora_kwargs(function, module, arguments)
    except UnslothRefusal as exc:
        raise ConfigError(f"{config.source}: Unsloth's {function}.get_peft_model raises: {exc}") from None
    if arguments.get("target_parameters") is None and kwargs.get("target_parameters"):
        notes.append(
            "target_parameters left out: Unsloth adds the experts' "
            f"{', '.join(kwargs['target_parameters'])} itself (write target_parameters=[] to stop it)"
        )
    return Built(kwargs, notes)


def _is_vision_model(module: Any) -> bool:
    config = getattr(module, "config", None)
    return getattr(config, "vision_config", None) is not None
