"""Helpers for architecture plugins: declarative entries, config checks, shapes, and module trees from config.json.

Three kinds of help, used by the built-in plugins and open to third-party ones:
- classification: ``match_entry`` (a declarative entry by name), ``classify_family`` /
  ``check_expected`` (every name and shape a config predicts, or a ``Decline``);
- the fast path: ``ConfigCheck`` (every key a family accepts, with the values transformers is sure
  to accept, plus its defaults) and ``decoder_tree`` (the module tree of a LLaMA-style decoder
  family, written from the config with a ``TreeBuilder``);
- shape builders shared by the config-driven plugins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .hookspecs import Decline, Null
from .registry import Architecture, Registry
from .tree import Leaf, ModuleTree, TreeBuilder

Shape = tuple[int, ...]
#: above this many layers or experts the normal path refuses a config, so the fast path must too
COUNT_LIMIT = 10_000
_INT_LIMIT = 2**31 - 1  # sizes torch takes without overflow


# ----------------------------------------------------------------------------- classification
def match_entry(entry: Architecture, leaves: Sequence[Leaf]) -> dict[str, str | Null] | None:
    """Roles for ``leaves`` according to a declarative entry, or ``None`` when the entry does not fit.

    The entry fits when every role it lists inside the layer stack names at least one leaf.
    Leaves the entry does not name are explicit nulls.
    """
    stacks = "|".join(re.escape(stack) for stack in entry.layers)
    layer_re = re.compile(rf"(?:{stacks})\.(\d+)\.(.+)$")
    layer_patterns = [(role, _pattern(p)) for role, names in entry.layer_roles.items() for p in names]
    model_patterns = [(role, _pattern(p)) for role, names in entry.model_roles.items() for p in names]
    roles: dict[str, str] = {}
    for leaf in leaves:
        match = layer_re.match(leaf.name)
        candidates = layer_patterns if match else model_patterns
        rest = match.group(2) if match else leaf.name
        for role, pattern in candidates:
            if pattern.fullmatch(rest):
                roles[leaf.name] = role
                break
    found = set(roles.values())
    if not all(role in found for role in entry.layer_roles):
        return None
    unnamed = Null(f"not named by the [architectures.{entry.model_type}] entry")
    return {leaf.name: roles.get(leaf.name, unnamed) for leaf in leaves}


def check_expected(
    plugin: str, leaves: Sequence[Leaf], expected: Mapping[str, tuple[str, Shape]]
) -> dict[str, str] | Decline:
    """Compare the model's language leaves with what the config predicts (name -> (role, shape)).

    Returns a ``Decline`` naming the first leaf that is missing, unexpected, or of another shape
    (another head, a module renamed upstream), so the next plugin answers instead of this one
    answering wrongly.
    """
    actual = {leaf.name: leaf for leaf in leaves if leaf.scope == "language"}
    for name, (role, shape) in expected.items():
        leaf = actual.get(name)
        if leaf is None:
            return Decline(f"the config predicts {name!r} ({role}), which the model lacks")
        if tuple(leaf.shape) != tuple(shape):
            return Decline(f"{name!r} has shape {list(leaf.shape)}, the config predicts {list(shape)}")
    extra = [name for name in actual if name not in expected]
    if extra:
        return Decline(f"unexpected leaf {extra[0]!r} for this architecture")
    return {name: role for name, (role, _) in expected.items()}


def expand_entry(
    entry: Architecture,
    num_layers: int,
    layer_shapes: Mapping[str, Shape] | Iterable[Mapping[str, Shape]],
    model_shapes: Mapping[str, Shape],
) -> dict[str, tuple[str, Shape]]:
    """Every leaf name the entry implies for ``num_layers`` layers, with the predicted role and shape.

    ``layer_shapes`` gives, per role, the shape in one layer (or one mapping per layer where layers
    differ). Roles missing from a layer's mapping are absent from that layer. Entries must not use
    ``*`` wildcards here: the expansion has to name concrete leaves.
    """
    per_layer = [layer_shapes] * num_layers if isinstance(layer_shapes, Mapping) else list(layer_shapes)
    out: dict[str, tuple[str, Shape]] = {}
    for index, shapes in enumerate(per_layer):
        for role, shape in shapes.items():
            for name in entry.layer_roles[role]:
                out[f"{entry.layers[0]}.{index}.{name}"] = (role, tuple(shape))
    for role, shape in model_shapes.items():
        for name in entry.model_roles[role]:
            out[name] = (role, tuple(shape))
    return out


ShapeBuilder = Callable[[Any], tuple[Any, Mapping[str, Shape]]]


def classify_family(
    plugin: str,
    model_types: Sequence[str],
    model_type: str,
    config: Any,
    leaves: Sequence[Leaf],
    registry: Registry,
    shapes: ShapeBuilder,
) -> dict[str, str] | dict[str, str | Null] | Decline | None:
    """The classify hook of a config-driven architecture plugin.

    Answers ``None`` for model types the plugin does not own; otherwise expands the registry
    entry over the config's layers with ``shapes(config) -> (per-layer shapes, model-level shapes)``
    and checks every predicted name and shape against the model (``check_expected``). With
    no config (a bare module) it falls back to matching the entry by name.
    """
    if model_type not in model_types or model_type not in registry.architectures:
        return None
    entry = registry.architectures[model_type]
    if config is None:
        return match_entry(entry, leaves)
    return check_expected(plugin, leaves, expand_entry(entry, config.num_hidden_layers, *shapes(config)))


def head_dim(config: Any) -> int:
    """The attention head size: ``config.head_dim`` where set, else hidden_size / num_attention_heads."""
    value = getattr(config, "head_dim", None)
    return int(value) if value else config.hidden_size // config.num_attention_heads


def kv_heads(config: Any) -> int:
    """Key/value heads (GQA), defaulting to the attention heads."""
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(r"\d+".join(re.escape(part) for part in text.split("*")))


# Shape builders shared by the config-driven plugins; shapes are [out, in] (experts: [E, out, in]).


def attention_shapes(config: Any) -> dict[str, Shape]:
    """Separate q/k/v/o projections with grouped-query attention."""
    hidden, heads, dim = config.hidden_size, config.num_attention_heads, head_dim(config)
    kv = kv_heads(config) * dim
    return {
        "attention-q": (heads * dim, hidden),
        "attention-k": (kv, hidden),
        "attention-v": (kv, hidden),
        "attention-o": (hidden, heads * dim),
    }


def gated_ffn_shapes(config: Any) -> dict[str, Shape]:
    """A gated FFN: gate and up read the hidden state, down writes it."""
    hidden, inter = config.hidden_size, config.intermediate_size
    return {"ffn-gate": (inter, hidden), "ffn-up": (inter, hidden), "ffn-down": (hidden, inter)}


def stacked_experts_shapes(config: Any, experts: int) -> dict[str, Shape]:
    """transformers 5 routed experts: fused gate_up and down as 3-D parameters, plus the router."""
    hidden, inter = config.hidden_size, config.intermediate_size
    return {
        "experts-gate-up": (experts, 2 * inter, hidden),
        "experts-down": (experts, hidden, inter),
        "router": (experts, hidden),
    }


def vocab_shapes(config: Any) -> dict[str, Shape]:
    """Input embedding and output head."""
    return {"embed": (config.vocab_size, config.hidden_size), "lm-head": (config.vocab_size, config.hidden_size)}


# ----------------------------------------------------------------------------- config checks (fast path)
Check = Callable[[Any], bool]


def number(low: float, high: float, *, low_open: bool = False, whole: bool = True) -> Check:
    """A number in [low, high] (``low_open``: (low, high]); ``whole=False`` accepts only floats."""

    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float) if whole else float):
            return False
        return (low < value if low_open else low <= value) and value <= high

    return check


def whole(low: int = 1, high: int = _INT_LIMIT) -> Check:
    """A whole number in [low, high]."""
    return lambda value: not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def optional(check: Check) -> Check:
    """``None`` or what ``check`` accepts."""
    return lambda value: value is None or check(value)


def flag(value: Any) -> bool:
    """A boolean."""
    return isinstance(value, bool)


def text(value: Any) -> bool:
    """A string."""
    return isinstance(value, str)


def token_ids(value: Any) -> bool:
    """A token id, a non-empty list of them, or ``None``."""
    ids = value if isinstance(value, list) else [value]
    return value is None or (bool(ids) and all(whole(0)(i) for i in ids))


def one_of(*values: Any) -> Check:
    """Exactly one of ``values``."""
    return lambda value: any(value is v or (value == v and type(value) is type(v)) for v in values)


#: activation names the trees know the module class of (transformers' ACT2FN; tested against it)
ACTIVATIONS = {
    "silu": "SiLUActivation",
    "swish": "SiLU",
    "gelu": "GELUActivation",
    "gelu_new": "NewGELUActivation",
    "gelu_pytorch_tanh": "GELUTanh",
    "gelu_fast": "FastGELUActivation",
    "relu": "ReLU",
    "quick_gelu": "QuickGELUActivation",
}
PROBABILITY = number(0, 0.999)

#: keys every transformers config may carry, with the values the fast path is sure transformers accepts
COMMON_KEYS: dict[str, Check] = {
    "model_type": text,
    "architectures": lambda v: v is None or isinstance(v, list),
    "transformers_version": text,
    "_name_or_path": text,
    "torch_dtype": one_of(None, "float32", "float16", "bfloat16"),
    "dtype": one_of(None, "float32", "float16", "bfloat16"),
    "auto_map": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "use_cache": flag,
    "tie_word_embeddings": flag,
    "initializer_range": number(0, 1, low_open=True, whole=False),
    "bos_token_id": optional(whole(0)),
    "eos_token_id": token_ids,
    "pad_token_id": optional(whole(0)),
}


def plain_llama3_rope(rope: Any) -> bool:
    """A ``llama3`` rope-scaling table with every factor a positive number."""
    if not isinstance(rope, dict) or rope.get("rope_type", rope.get("type")) != "llama3":
        return False
    needed = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    return all(
        isinstance(rope.get(k), (int, float)) and not isinstance(rope.get(k), bool) and rope[k] > 0 for k in needed
    )


#: the keys of the LLaMA-style decoder families (llama, mistral, mixtral, phi, phi3, phimoe, qwen2, qwen3, ...)
DECODER_KEYS: dict[str, Check] = {
    **COMMON_KEYS,
    **{
        key: whole()
        for key in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_local_experts",
            "max_position_embeddings",
            "original_max_position_embeddings",
            "pretraining_tp",
            "num_experts_per_tok",
        )
    },
    **{key: optional(whole()) for key in ("num_key_value_heads", "head_dim", "sliding_window")},
    **{
        key: flag
        for key in (
            "tie_word_embeddings",
            "attention_bias",
            "mlp_bias",
            "qk_layernorm",
            "lm_head_bias",
            "output_router_logits",
        )
    },
    "hidden_act": lambda v: v in ACTIVATIONS,
    "rope_theta": number(0, 1e12, low_open=True),
    # float fields: transformers' strict configs refuse an int for some of them, so only floats pass here
    "rms_norm_eps": number(0, 1, low_open=True, whole=False),
    "layer_norm_eps": number(0, 1, low_open=True, whole=False),
    "attention_dropout": PROBABILITY,
    "resid_pdrop": number(0, 0.999, whole=False),
    "embd_pdrop": number(0, 0.999, whole=False),
    "router_aux_loss_coef": number(0, 1e6, whole=False),
    "router_jitter_noise": number(0, 1, whole=False),
    "input_jitter_noise": number(0, 1, whole=False),
    "partial_rotary_factor": number(0, 1, low_open=True, whole=False),
    "rope_scaling": lambda v: v is None,
}


@dataclass(frozen=True)
class ConfigCheck:
    """What one family's fast path accepts: every key with its allowed values, the causal-LM class, the defaults.

    ``settings(data)`` returns the config values with the family's defaults (transformers' own,
    tested against its config classes), or ``None`` when any key or value is not modelled exactly,
    another head is named, or a sub-config is present: then the model is built instead.
    """

    keys: Mapping[str, Check]
    head: str
    defaults: Mapping[str, Any]
    extra: Callable[[Mapping[str, Any], dict[str, Any]], dict[str, Any] | None] | None = field(default=None)

    def settings(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The values the tree depends on, defaults applied; ``None`` if this config is not modelled exactly."""
        if any(key not in self.keys or not self.keys[key](value) for key, value in data.items()):
            return None
        if any(isinstance(value, dict) and "model_type" in value for value in data.values()):
            return None
        architectures = data.get("architectures")
        if architectures not in (None, [], [self.head]):
            return None  # another head (sequence classification, ...) builds another tree
        vocab = data.get("vocab_size", self.defaults.get("vocab_size"))
        for key in ("bos_token_id", "eos_token_id"):
            ids = data.get(key)
            listed = ids if isinstance(ids, list) else [ids] if ids is not None else []
            if vocab is not None and any(i >= vocab for i in listed):
                return None
        cfg = dict(self.defaults)
        cfg.update({key: value for key, value in data.items() if key in cfg and value is not None})
        return self.extra(data, cfg) if self.extra is not None else cfg


