"""The fast path: a ModelMap for known architectures from ``config.json`` alone, without torch or transformers.

Importing transformers' config machinery imports torch, which costs seconds. For the llama,
mistral/mixtral and phi/phi3/phimoe families, and for the declarative entries of ``registry.toml``
(qwen2, gpt2, falcon), the module tree transformers builds follows from a handful of config
fields, so ``fast_model_map`` writes out the same leaves, module names, parameter names and
parameter count the meta-device model would have, and asks the same plugin (through
``manager.classify``) for the roles. Anything it does not model exactly -- unknown
architectures classes, quantization, nested configs, odd rope scaling, third-party plugins,
values transformers would reject -- returns ``None`` and the caller takes the slow path, which
builds the model. ``tests/test_fastpath.py`` proves the equality against transformers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .inspection import Leaf, ModelMap
from .loading import _COUNT_LIMIT  # above it the slow path refuses, so the fast path must too (imports no torch)

#: model_type -> (class-name prefix, the plugin that answers for it)
FAMILIES = {
    "llama": ("Llama", "llama"),
    "mistral": ("Mistral", "mistral"),
    "mixtral": ("Mixtral", "mistral"),
    "phi": ("Phi", "phi"),
    "phi3": ("Phi3", "phi"),
    "phimoe": ("Phimoe", "phi"),
    "qwen2": ("Qwen2", "declarative"),
    "gpt2": ("GPT2", "declarative"),
    "falcon": ("Falcon", "declarative"),
}

#: the causal-LM class each family's fast tree is (a config naming another head takes the slow path)
HEADS = {model_type: f"{prefix}ForCausalLM" for model_type, (prefix, _) in FAMILIES.items()} | {"gpt2": "GPT2LMHeadModel"}

#: transformers' config defaults this module relies on, per model_type (tested against the config classes).
DEFAULTS = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, tie_word_embeddings=False, attention_bias=False, mlp_bias=False),
    "mistral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "mixtral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False, num_local_experts=8),
    "phi": dict(vocab_size=51200, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                num_attention_heads=32, tie_word_embeddings=False, qk_layernorm=False),
    "phi3": dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                 num_attention_heads=32, tie_word_embeddings=False, pad_token_id=32000),
    "phimoe": dict(vocab_size=32064, hidden_size=4096, intermediate_size=6400, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False, num_local_experts=16,
                   attention_bias=False, lm_head_bias=False),
    "qwen2": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "gpt2": dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_inner=None, n_positions=1024,
                 tie_word_embeddings=True, add_cross_attention=False),
    "falcon": dict(vocab_size=65024, hidden_size=4544, num_hidden_layers=32, num_attention_heads=71,
                   new_decoder_architecture=False, multi_query=True, parallel_attn=True, bias=False,
                   num_ln_in_parallel_attn=None, alibi=False, tie_word_embeddings=True),
}

#: module names PEFT rewrites into expert parameters (``targeting.peft_renamed_leaves``; tested to agree)
PEFT_RENAMED = {"mixtral": frozenset({"gate", "w1", "w2", "w3"})}

_BOOL_FIELDS = ("tie_word_embeddings", "attention_bias", "mlp_bias", "qk_layernorm", "lm_head_bias")
_INT_LIMIT = 2**31 - 1  # sizes torch takes without overflow


def fast_model_map(source: Any, plugin_manager: Any = None, plugin: str | None = None) -> ModelMap | None:
    """The ModelMap ``inspect(source)`` would return, built from ``config.json`` alone, or ``None``.

    ``source`` is a folder holding ``config.json``, a ``config.json`` path or a hub id whose
    ``config.json`` is in the local Hugging Face cache. ``None`` means "take the slow path": the
    source is something else, the model_type is not a fast-path family, the config has anything
    not modelled exactly, a third-party plugin is installed, or ``plugin`` forces another plugin.
    """
    file = _config_file(source)
    if file is None:
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # the slow path words the error
    if not isinstance(data, dict):
        return None
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        return None
    prefix, family_plugin = FAMILIES[model_type]
    if plugin is not None and plugin != family_plugin:
        return None
    cfg = _settings(data, model_type)
    if cfg is None:
        return None
    from .manager import BUILTIN_PLUGINS, classify, get_plugin_manager, plugin_registry

    pm = plugin_manager if plugin_manager is not None else get_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    # Third-party plugins are asked first and may look at the model itself: only the built-ins are modelled.
    if family_plugin not in names or not names <= set(BUILTIN_PLUGINS):
        return None
    registry, warnings = plugin_registry(pm)
    if model_type not in registry.architectures:
        return None
    tree = _BUILDERS.get(model_type, _build_tree)(model_type, prefix, cfg)
    leaves = tree.leaves(registry)
    answer = classify(pm, model_type=model_type, config=_Config(model_type, cfg), leaves=leaves, model=None,
                      registry=registry, forced=plugin)
    if answer.plugin != family_plugin:
        return None
    label = os.fspath(source) if isinstance(source, os.PathLike) else source
    return ModelMap(
        model=label,
        model_type=model_type,
        plugin=answer.plugin,
        leaves=leaves,
        roles=answer.roles,
        warnings=warnings + answer.warnings,
        base_parameters=tree.parameter_count(),
        all_module_names=tuple(name for name, _ in tree.modules),
        null_reasons=answer.null_reasons,
        parameter_names=tuple(name for name, _ in tree.parameters()),
        peft_renamed=PEFT_RENAMED.get(model_type, frozenset()),
    )


def _config_file(source: Any) -> Path | None:
    """The ``config.json`` a path or cached hub id names, found without transformers."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source.strip():
        return None
    from .errors import LoraRegistryError
    from .loading import _looks_like_path, cached_config_file, local_config_file

    try:
        file = local_config_file(source)
        if file is not None or _looks_like_path(source) or "/" not in source:
            return file
        return cached_config_file(source)
    except LoraRegistryError:
        return None  # the slow path words the error


