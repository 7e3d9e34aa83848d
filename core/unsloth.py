"""What Unsloth's ``get_peft_model`` hands to PEFT: its argument handling, restated so it runs without a GPU.

Unsloth cannot be imported without a GPU (its CPU backend is another function), so this module
restates the argument handling of Unsloth 2026.10.9: ``unsloth/models/llama.py``
``FastLlamaModel.get_peft_model`` (the "Llama path": ``FastLanguageModel`` on llama, mistral, gemma,
gemma2, qwen2, qwen3), ``unsloth/models/vision.py`` ``FastBaseModel.get_peft_model`` (``FastModel``,
``FastVisionModel``, and ``FastLanguageModel`` on every other model_type, with
``finetune_vision_layers=False``), their helpers in ``models/_utils.py`` and unsloth_zoo's
``peft_utils.get_peft_regex``. ``lora_kwargs`` returns the ``peft.LoraConfig`` keyword arguments it
would build for a model built on the meta device. Left out, as not reachable for plain transformers
models or not argument handling: vLLM ``fast_inference``, quantised per-expert layouts, the
Gemma-3n / Gemma-4 / Voxtral audio branches, Mamba ``out_proj`` dropping, speech and diffusion models,
re-entry on a model that already has adapters.
"""

from __future__ import annotations

import inspect as pyinspect
import re
from collections.abc import Sequence
from typing import Any

#: model_types FastLanguageModel.from_pretrained loads with FastLlamaModel (unsloth/models/loader.py)
LLAMA_PATH = frozenset({"llama", "mistral", "gemma", "gemma2", "qwen2", "qwen3"})
#: the entry points whose get_peft_model a call may name
FUNCTIONS = ("FastLanguageModel", "FastModel", "FastVisionModel", "FastTextModel")
#: llama.py _DEFAULT_TARGET_MODULES
DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_EMBEDDINGS = frozenset(("embed_tokens", "lm_head"))
_MOE_MLP = frozenset(("gate_proj", "up_proj", "down_proj", "gate_up_proj"))
_ROUTERS = frozenset(("router",))
# get_peft_model's own keywords that never reach LoraConfig
_CALL_ONLY = (
    "use_gradient_checkpointing",
    "random_state",
    "max_seq_length",
    "temporary_location",
    "qat_scheme",
    "offload_layers",
    "checkpoint_skip_layers",
    "block_swap_layers",
    "prefetch_depth",
)
_UNSET: Any = object()


class UnslothRefusal(Exception):
    """Unsloth's own ``get_peft_model`` would raise for these arguments on this model (the message is its)."""