def decoder_settings(
    data: Mapping[str, Any], cfg: dict[str, Any], *, moe: bool = False, head_dim_key: bool = True
) -> dict[str, Any] | None:
    """Complete a LLaMA-style decoder's settings: GQA heads, head_dim, padding index, counts; ``None`` if invalid."""
    if moe and "num_experts_per_tok" in data and data["num_experts_per_tok"] > cfg.get("num_local_experts", 0):
        return None
    if not head_dim_key and "head_dim" in data:
        return None
    layer_types = data.get("layer_types")
    if layer_types is not None and len(layer_types) != cfg["num_hidden_layers"]:
        return None  # transformers refuses it
    if cfg["num_hidden_layers"] > COUNT_LIMIT or cfg.get("num_local_experts", 0) > COUNT_LIMIT:
        return None
    pad = data.get("pad_token_id", cfg.get("pad_token_id"))
    if pad is not None and not -cfg["vocab_size"] <= pad < cfg["vocab_size"]:
        return None  # nn.Embedding refuses a padding_idx outside the vocabulary
    heads = cfg["num_attention_heads"]
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = heads
    if heads % cfg["num_key_value_heads"]:
        return None
    if not cfg.get("head_dim"):
        if cfg["hidden_size"] % heads:
            return None
        cfg["head_dim"] = cfg["hidden_size"] // heads
    return cfg