def _number(low: float, high: float, *, low_open: bool = False, whole: bool = True):
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float) if whole else float):
            return False
        return (low < value if low_open else low <= value) and value <= high
    return check


def _whole(low: int = 1, high: int = _INT_LIMIT):
    return lambda value: not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _optional(check):
    return lambda value: value is None or check(value)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _token_ids(value: Any) -> bool:
    ids = value if isinstance(value, list) else [value]
    return value is None or (bool(ids) and all(_whole(0)(i) for i in ids))


_ACTIVATIONS = ("silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "quick_gelu")
_PROBABILITY = _number(0, 0.999)

# Every key the fast path accepts, with the values it is sure transformers accepts too (its config classes
# validate field types, and the model classes read the values). Any other key, or any other value, takes
# the slow path, so the fast path never answers where building the model would fail.
_COMMON = {
    "model_type": _text, "architectures": lambda v: v is None or isinstance(v, list),
    "transformers_version": _text, "_name_or_path": _text,
    "torch_dtype": lambda v: v in (None, "float32", "float16", "bfloat16"),
    "dtype": lambda v: v in (None, "float32", "float16", "bfloat16"),
    "auto_map": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "use_cache": _flag, "tie_word_embeddings": _flag,
    "initializer_range": _number(0, 1, low_open=True, whole=False),
    "bos_token_id": lambda v: v is None or _whole(0)(v), "eos_token_id": _token_ids,
    "pad_token_id": lambda v: v is None or _whole(0)(v),
}
# the llama, mistral, phi and qwen2 families
_LLAMA_LIKE = {
    **_COMMON,
    **{key: _whole() for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "num_local_experts", "max_position_embeddings",
                                 "original_max_position_embeddings", "pretraining_tp", "num_experts_per_tok")},
    **{key: _optional(_whole()) for key in ("num_key_value_heads", "head_dim", "sliding_window")},
    **{key: _flag for key in _BOOL_FIELDS + ("output_router_logits",)},
    "hidden_act": lambda v: v in _ACTIVATIONS,
    "rope_theta": _number(0, 1e12, low_open=True),
    # float fields: transformers' strict configs refuse an int for some of them, so only floats pass here
    "rms_norm_eps": _number(0, 1, low_open=True, whole=False), "layer_norm_eps": _number(0, 1, low_open=True, whole=False),
    "attention_dropout": _PROBABILITY,
    "resid_pdrop": _number(0, 0.999, whole=False), "embd_pdrop": _number(0, 0.999, whole=False),
    "router_aux_loss_coef": _number(0, 1e6, whole=False), "router_jitter_noise": _number(0, 1, whole=False),
    "input_jitter_noise": _number(0, 1, whole=False), "partial_rotary_factor": _number(0, 1, low_open=True, whole=False),
    "rope_scaling": lambda v: v is None or _plain_llama3_rope(v),
}
_ACCEPTED = {
    **{model_type: _LLAMA_LIKE for model_type in ("llama", "mistral", "mixtral", "phi", "phi3", "phimoe")},
    # Qwen2's sliding window changes the attention mask, not the modules
    "qwen2": {**_LLAMA_LIKE, "use_sliding_window": _flag, "max_window_layers": _whole(0),
              "layer_types": lambda v: isinstance(v, list) and all(t in ("full_attention", "sliding_attention") for t in v)},
    "gpt2": {
        **_COMMON,
        **{key: _whole() for key in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "n_ctx")},
        "n_inner": _optional(_whole()),
        "activation_function": lambda v: v in _ACTIVATIONS,
        **{key: _PROBABILITY for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout")},
        "layer_norm_epsilon": _number(0, 1, low_open=True, whole=False),
        **{key: _flag for key in ("summary_use_proj", "summary_proj_to_labels", "scale_attn_weights",
                                  "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")},
        "summary_type": lambda v: v in ("last", "first", "mean", "cls_index", "attn"),
        "summary_activation": lambda v: v is None or v == "tanh",
        "add_cross_attention": lambda v: v is False,  # cross-attention blocks are not modelled
        "task_specific_params": lambda v: v is None or isinstance(v, dict),
    },
    "falcon": {
        **_COMMON,
        **{key: _whole() for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "max_position_embeddings")},
        **{key: _optional(_whole()) for key in ("num_kv_heads", "ffn_hidden_size")},
        "num_ln_in_parallel_attn": lambda v: v in (None, 1, 2),
        **{key: _flag for key in ("alibi", "new_decoder_architecture", "multi_query", "parallel_attn", "bias",
                                  "apply_residual_connection_post_layernorm")},
        "layer_norm_epsilon": _number(0, 1, low_open=True, whole=False),
        "hidden_dropout": _PROBABILITY, "attention_dropout": _PROBABILITY,
        "activation": lambda v: v in _ACTIVATIONS,
        "rope_theta": _number(0, 1e12, low_open=True),
        "rope_scaling": lambda v: v is None,
    },
}