def lora_kwargs(function: str, module: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """The ``LoraConfig`` keyword arguments ``<function>.get_peft_model(module, **arguments)`` builds.

    ``function`` is ``FastLanguageModel``, ``FastModel``, ``FastVisionModel`` or ``FastTextModel``
    (a trailing ``.get_peft_model`` is ignored). Raises ``UnslothRefusal`` where Unsloth raises.
    """
    entry = function.removesuffix(".get_peft_model")
    call = dict(arguments)
    if entry not in FUNCTIONS:
        raise UnslothRefusal(f"unknown entry point {function!r}; Unsloth's are {', '.join(FUNCTIONS)}")
    model_type = getattr(getattr(module, "config", None), "model_type", "")
    if entry == "FastLanguageModel" and model_type in LLAMA_PATH:
        return _llama_path(module, **call)
    if entry == "FastLanguageModel":
        # llama.py: FastLlamaModel.get_peft_model forwards to FastBaseModel with these defaults filled in
        for key, flag in (
            ("finetune_vision_layers", False),
            ("finetune_language_layers", True),
            ("finetune_attention_modules", True),
            ("finetune_mlp_modules", True),
        ):
            call.setdefault(key, flag)
    return _base_path(module, **call)


# --------------------------------------------------------------------------- FastLlamaModel.get_peft_model
def _llama_path(
    model: Any,
    r: Any = 16,
    target_modules: Any = _UNSET,
    lora_alpha: Any = 16,
    lora_dropout: Any = 0.0,
    bias: Any = "none",
    layers_to_transform: Any = None,
    layers_pattern: Any = None,
    finetune_last_n_layers: Any = None,
    use_rslora: Any = False,
    modules_to_save: Any = None,
    init_lora_weights: Any = True,
    loftq_config: Any = _UNSET,
    target_parameters: Any = None,
    ensure_weight_tying: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """llama.py l. 4569-5061: extra keywords go on to ``LoraConfig`` (an unknown one is its TypeError)."""
    if target_modules is _UNSET:
        target_modules = list(DEFAULT_TARGET_MODULES)
    loftq_config = {} if loftq_config is _UNSET or loftq_config is None else loftq_config
    for key in _CALL_ONLY:
        kwargs.pop(key, None)
    if "alora_invocation_tokens" in kwargs:
        raise UnslothRefusal("Unsloth does not support aLoRA (alora_invocation_tokens)")
    layers_to_transform = _as_layer_list(layers_to_transform)
    if type(r) is not int or r <= 0:
        raise UnslothRefusal(f"Unsloth: Rank of {r} must be an integer larger than 0.")
    if init_lora_weights == "eva":
        raise UnslothRefusal("Unsloth: eva is not supported by FastLanguageModel's fused LoRA path; use FastModel")
    if init_lora_weights == "loftq" and loftq_config == {}:
        loftq_config = {"loftq_bits": 4, "loftq_iter": 1}
    if type(use_rslora) is not bool:
        raise UnslothRefusal(f"Unsloth: use_rslora must be True or False, not {use_rslora!r}")
    if type(modules_to_save) is tuple:
        modules_to_save = list(modules_to_save)
    target_modules, modules_to_save, moved = _redirect_embeddings(target_modules, modules_to_save)
    if moved and isinstance(target_modules, list) and not target_modules and not target_parameters:
        raise UnslothRefusal("Unsloth: no LoRA targets are left once embed_tokens / lm_head move to modules_to_save")
    ensure_weight_tying = _weight_tying(model, modules_to_save, ensure_weight_tying)
    modules_to_save = _drop_tied_output(model, modules_to_save, ensure_weight_tying)
    # a str is one PEFT regex or "all-linear"; a list is kept (unknown names only print a message)
    final_modules = target_modules if isinstance(target_modules, str) else list(target_modules)
    names = dict(model.named_modules(remove_duplicate=False))
    for entry in modules_to_save or ():
        if _embedding_leaf(entry) is None:
            classes = [type(m).__name__ for key, m in names.items() if key.endswith(entry)]
            if not (classes and all("Norm" in c for c in classes)):
                raise UnslothRefusal(
                    f"Unsloth: Module = {entry} is not allowed. Only 'lm_head', 'embed_tokens' and normalization "
                    "layers are allowed. To fully train other modules, load and call get_peft_model through FastModel."
                )
    if isinstance(modules_to_save, (list, tuple)):
        modules_to_save = sorted(set(modules_to_save))  # Unsloth takes list(set(...)): the order is lost
    moe_modules = _moe_target_modules(model, target_modules)
    if target_parameters is None:  # the MoE auto-add, only when target_parameters was left out
        target_parameters = _moe_target_parameters(model, target_modules)
    if moe_modules:
        final_modules = _add_moe_modules(final_modules, moe_modules)
    layers_to_transform = _last_n_layers(model, finetune_last_n_layers, layers_to_transform)
    expanded = isinstance(final_modules, str) and layers_to_transform is not None
    final_modules = _regex_as_names(model, final_modules, layers_to_transform, layers_pattern)
    target_parameters = _parameters_in_layers(model, target_parameters, layers_to_transform, layers_pattern)
    if expanded:
        layers_to_transform = layers_pattern = None
    return dict(
        r=r,
        lora_alpha=lora_alpha,
        target_modules=final_modules,
        lora_dropout=lora_dropout,
        bias=bias,
        task_type="SEQ_CLS" if "Classification" in type(model).__name__ else "CAUSAL_LM",
        layers_to_transform=layers_to_transform,
        layers_pattern=layers_pattern,
        init_lora_weights=init_lora_weights,
        loftq_config=loftq_config,
        use_rslora=use_rslora,
        modules_to_save=modules_to_save,
        target_parameters=target_parameters,
        ensure_weight_tying=ensure_weight_tying,
        **kwargs,
    )


# --------------------------------------------------------------------------- FastBaseModel.get_peft_model
def _base_path(
    model: Any,
    r: Any = 16,
    target_modules: Any = None,
    lora_alpha: Any = 16,
    lora_dropout: Any = 0.0,
    bias: Any = "none",
    finetune_vision_layers: Any = True,
    finetune_language_layers: Any = True,
    finetune_attention_modules: Any = True,
    finetune_mlp_modules: Any = True,
    finetune_last_n_layers: Any = None,
    layers_to_transform: Any = None,
    layers_pattern: Any = None,
    use_rslora: Any = False,
    modules_to_save: Any = None,
    init_lora_weights: Any = True,
    loftq_config: Any = _UNSET,
    task_type: Any = "CAUSAL_LM",
    target_parameters: Any = None,
    ensure_weight_tying: Any = None,
    finetune_audio_layers: Any = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """vision.py l. 4910-5170: keywords ``LoraConfig`` does not take are dropped silently here."""
    from peft import LoraConfig

    for key in _CALL_ONLY:
        kwargs.pop(key, None)
    layers_to_transform = _as_layer_list(layers_to_transform)
    if type(r) is not int or r <= 0:
        raise UnslothRefusal(f"Unsloth: Rank of {r} must be an integer larger than 0.")
    if target_modules == "all-linear":  # not PEFT's all-linear: Unsloth's regex over every part of the model
        finetune_vision_layers = finetune_language_layers = finetune_attention_modules = finetune_mlp_modules = True
    detection = list(target_modules) if isinstance(target_modules, (list, tuple)) else None
    target_modules, modules_to_save, moved = _redirect_embeddings(
        target_modules, modules_to_save, allow=bool(finetune_language_layers)
    )
    if moved and isinstance(target_modules, list) and not target_modules and not target_parameters:
        raise UnslothRefusal("Unsloth: no LoRA targets are left once embed_tokens / lm_head move to modules_to_save")
    ensure_weight_tying = _weight_tying(model, modules_to_save, ensure_weight_tying)
    modules_to_save = _drop_tied_output(model, modules_to_save, ensure_weight_tying)
    if target_modules is None or target_modules == "all-linear":
        target_modules = get_peft_regex(
            model, finetune_vision_layers, finetune_language_layers, finetune_attention_modules, finetune_mlp_modules
        )
    elif not isinstance(target_modules, (list, tuple, str)):
        raise UnslothRefusal(f"Unsloth: target_modules must be a list or a string, not {target_modules!r}")
    else:
        scoping = not (
            finetune_vision_layers and finetune_language_layers and finetune_attention_modules and finetune_mlp_modules
        )
        if isinstance(target_modules, (list, tuple)) and (scoping or finetune_audio_layers):
            # an explicit list is ANDed with the finetune_* filters: it becomes Unsloth's regex of leaf names
            target_modules = get_peft_regex(
                model,
                finetune_vision_layers,
                finetune_language_layers,
                finetune_attention_modules,
                finetune_mlp_modules,
                target_modules=list(target_modules),
            )
    detect = (
        detection if (detection is not None and finetune_mlp_modules and finetune_language_layers) else target_modules
    )
    moe_modules = _moe_target_modules(model, detect)
    if target_parameters is None:
        target_parameters = _moe_target_parameters(model, detect)
    if moe_modules:
        target_modules = _add_moe_modules(target_modules, moe_modules)
    layers_to_transform = _last_n_layers(model, finetune_last_n_layers, layers_to_transform)
    expanded = isinstance(target_modules, str) and layers_to_transform is not None
    target_modules = _regex_as_names(model, target_modules, layers_to_transform, layers_pattern)
    target_parameters = _parameters_in_layers(model, target_parameters, layers_to_transform, layers_pattern)
    if expanded:
        layers_to_transform = layers_pattern = None
    if loftq_config is _UNSET or loftq_config is None:
        loftq_config = {}
    if init_lora_weights == "loftq" and loftq_config == {}:
        loftq_config = {"loftq_bits": 4, "loftq_iter": 1}
    local = dict(
        r=r,
        target_modules=target_modules,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        bias=bias,
        layers_to_transform=layers_to_transform,
        layers_pattern=layers_pattern,
        use_rslora=use_rslora,
        modules_to_save=modules_to_save,
        init_lora_weights=init_lora_weights,
        loftq_config=loftq_config,
        task_type=task_type,
        target_parameters=target_parameters,
        ensure_weight_tying=ensure_weight_tying,
        **kwargs,
    )
    allowed = pyinspect.signature(LoraConfig).parameters.keys()
    return {key: value for key, value in local.items() if key in allowed}


# --------------------------------------------------------------------------- unsloth_zoo get_peft_regex
def get_peft_regex(
    model: Any,
    finetune_vision_layers: bool = True,
    finetune_language_layers: bool = True,
    finetune_attention_modules: bool = True,
    finetune_mlp_modules: bool = True,
    target_modules: Sequence[str] | None = None,
    vision_tags: Sequence[str] = ("vision", "image", "visual", "patch"),
    language_tags: Sequence[str] = ("language", "text"),
    attention_tags: Sequence[str] = ("self_attn", "attention", "attn", "mixer"),
    mlp_tags: Sequence[str] = ("mlp", "feed_forward", "ffn", "dense", "mixer"),
) -> str:
    """unsloth_zoo/peft_utils.py ``get_peft_regex`` (without the audio branches): the regex Unsloth targets.

    Every entry of ``target_modules`` is a leaf name (a dotted name can never match); only leaves
    under an attention / MLP tag and either a language tag or ``model.layers.N`` survive.
    """
    import torch

    if not finetune_vision_layers and not finetune_language_layers:
        raise UnslothRefusal(
            "Unsloth: No layers to finetune - please select to finetune the vision and/or the language layers!"
        )
    if not finetune_attention_modules and not finetune_mlp_modules:
        raise UnslothRefusal(
            "Unsloth: No modules to finetune - please select to finetune the attention and/or the mlp modules!"
        )
    linear = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    counts: dict[str, int] = {}
    for name in linear:
        leaf = name.rsplit(".")[-1]
        counts[leaf] = counts.get(leaf, 0) + 1
    in_stack = {name.rsplit(".")[-1] for name in linear if re.search(r"\.\d+\.", name)}
    if target_modules is None:
        # a leaf seen once outside a numbered stack is a head (lm_head) and is left out; routers too
        only = [leaf for leaf, c in counts.items() if leaf not in _ROUTERS and (c != 1 or leaf in in_stack)]
    else:
        only = list(target_modules)
    parts = "|".join(
        (list(vision_tags) if finetune_vision_layers else [])
        + (list(language_tags) if finetune_language_layers else [])
    )
    components = "|".join(
        (list(attention_tags) if finetune_attention_modules else []) + (list(mlp_tags) if finetune_mlp_modules else [])
    )
    leaves = r"(?:" + "|".join(re.escape(x) for x in only) + r")"
    regex = r".*?(?:" + parts + r").*?(?:" + components + r").*?\." + leaves
    if finetune_language_layers:
        regex = (
            r"(?:"
            + regex
            + r")|(?:\bmodel\.layers\.[\d]{1,}(?!.*\.experts\.\d)\..*?(?:"
            + components
            + r").*?\.(?:"
            + leaves
            + r"))"
        )
    if not any(re.fullmatch(regex, name, flags=re.DOTALL) for name in linear):
        # fallback: drop the model-part requirement
        regex = (
            r"(?!(?:.*\.)?(?:codec_model|audio_tokenizer|acoustic_tokenizer|semantic_tokenizer)\.)"
            r".*?(?:" + components + r").*?\." + leaves
        )
    modules = dict(model.named_modules())
    excluded = [
        name
        for name, m in modules.items()
        if name
        and next(m.parameters(recurse=False), None) is None
        and next(m.children(), None) is None
        and re.fullmatch(regex, name, flags=re.DOTALL)
    ]
    if target_modules is None:  # _moe_router_gate_names: a `gate` Linear beside `experts`
        for name, m in modules.items():
            parent, _, leaf = name.rpartition(".")
            if (
                leaf == "gate"
                and isinstance(m, torch.nn.Linear)
                and parent in modules
                and (hasattr(modules[parent], "experts") or "router" in type(modules[parent]).__name__.lower())
                and re.fullmatch(regex, name, flags=re.DOTALL)
            ):
                excluded.append(name)
    if excluded:
        regex = r"(?!(?:" + "|".join(re.escape(x) for x in excluded) + r")$)(?:" + regex + r")"
    if not any(re.search(regex, name, flags=re.DOTALL) for name in linear):
        raise UnslothRefusal(
            f"Unsloth: No layers to finetune? You most likely specified target_modules = {target_modules} incorrectly!"
        )
    return regex


# --------------------------------------------------------------------------- helpers (models/_utils.py, vision.py)
def _embedding_leaf(name: Any) -> str | None:
    if type(name) is not str:
        return None
    leaf = name.rsplit(".", 1)[-1]
    return leaf if leaf in _EMBEDDINGS else None


def _as_layer_list(layers: Any) -> Any:
    """A scalar layer index becomes a list ("PEFT < 0.21 drops a scalar layer 0 with layers_pattern")."""
    return [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers


def _redirect_embeddings(target_modules: Any, modules_to_save: Any, allow: bool = True) -> tuple[Any, Any, tuple]:
    """_redirect_embedding_targets: embed_tokens / lm_head in a target *list* move to modules_to_save."""
    if not isinstance(target_modules, (list, tuple)) or not allow:
        return target_modules, modules_to_save, ()
    target_modules = list(dict.fromkeys(target_modules))
    moved = [x for x in target_modules if _embedding_leaf(x)]
    if not moved:
        return target_modules, modules_to_save, ()
    remaining = [x for x in target_modules if not _embedding_leaf(x)]
    if modules_to_save is None:
        saved = []
    else:
        saved = [modules_to_save] if isinstance(modules_to_save, str) else list(modules_to_save)
    saved.extend(x for x in moved if x not in saved)
    return remaining, saved, tuple(moved)


def _weight_tying(model: Any, modules_to_save: Any, requested: Any) -> bool:
    """_resolve_ensure_weight_tying / _effective_weight_tying: tie when both embeddings are saved on a tied model."""
    leaves = {_embedding_leaf(m) for m in (modules_to_save or ())} - {None}
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    wanted = bool(requested) if requested is not None else leaves >= _EMBEDDINGS and tied
    return wanted and tied and "embed_tokens" in leaves


def _drop_tied_output(model: Any, modules_to_save: Any, tying: bool) -> Any:
    """_drop_tied_output_module: with tying, PEFT re-ties lm_head to the saved embedding."""
    leaves = {_embedding_leaf(m) for m in (modules_to_save or ())} - {None}
    if not tying or not getattr(model.config, "tie_word_embeddings", False) or not leaves >= _EMBEDDINGS:
        return modules_to_save
    return [x for x in modules_to_save if _embedding_leaf(x) != "lm_head"]


def _is_moe(model: Any) -> bool:
    config = model.config
    for cfg in (config, getattr(config, "text_config", None)):
        for attr in ("num_experts", "n_routed_experts", "num_local_experts"):
            n = getattr(cfg, attr, None) if cfg is not None else None
            if n is not None:
                return bool(n > 0)
    return False


def _moe_wanted(target_modules: Any) -> set[str]:
    """_moe_target_set: which expert projections a request names."""
    if target_modules is None:
        return set()
    if isinstance(target_modules, str):  # _moe_target_set_from_string
        if target_modules in _MOE_MLP:
            return {target_modules}
        is_regex = re.search(r"[*+?()[\]{}|\\^$]", target_modules) is not None
        if not is_regex or not any(t in target_modules for t in ("mlp", "ffn", "feed_forward", "experts")):
            return set()
        named = {n for n in _MOE_MLP if n in target_modules}
        if named:
            return named
        if (
            re.search(r"(?<![qkvo]_)(?<!out_)(?<!in_)proj", target_modules)
            or "mlp|feed_forward|ffn|dense" in target_modules
        ):
            return set(_MOE_MLP)
        return set()
    return {t for t in target_modules if isinstance(t, str) and "." not in t and t in _MOE_MLP}


def _moe_target_parameters(model: Any, target_modules: Any) -> list[str] | None:
    """get_moe_target_parameters: the fused 3-D expert parameters a request for gate/up/down_proj reaches."""
    if not _is_moe(model) or target_modules is None:
        return None
    wanted = _moe_wanted(target_modules)
    names = [n for n, _ in model.named_parameters()]

    def exists(p: str) -> bool:
        return any(n == p or n.endswith("." + p) for n in names)

    def pick(default: str, alternate: str) -> str:
        for n in names:
            if n == default or n.endswith("." + default):
                return default
            if n == alternate or n.endswith("." + alternate):
                return alternate
        return default

    out = []
    if wanted & {"gate_proj", "up_proj", "gate_up_proj"}:
        fused = pick("mlp.experts.gate_up_proj", "experts.gate_up_proj")
        if exists(fused):
            out.append(fused)
        else:  # unfused 3-D gate / up (NemotronH)
            for leaf, keys in (("gate_proj", {"gate_proj", "gate_up_proj"}), ("up_proj", {"up_proj", "gate_up_proj"})):
                p = pick(f"mlp.experts.{leaf}", f"experts.{leaf}")
                if wanted & keys and exists(p):
                    out.append(p)
    if "down_proj" in wanted:
        p = pick("mlp.experts.down_proj", "experts.down_proj")
        if exists(p):
            out.append(p)
    return out or None


def _moe_target_modules(model: Any, target_modules: Any) -> list[str]:
    """get_moe_target_modules: per-expert Linear lists under ``...experts`` get every expert's name added."""
    import torch

    if not _is_moe(model) or target_modules is None:
        return []
    wanted = _moe_wanted(target_modules)
    if not wanted:
        return []
    gate, up = bool(wanted & {"gate_proj", "gate_up_proj"}), bool(wanted & {"up_proj", "gate_up_proj"})
    down = "down_proj" in wanted
    out: set[str] = set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        parent, _, leaf = name.rpartition(".")
        if not parent.endswith("experts") or not all(isinstance(c, torch.nn.Linear) for c in module):
            continue
        low = leaf.lower()
        is_down = "down" in low
        is_gate, is_up = (not is_down) and "gate" in low, (not is_down) and "up" in low
        if is_down and not down:
            continue
        if is_gate and is_up:
            if not (gate or up):
                continue
        elif (is_gate and not gate) or (is_up and not up):
            continue
        out.update(f"{leaf}.{i}" for i in range(len(module)))
    return sorted(out)


def _add_moe_modules(target_modules: Any, moe: list[str]) -> Any:
    if not moe:
        return target_modules
    if isinstance(target_modules, str):
        if target_modules == "all-linear":
            return target_modules
        leaves = sorted({t.rsplit(".", 1)[0] for t in moe})
        return f"(?:{target_modules})|(?:" + r".*\.experts\.(?:" + "|".join(map(re.escape, leaves)) + r")\.\d+)"
    target_modules = list(target_modules)
    return target_modules + [t for t in moe if t not in target_modules]


def _total_layers(model: Any) -> int | None:
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        for name in ("num_hidden_layers", "n_layer", "n_layers", "num_layers"):
            value = getattr(cfg, name, None) if cfg is not None else None
            if isinstance(value, int) and value > 0:
                return value
    return None


def _in_layers(name: str, layers: Any, pattern: Any = None) -> bool:
    """vision.py _in_layers: PEFT's layer-index rule (``peft_compat.layer_index``)."""
    from .peft_compat import layer_index

    index = layer_index(name, pattern)
    if index is None:
        return False
    return index == layers if isinstance(layers, int) else index in layers


def _regex_as_names(model: Any, target_modules: Any, layers: Any, pattern: Any = None) -> Any:
    """vision.py _regex_targets_as_names: a regex plus layers_to_transform becomes the full names in those layers."""
    if layers is None or not isinstance(target_modules, str):
        return target_modules
    modules = [n for n, _ in model.named_modules() if n]
    if target_modules.lower() == "all-linear":
        from peft import LoraConfig

        from .peft_compat import all_linear_targets

        linear = all_linear_targets(LoraConfig(target_modules="all-linear"), model) or ()
        names = [n for n in modules if n in linear or n.rsplit(".", 1)[-1] in linear]
    else:
        names = [n for n in modules if re.fullmatch(target_modules, n)]
    return [n for n in names if _in_layers(n, layers, pattern)]


def _parameters_in_layers(model: Any, target_parameters: Any, layers: Any, pattern: Any = None) -> Any:
    """vision.py _target_parameters_in_layers: PEFT ignores layers for parameters, so Unsloth names them."""
    if layers is None or not target_parameters:
        return target_parameters
    targets = set(target_parameters)
    keys = [f"{m}.{p}" for m, mod in model.named_modules() if m for p, _ in mod.named_parameters(recurse=False)]
    keys = [k for k in keys if k in targets or any(k.endswith("." + t) for t in targets)]
    return [k for k in keys if _in_layers(k, layers, pattern)] or None


def _last_n_layers(model: Any, last: Any, layers: Any) -> Any:
    if last is None or layers is not None:
        return layers
    total = _total_layers(model)
    if not total:
        return layers
    n = max(1, min(int(last), total))
    return list(range(total - n, total))