# ----------------------------------------------------------------------------- decoder trees
@dataclass(frozen=True)
class DecoderFamily:
    """How one LLaMA-style family's modules are laid out in transformers 5 (what ``decoder_tree`` writes).

    ``prefix`` names the classes (``{prefix}ForCausalLM``, ``{prefix}DecoderLayer``, ...);
    ``attention``: ``"separate"`` q/k/v/o or ``"fused"`` qkv_proj (Phi-3); ``qkv_bias`` / ``o_bias``
    which projections carry a bias (``"config"``: the config's ``attention_bias``); ``qk_norm``:
    ``None``, ``"head"`` (per-head RMSNorm, Qwen3, Gemma 3), ``"full"`` (over all heads, OLMo 2) or
    ``"layernorm"`` (Phi's optional q/k LayerNorm); ``mlp``: ``"gated"``, ``"fused"`` (gate_up_proj),
    ``"plain"`` (Phi's fc1/fc2), or routed experts ``"mixtral"`` / ``"phimoe"`` / ``"qwen_moe"``;
    ``norms`` the per-layer norms in creation order.
    """

    prefix: str
    model_class: str = ""
    norm: str = ""
    embedding: str = "Embedding"
    attention: str = "separate"
    qkv_bias: bool | str = False
    o_bias: bool | str = False
    o_name: str = "o_proj"
    qk_norm: str | None = None
    mlp: str = "gated"
    mlp_bias: bool | str = False
    act_name: str = "act_fn"
    norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    layer_extra: tuple[str, ...] = ()  # per-layer Dropout modules after the norms (Phi-3)
    phi: bool = False  # phi-1/1.5/2: resid_dropout, final_layernorm, embed_dropout
    lm_head_bias: bool | str = False

    def flag(self, value: bool | str, cfg: Mapping[str, Any]) -> bool:
        """A layout switch: a constant, or the name of a config flag."""
        return bool(cfg.get(value)) if isinstance(value, str) else value