def _settings(data: dict, model_type: str) -> dict | None:
    """The config fields the module tree depends on, with transformers' defaults; ``None`` if not modelled."""
    accepted = _ACCEPTED[model_type]
    if any(key not in accepted or not accepted[key](value) for key, value in data.items()):
        return None
    if model_type != "llama" and data.get("rope_scaling") is not None:
        return None
    for key in ("bos_token_id", "eos_token_id"):
        ids = data.get(key)
        if any(i >= data.get("vocab_size", DEFAULTS[model_type]["vocab_size"]) for i in (ids if isinstance(ids, list) else [ids] if ids is not None else [])):
            return None
    if any(isinstance(value, dict) and "model_type" in value for value in data.values()):
        return None
    architectures = data.get("architectures")
    if architectures not in (None, [], [HEADS[model_type]]):
        return None  # another head (sequence classification, ...) builds another tree
    cfg = dict(DEFAULTS[model_type])
    cfg.update({key: value for key, value in data.items() if key in cfg and value is not None})
    if model_type == "gpt2":
        return _gpt2_settings(cfg)
    if model_type == "falcon":
        return _falcon_settings(data, cfg)
    return _llama_like_settings(data, model_type, cfg)


def _llama_like_settings(data: dict, model_type: str, cfg: dict) -> dict | None:
    if "num_experts_per_tok" in data and model_type in ("mixtral", "phimoe") and (
            data["num_experts_per_tok"] > data.get("num_local_experts", DEFAULTS[model_type]["num_local_experts"])):
        return None
    if model_type.startswith("phi") and "head_dim" in data:
        return None  # Phi attention classes differ in how they read head_dim
    for key in ("num_local_experts", "head_dim"):
        if data.get(key) is not None:
            cfg[key] = data[key]
    layer_types = data.get("layer_types")
    if layer_types is not None and len(layer_types) != cfg["num_hidden_layers"]:
        return None  # transformers refuses it
    if cfg["num_hidden_layers"] > _COUNT_LIMIT or cfg.get("num_local_experts", 0) > _COUNT_LIMIT:
        return None
    pad = data.get("pad_token_id", cfg.pop("pad_token_id", None))
    if pad is not None and not -cfg["vocab_size"] <= pad < cfg["vocab_size"]:
        return None  # nn.Embedding refuses a padding_idx outside the vocabulary
    heads = cfg["num_attention_heads"]
    if data.get("num_key_value_heads") is not None:
        cfg["num_key_value_heads"] = data["num_key_value_heads"]
    cfg.setdefault("num_key_value_heads", heads)
    if heads % cfg["num_key_value_heads"]:
        return None
    if not cfg.get("head_dim"):
        if cfg["hidden_size"] % heads:
            return None
        cfg["head_dim"] = cfg["hidden_size"] // heads
    return cfg