def decoder_tree(
    family: DecoderFamily, c: Mapping[str, Any], *, activation: str = "silu", config: Mapping[str, Any] | None = None
) -> ModuleTree:
    """The module tree ``{prefix}ForCausalLM`` has in transformers 5 for the settings ``c``."""
    p = family.prefix
    hidden, inter, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q_out, kv_out = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    layer_norm = family.norm or f"{p}RMSNorm"
    norm_params: list[tuple[str, Shape]] = [("weight", (hidden,))] + (
        [("bias", (hidden,))] if layer_norm == "LayerNorm" else []
    )
    qkv_bias, o_bias = family.flag(family.qkv_bias, c), family.flag(family.o_bias, c)
    mlp_bias = family.flag(family.mlp_bias, c)
    act = ACTIVATIONS[activation]
    t = TreeBuilder(f"{p}ForCausalLM")
    t.module("model", family.model_class or f"{p}Model")
    t.embedding("model.embed_tokens", c["vocab_size"], hidden, cls=family.embedding, role="input")
    t.module_list("model.layers")
    for i in range(c["num_hidden_layers"]):
        layer = f"model.layers.{i}"
        t.module(layer, f"{p}DecoderLayer")
        t.module(f"{layer}.self_attn", f"{p}Attention")
        if family.attention == "fused":
            t.linear(f"{layer}.self_attn.{family.o_name}", q_out, hidden, o_bias)
            t.linear(f"{layer}.self_attn.qkv_proj", hidden, q_out + 2 * kv_out, qkv_bias)
        else:
            t.linear(f"{layer}.self_attn.q_proj", hidden, q_out, qkv_bias)
            t.linear(f"{layer}.self_attn.k_proj", hidden, kv_out, qkv_bias)
            t.linear(f"{layer}.self_attn.v_proj", hidden, kv_out, qkv_bias)
            t.linear(f"{layer}.self_attn.{family.o_name}", q_out, hidden, o_bias)
        _qk_norm(t, family, layer, c, layer_norm, q_out, kv_out)
        _mlp(t, family, layer, c, hidden, inter, mlp_bias, act)
        for name in family.norms:
            t.module(f"{layer}.{name}", layer_norm, norm_params)
        for name in family.layer_extra:
            t.module(f"{layer}.{name}", "Dropout")
    if family.phi:
        t.module("model.rotary_emb", f"{p}RotaryEmbedding")
        t.module("model.embed_dropout", "Dropout")
        t.module("model.final_layernorm", layer_norm, norm_params)
    else:
        t.module("model.norm", layer_norm, norm_params)
        t.module("model.rotary_emb", f"{p}RotaryEmbedding")
    t.linear("lm_head", hidden, c["vocab_size"], family.flag(family.lm_head_bias, c))
    t.output("lm_head")
    if c.get("tie_word_embeddings"):
        t.tie("lm_head.weight", "model.embed_tokens.weight")  # one Parameter: parameters() lists it once
    return t.build(config if config is not None else c)