def _gpt2_settings(cfg: dict) -> dict | None:
    """GPT-2's fields under the names the tree builder reads."""
    hidden, heads = cfg["n_embd"], cfg["n_head"]
    if hidden % heads or cfg["n_layer"] > _COUNT_LIMIT:
        return None  # GPT2Attention refuses a hidden size the heads do not divide
    return dict(vocab_size=cfg["vocab_size"], hidden_size=hidden, num_hidden_layers=cfg["n_layer"],
                intermediate_size=cfg["n_inner"] or 4 * hidden, positions=cfg["n_positions"],
                tie_word_embeddings=cfg["tie_word_embeddings"])


def _falcon_settings(data: dict, cfg: dict) -> dict | None:
    """Falcon's fields, with the defaults FalconConfig and FalconDecoderLayer fill in."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    if hidden % heads or cfg["num_hidden_layers"] > _COUNT_LIMIT:
        return None  # FalconAttention refuses a hidden size the heads do not divide
    cfg["num_kv_heads"] = data.get("num_kv_heads") or heads
    cfg["ffn_hidden_size"] = data.get("ffn_hidden_size") or 4 * hidden
    cfg["head_dim"] = hidden // heads
    if cfg["num_ln_in_parallel_attn"] is None and cfg["new_decoder_architecture"]:
        cfg["num_ln_in_parallel_attn"] = 2  # what FalconDecoderLayer sets
    return cfg


def _plain_llama3_rope(rope: Any) -> bool:
    if not isinstance(rope, dict) or rope.get("rope_type", rope.get("type")) != "llama3":
        return False
    needed = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    return all(isinstance(rope.get(k), (int, float)) and not isinstance(rope.get(k), bool) and rope[k] > 0
               for k in needed)


class _Config:
    """The attributes the family plugins' shape builders read, as a transformers config would hold them."""

    def __init__(self, model_type: str, cfg: dict):
        self.model_type = model_type
        self.__dict__.update(cfg)


class _Tree:
    """Modules in ``named_modules()`` order, each with its class and own parameters."""

    def __init__(self) -> None:
        self.modules: list[tuple[str, str]] = []
        self.params: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        self.tied: set[str] = set()  # parameter names that are another parameter (not listed twice)
        self.linears: set[str] = set()  # modules that are nn.Linear (or a subclass), or GPT-2's Conv1D
        self.leaf_shapes: dict[str, tuple[int, int]] = {}  # [out, in] where the weight is stored transposed

    def add(self, name: str, cls: str, params=()) -> None:
        self.modules.append((name, cls))
        self.params[name] = [(p, tuple(shape)) for p, shape in params]

    def linear(self, name: str, in_features: int, out_features: int, bias: bool, cls: str = "Linear") -> None:
        params = [("weight", (out_features, in_features))] + ([("bias", (out_features,))] if bias else [])
        self.add(name, cls, params)
        self.linears.add(name)

    def conv1d(self, name: str, in_features: int, out_features: int) -> None:
        """transformers' ``Conv1D``: a Linear whose weight is stored ``[in, out]``, always with a bias."""
        self.add(name, "Conv1D", [("weight", (in_features, out_features)), ("bias", (out_features,))])
        self.linears.add(name)
        self.leaf_shapes[name] = (out_features, in_features)

    def parameters(self) -> list[tuple[str, tuple[int, ...]]]:
        out = []
        for name, _ in self.modules:
            for pname, shape in self.params[name]:
                full = f"{name}.{pname}" if name else pname
                if full not in self.tied:
                    out.append((full, shape))
        return out

    def parameter_count(self) -> int:
        total = 0
        for _, shape in self.parameters():
            count = 1
            for dim in shape:
                count *= dim
            total += count
        return total

    def leaves(self, registry) -> list[Leaf]:
        """The targetable leaves, as ``inspection.collect_leaves`` finds them in the built model."""
        from .inspection import _scope, _scope_words

        words = _scope_words(registry)
        classes = dict(self.modules)
        leaf_modules: list[str] = []
        out: list[Leaf] = []
        for name, cls in self.modules:
            if not name or any(name.startswith(m + ".") for m in leaf_modules):
                continue
            parts = name.split(".")
            path = tuple((part, classes[".".join(parts[: i + 1])]) for i, part in enumerate(parts))
            layer = next((int(p) for i, p in enumerate(parts) if i and p.isdigit()
                          and classes[".".join(parts[:i])] == "ModuleList"), None)
            if name in self.linears or cls == "Embedding":
                leaf_modules.append(name)
                shape = self.leaf_shapes.get(name) or self.params[name][0][1]
                out.append(Leaf(name=name, kind="module", lora_type="linear" if name in self.linears else "embedding",
                                shape=shape, layer=layer, scope=_scope(path, words), module_class=cls, path=path))
                continue
            for pname, shape in self.params[name]:
                if "bias" in pname or not (len(shape) == 3 or (len(shape) == 2 and (pname == "weight" or pname.endswith("_weight")))):
                    continue
                ppath = path + ((pname, "Parameter"),)
                out.append(Leaf(name=f"{name}.{pname}", kind="parameter", lora_type="parameter", shape=shape,
                                layer=layer, scope=_scope(ppath, words), module_class=cls, path=ppath))
        return out