def family_tree(
    model_type: str,
    config: Mapping[str, Any],
    checks: Mapping[str, ConfigCheck],
    families: Mapping[str, DecoderFamily],
    *,
    activation: str = "hidden_act",
    aliases: Mapping[str, str] | None = None,
) -> ModuleTree | None:
    """A decoder plugin's ``lora_registry_module_tree``: the tree where ``checks[model_type]`` accepts the config.

    ``activation`` names the config key holding the activation; ``aliases`` maps other names the
    family's config class answers to (``num_experts``) onto the settings key they read.
    """
    check = checks.get(model_type)
    settings = check.settings(config) if check is not None else None
    if settings is None:
        return None
    values = {**settings, **{name: settings.get(key) for name, key in (aliases or {}).items()}}
    return decoder_tree(families[model_type], settings, activation=settings[activation], config=values)


def _qk_norm(
    t: TreeBuilder, family: DecoderFamily, layer: str, c: Mapping[str, Any], norm: str, q_out: int, kv_out: int
) -> None:
    hd = c["head_dim"]
    if family.qk_norm == "head":
        t.module(f"{layer}.self_attn.q_norm", norm, [("weight", (hd,))])
        t.module(f"{layer}.self_attn.k_norm", norm, [("weight", (hd,))])
    elif family.qk_norm == "full":
        t.module(f"{layer}.self_attn.q_norm", norm, [("weight", (q_out,))])
        t.module(f"{layer}.self_attn.k_norm", norm, [("weight", (kv_out,))])
    elif family.qk_norm == "layernorm" and c.get("qk_layernorm"):
        t.module(f"{layer}.self_attn.q_layernorm", "LayerNorm", [("weight", (hd,)), ("bias", (hd,))])
        t.module(f"{layer}.self_attn.k_layernorm", "LayerNorm", [("weight", (hd,)), ("bias", (hd,))])