def _build_tree(model_type: str, p: str, c: dict) -> _Tree:
    """The module tree ``{p}ForCausalLM`` has in transformers 5 for config ``c``."""
    hidden, inter, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q_out, kv_out = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    phi, phi3 = model_type == "phi", model_type == "phi3"
    moe = model_type in ("mixtral", "phimoe")
    layer_norm = "LayerNorm" if model_type in ("phi", "phimoe") else f"{p}RMSNorm"
    norm_params = [("weight", (hidden,))] + ([("bias", (hidden,))] if layer_norm == "LayerNorm" else [])
    attn_bias = {"llama": c.get("attention_bias"), "phi": True, "phimoe": c.get("attention_bias")}.get(model_type, False)
    qkv_bias = attn_bias or model_type == "qwen2"  # Qwen2: biases on q, k and v, none on o
    mlp_bias = c.get("mlp_bias") if model_type == "llama" else phi
    t = _Tree()
    t.add("", f"{p}ForCausalLM")
    t.add("model", f"{p}Model")
    t.add("model.embed_tokens", "Embedding", [("weight", (c["vocab_size"], hidden))])
    t.add("model.layers", "ModuleList")
    for i in range(c["num_hidden_layers"]):
        L = f"model.layers.{i}"
        t.add(L, f"{p}DecoderLayer")
        t.add(f"{L}.self_attn", f"{p}Attention")
        if phi3:
            t.linear(f"{L}.self_attn.o_proj", q_out, hidden, False)
            t.linear(f"{L}.self_attn.qkv_proj", hidden, q_out + 2 * kv_out, False)
        else:
            t.linear(f"{L}.self_attn.q_proj", hidden, q_out, qkv_bias)
            t.linear(f"{L}.self_attn.k_proj", hidden, kv_out, qkv_bias)
            t.linear(f"{L}.self_attn.v_proj", hidden, kv_out, qkv_bias)
            t.linear(f"{L}.self_attn.{'dense' if phi else 'o_proj'}", q_out, hidden, attn_bias)
            if phi and c.get("qk_layernorm"):
                t.add(f"{L}.self_attn.q_layernorm", "LayerNorm", [("weight", (hd,)), ("bias", (hd,))])
                t.add(f"{L}.self_attn.k_layernorm", "LayerNorm", [("weight", (hd,)), ("bias", (hd,))])
        if moe:
            experts = c["num_local_experts"]
            t.add(f"{L}.mlp", f"{p}SparseMoeBlock")
            if model_type == "mixtral":
                t.add(f"{L}.mlp.gate", f"{p}TopKRouter", [("weight", (experts, hidden))])
            else:
                t.linear(f"{L}.mlp.router", hidden, experts, False, f"{p}TopKRouter")  # an nn.Linear subclass
            t.add(f"{L}.mlp.experts", f"{p}Experts",
                  [("gate_up_proj", (experts, 2 * inter, hidden)), ("down_proj", (experts, hidden, inter))])
            t.add(f"{L}.mlp.experts.act_fn", "Activation")
        else:
            t.add(f"{L}.mlp", f"{p}MLP")
            if phi:
                t.add(f"{L}.mlp.activation_fn", "Activation")
                t.linear(f"{L}.mlp.fc1", hidden, inter, True)
                t.linear(f"{L}.mlp.fc2", inter, hidden, True)
            elif phi3:
                t.linear(f"{L}.mlp.gate_up_proj", hidden, 2 * inter, False)
                t.linear(f"{L}.mlp.down_proj", inter, hidden, False)
                t.add(f"{L}.mlp.activation_fn", "Activation")
            else:
                t.linear(f"{L}.mlp.gate_proj", hidden, inter, mlp_bias)
                t.linear(f"{L}.mlp.up_proj", hidden, inter, mlp_bias)
                t.linear(f"{L}.mlp.down_proj", inter, hidden, mlp_bias)
                t.add(f"{L}.mlp.act_fn", "Activation")
        t.add(f"{L}.input_layernorm", layer_norm, norm_params)
        if phi:
            t.add(f"{L}.resid_dropout", "Dropout")
        else:
            t.add(f"{L}.post_attention_layernorm", layer_norm, norm_params)
        if phi3:
            t.add(f"{L}.resid_attn_dropout", "Dropout")
            t.add(f"{L}.resid_mlp_dropout", "Dropout")
    if phi:
        t.add("model.rotary_emb", f"{p}RotaryEmbedding")
        t.add("model.embed_dropout", "Dropout")
        t.add("model.final_layernorm", "LayerNorm", norm_params)
    else:
        t.add("model.norm", layer_norm, norm_params)
        t.add("model.rotary_emb", f"{p}RotaryEmbedding")
    lm_bias = phi or (model_type == "phimoe" and c.get("lm_head_bias"))
    t.linear("lm_head", hidden, c["vocab_size"], bool(lm_bias))
    if c.get("tie_word_embeddings"):
        t.tied.add("lm_head.weight")  # the same Parameter as embed_tokens.weight: parameters() lists it once
    return t


def _build_gpt2(model_type: str, p: str, c: dict) -> _Tree:
    """The module tree ``GPT2LMHeadModel`` has in transformers 5 (no cross-attention)."""
    hidden, inter = c["hidden_size"], c["intermediate_size"]
    norm = [("weight", (hidden,)), ("bias", (hidden,))]
    t = _Tree()
    t.add("", "GPT2LMHeadModel")
    t.add("transformer", "GPT2Model")
    t.add("transformer.wte", "Embedding", [("weight", (c["vocab_size"], hidden))])
    t.add("transformer.wpe", "Embedding", [("weight", (c["positions"], hidden))])
    t.add("transformer.drop", "Dropout")
    t.add("transformer.h", "ModuleList")
    for i in range(c["num_hidden_layers"]):
        L = f"transformer.h.{i}"
        t.add(L, "GPT2Block")
        t.add(f"{L}.ln_1", "LayerNorm", norm)
        t.add(f"{L}.attn", "GPT2Attention")
        t.conv1d(f"{L}.attn.c_attn", hidden, 3 * hidden)
        t.conv1d(f"{L}.attn.c_proj", hidden, hidden)
        t.add(f"{L}.attn.attn_dropout", "Dropout")
        t.add(f"{L}.attn.resid_dropout", "Dropout")
        t.add(f"{L}.ln_2", "LayerNorm", norm)
        t.add(f"{L}.mlp", "GPT2MLP")
        t.conv1d(f"{L}.mlp.c_fc", hidden, inter)
        t.conv1d(f"{L}.mlp.c_proj", inter, hidden)
        t.add(f"{L}.mlp.act", "Activation")
        t.add(f"{L}.mlp.dropout", "Dropout")
    t.add("transformer.ln_f", "LayerNorm", norm)
    t.linear("lm_head", hidden, c["vocab_size"], False)
    if c["tie_word_embeddings"]:
        t.tied.add("lm_head.weight")
    return t


def _build_falcon(model_type: str, p: str, c: dict) -> _Tree:
    """The module tree ``FalconForCausalLM`` has in transformers 5: falcon-7b's multi-query, falcon-40b's new decoder."""
    hidden, hd, heads, bias = c["hidden_size"], c["head_dim"], c["num_attention_heads"], c["bias"]
    if c["new_decoder_architecture"]:
        qkv_out = (2 * c["num_kv_heads"] + heads) * hd
    elif c["multi_query"]:
        qkv_out = hidden + 2 * hd
    else:
        qkv_out = 3 * hidden
    norm = [("weight", (hidden,)), ("bias", (hidden,))]
    if not c["parallel_attn"]:
        norms = ("post_attention_layernorm", "input_layernorm")  # the order FalconDecoderLayer creates them in
    elif c["num_ln_in_parallel_attn"] == 2:
        norms = ("ln_attn", "ln_mlp")
    else:
        norms = ("input_layernorm",)
    t = _Tree()
    t.add("", "FalconForCausalLM")
    t.add("transformer", "FalconModel")
    t.add("transformer.word_embeddings", "Embedding", [("weight", (c["vocab_size"], hidden))])
    t.add("transformer.h", "ModuleList")
    for i in range(c["num_hidden_layers"]):
        L = f"transformer.h.{i}"
        t.add(L, "FalconDecoderLayer")
        t.add(f"{L}.self_attention", "FalconAttention")
        t.linear(f"{L}.self_attention.query_key_value", hidden, qkv_out, bias, "FalconLinear")
        t.linear(f"{L}.self_attention.dense", hidden, hidden, bias, "FalconLinear")
        t.add(f"{L}.self_attention.attention_dropout", "Dropout")
        t.add(f"{L}.mlp", "FalconMLP")
        t.linear(f"{L}.mlp.dense_h_to_4h", hidden, c["ffn_hidden_size"], bias, "FalconLinear")
        t.add(f"{L}.mlp.act", "Activation")
        t.linear(f"{L}.mlp.dense_4h_to_h", c["ffn_hidden_size"], hidden, bias, "FalconLinear")
        for name in norms:
            t.add(f"{L}.{name}", "LayerNorm", norm)
    t.add("transformer.ln_f", "LayerNorm", norm)
    t.add("transformer.rotary_emb", "FalconRotaryEmbedding")
    t.linear("lm_head", hidden, c["vocab_size"], False)
    if c["tie_word_embeddings"]:
        t.tied.add("lm_head.weight")
    return t