def _mlp(
    t: TreeBuilder,
    family: DecoderFamily,
    layer: str,
    c: Mapping[str, Any],
    hidden: int,
    inter: int,
    bias: bool,
    act: str,
) -> None:
    p = family.prefix
    mlp = f"{layer}.mlp"
    if family.mlp == "qwen_moe" and not _sparse_layer(int(layer.rsplit(".", 1)[1]), c):
        t.module(mlp, f"{p}MLP")  # a dense layer of a Qwen-MoE stack (mlp_only_layers, decoder_sparse_step)
        t.linear(f"{mlp}.gate_proj", hidden, inter, False)
        t.linear(f"{mlp}.up_proj", hidden, inter, False)
        t.linear(f"{mlp}.down_proj", inter, hidden, False)
        t.module(f"{mlp}.{family.act_name}", act)
        return
    if family.mlp in ("mixtral", "phimoe", "qwen_moe"):
        experts = c["num_local_experts"]
        width = c.get("moe_intermediate_size") or inter
        t.module(mlp, f"{p}SparseMoeBlock")
        router = lambda: (  # noqa: E731 - the router's place in the block differs by family
            t.module(f"{mlp}.gate", f"{p}TopKRouter", [("weight", (experts, hidden))])
            if family.mlp != "phimoe"
            else t.linear(f"{mlp}.router", hidden, experts, False, f"{p}TopKRouter")
        )  # an nn.Linear subclass
        if family.mlp != "qwen_moe":
            router()
        t.module(
            f"{mlp}.experts",
            f"{p}Experts",
            [("gate_up_proj", (experts, 2 * width, hidden)), ("down_proj", (experts, hidden, width))],
        )
        t.module(f"{mlp}.experts.act_fn", act)
        if family.mlp == "qwen_moe":
            router()
        return
    t.module(mlp, f"{p}MLP")
    if family.mlp == "plain":
        t.module(f"{mlp}.{family.act_name}", act)
        t.linear(f"{mlp}.fc1", hidden, inter, True)
        t.linear(f"{mlp}.fc2", inter, hidden, True)
    elif family.mlp == "fused":
        t.linear(f"{mlp}.gate_up_proj", hidden, 2 * inter, False)
        t.linear(f"{mlp}.down_proj", inter, hidden, False)
        t.module(f"{mlp}.{family.act_name}", act)
    else:
        t.linear(f"{mlp}.gate_proj", hidden, inter, bias)
        t.linear(f"{mlp}.up_proj", hidden, inter, bias)
        t.linear(f"{mlp}.down_proj", inter, hidden, bias)
        t.module(f"{mlp}.{family.act_name}", act)


def _sparse_layer(index: int, c: Mapping[str, Any]) -> bool:
    """Qwen-MoE decoder layers (``Qwen3MoeDecoderLayer``): routed experts unless listed in ``mlp_only_layers``."""
    step = c.get("decoder_sparse_step") or 1
    return index not in (c.get("mlp_only_layers") or ()) and c["num_local_experts"] > 0 and (index + 1) % step == 0