_BUILDERS = {"gpt2": _build_gpt2, "falcon": _build_falcon}


def verify_model_map(fast: ModelMap, slow: ModelMap) -> None:
    """Check the fast path's map against the one from the built model; ``ModelLoadError`` names the first difference."""
    from .errors import ModelLoadError

    def fail(what: str) -> None:
        raise ModelLoadError(f"{slow.model}: --verify: the fast path differs from the model transformers builds: {what}")

    fast_leaves = {leaf.name: leaf for leaf in fast.leaves}
    slow_leaves = {leaf.name: leaf for leaf in slow.leaves}
    for name in slow_leaves:
        if name not in fast_leaves:
            fail(f"the model has {name!r}, the fast path does not")
    for name, leaf in fast_leaves.items():
        other = slow_leaves.get(name)
        if other is None:
            fail(f"the fast path has {name!r}, the model does not")
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
    slow_params = tuple(name for name, _ in slow.module.named_parameters()) if slow.module is not None else ()
    if slow.module is not None and fast.parameter_names != slow_params:
        diff = next(iter(sorted(set(fast.parameter_names) ^ set(slow_params))), "(order)")
        fail(f"parameter names differ at {diff!r}")
    if fast.base_parameters != slow.base_parameters:
        fail(f"base parameters {slow.base_parameters:,}, the fast path says {fast.base_parameters:,}")
    if (fast.plugin, fast.model_type) != (slow.plugin, slow.model_type):
        fail(f"plugin {slow.plugin!r} for {slow.model_type!r}, the fast path says {fast.plugin!r} for {fast.model_type!r}")


def model_map_for_cli(model: str, *, verify: bool, trust_remote_code: bool, plugin_manager: Any = None,
                      plugin: str | None = None, fast: bool = True) -> Any:
    """What the commands inspect: the fast path's ModelMap where it applies, else ``model`` itself.

    With ``verify`` the model is built anyway and compared with the fast path (a note on stderr
    says whether the check ran); the built model's map is returned.
    """
    import sys

    from .errors import LoraRegistryError

    found = None
    if fast or verify:
        try:
            found = fast_model_map(model, plugin_manager, plugin)
        except (LoraRegistryError, ValueError, TypeError, KeyError, AttributeError):
            found = None  # the fast path is only a shortcut: the slow path words any error
    if not verify:
        return found if (found is not None and fast) else model
    from .inspection import inspect

    slow = inspect(model, trust_remote_code=trust_remote_code, plugin_manager=plugin_manager, plugin=plugin)
    if found is None:
        print(f"{model}: the fast path does not cover this config; answered from the model transformers builds",
              file=sys.stderr)
        return slow
    verify_model_map(found, slow)
    print(f"{model}: fast path verified against the model transformers builds", file=sys.stderr)
    return slow
