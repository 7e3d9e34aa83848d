"""Trainer exports adapt exactly the resolved set, or refuse with one line.

Each round trip renders the export, reads the text back, builds the peft.LoraConfig the way that
trainer's own code does from those values (cited per helper; for Unsloth ``lora_registry.unsloth``,
which restates its ``get_peft_model`` argument handling, GPU-free), applies it with PEFT to a copy of
the meta model, and compares the adapted set and trainable count with the plan's. The trainers' own
installed code runs on the exports in tests/test_trainer_code.py.
"""

from __future__ import annotations

import ast

import pytest
import yaml
from peft import LoraConfig
from transformers import AutoConfig

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, assert_adapts_exactly, tiny_config, write_config
from lora_registry import exports, unsloth
from lora_registry.errors import ConfigError
from lora_registry.settings import LoraSettings

LLAMA = EXAMPLES / "llama-3.1-8b"
PHI3 = EXAMPLES / "phi-3-mini-4k-instruct"
MOE = FIXTURES / "qwen3-30b-a3b"  # 3-D experts: target_parameters
CASES = {  # model, roles, per-role ranks, lora_config options, layer selection
    "llama": (LLAMA, "q,v,ffn", {"ffn": 4}, {}, {}),
    "llama-options": (
        LLAMA,
        "q,v",
        None,
        dict(use_dora=True, use_rslora=True, lora_dropout=0.05, modules_to_save="lm-head"),
        {},
    ),
    "moe": ("tiny-moe", "all,router", {"experts-down": 2}, {}, {}),
    "vlm": ("llava", "q,v,ffn", {"v": 4}, {}, {}),  # the CLIP tower also has q_proj/v_proj: it must stay untouched
    "llama-last4": (LLAMA, "q,v", None, {}, {"last_layers": 4}),  # PEFT's layers_to_transform
    "vlm-layers": ("llava", "q,v", None, {}, {"layers": "1,3"}),  # layers_to_transform + layers_pattern
    "moe-last2": ("tiny-moe", "q,v", None, {}, {"last_layers": 2}),
    "phi3": (PHI3, "all", None, {}, {}),  # fused qkv_proj and gate_up_proj
}
_RESOLVED: dict = {}
_TINY: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _tiny_models(tmp_path_factory):
    """Qwen3-MoE at 4 layers of 4 experts: the same module names as Qwen3-30B-A3B's 48 layers of 128."""
    base = tmp_path_factory.mktemp("tiny-moe")
    sizes = dict(num_hidden_layers=4, head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)
    _TINY["tiny-moe"] = write_config(base, tiny_config("qwen3_moe", **sizes), "qwen3-moe")
    yield
    _TINY.clear()
    _RESOLVED.clear()


def resolved(case, per_role=True):
    """(resolution, its adapter plan) for a case; each model is resolved once per module."""
    model, roles, ranks, options, selection = CASES[case]
    if case not in _RESOLVED:
        _RESOLVED[case] = lr.resolve(_TINY.get(model, str(model)), roles=roles, **selection)
    resolution = _RESOLVED[case]
    return resolution, _plan(resolution, ranks=ranks if per_role else None, **options)


def _plan(resolution, r=8, lora_alpha=None, ranks=None, alphas=None, **options):
    """The adapter plan an exporter takes, from lora_config-style arguments."""
    return resolution.plan(LoraSettings.from_options(r, lora_alpha, ranks, alphas, **options))


def reread(name, data):
    """The export as the user gets it: rendered to text and parsed back."""
    text = exports.render(name, data)
    if name != "unsloth":
        return yaml.safe_load(text)
    (call,) = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)]
    assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
    arguments = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    return {"function": f"{call.func.value.id}.{call.func.attr}", "arguments": arguments}


# --------------------------------------------------------------------------- axolotl
# axolotl 0.19.0, axolotl/utils/schemas/peft.py class LoraConfig: the adapter keys it defines.
AXOLOTL_KEYS = {
    "adapter",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_fan_in_fan_out",
    "lora_target_modules",
    "lora_target_parameters",
    "lora_target_linear",
    "lora_modules_to_save",
    "lora_rank_pattern",
    "lora_alpha_pattern",
    "peft_layers_to_transform",
    "peft_layers_pattern",
    "peft_use_dora",
    "peft_use_rslora",
    "peft_layer_replication",
    "peft_init_lora_weights",
    "peft_trainable_token_indices",
}


def axolotl_lora_config(cfg):
    """axolotl/loaders/adapter.py: _build_lora_config_kwargs and _build_peft_lora_config."""
    assert not cfg.get("lora_target_linear")  # true would add every linear layer's name
    kwargs = {}
    for option, field in [
        ("peft_init_lora_weights", "init_lora_weights"),
        ("peft_use_dora", "use_dora"),
        ("peft_use_rslora", "use_rslora"),
        ("lora_rank_pattern", "rank_pattern"),
        ("lora_alpha_pattern", "alpha_pattern"),
    ]:
        if cfg.get(option):
            kwargs[field] = cfg[option]
    return LoraConfig(
        r=cfg["lora_r"],
        lora_alpha=cfg["lora_alpha"],
        target_modules=cfg.get("lora_target_modules") or [],
        target_parameters=cfg.get("lora_target_parameters") or [],
        layers_to_transform=cfg.get("peft_layers_to_transform"),
        layers_pattern=cfg.get("peft_layers_pattern"),
        lora_dropout=cfg["lora_dropout"],
        fan_in_fan_out=None,
        modules_to_save=cfg.get("lora_modules_to_save") or None,
        exclude_modules=None,
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


@pytest.mark.parametrize("case", ["llama", "llama-options", "moe", "vlm", "llama-last4", "vlm-layers"])
def test_axolotl_round_trip(case):
    _, plan = resolved(case)
    cfg = reread("axolotl", exports.axolotl(plan))
    assert set(cfg) <= AXOLOTL_KEYS
    assert ("peft_layers_to_transform" in cfg) == ("layers" in case or "last" in case)
    assert_adapts_exactly(plan, axolotl_lora_config(cfg))


# --------------------------------------------------------------------------- LLaMA-Factory
# LLaMA-Factory 0.9.5, llamafactory/hparams/finetuning_args.py: LoraArguments fields and finetuning_type.
LLAMAFACTORY_KEYS = {
    "finetuning_type",
    "additional_target",
    "lora_alpha",
    "lora_dropout",
    "lora_rank",
    "lora_target",
    "loraplus_lr_ratio",
    "loraplus_lr_embedding",
    "use_rslora",
    "use_dora",
    "pissa_init",
    "pissa_iter",
    "pissa_convert",
    "create_new_adapter",
}


def llamafactory_lora_config(args, model, composite):
    """hparams/finetuning_args.py __post_init__ (split_arg, alpha default) and model/adapter.py
    _setup_lora_tuning; for multimodal models model_utils/visual.py patch_target_modules, whose
    default forbidden keys for llava are vision_tower and multi_modal_projector."""
    split = lambda value: [item.strip() for item in value.split(",")] if value else None  # noqa: E731
    targets = split(args["lora_target"])
    if composite:
        forbidden = ("vision_tower", "multi_modal_projector")
        targets = [
            name
            for name, _ in model.named_modules()
            if any(t in name for t in targets) and not any(f in name for f in forbidden)
        ]
    rank = args.get("lora_rank", 8)
    return LoraConfig(
        task_type="CAUSAL_LM",
        inference_mode=False,
        r=rank,
        target_modules=targets,
        lora_alpha=args.get("lora_alpha") or rank * 2,
        lora_dropout=args.get("lora_dropout", 0.0),
        use_rslora=args.get("use_rslora", False),
        use_dora=args.get("use_dora", False),
        modules_to_save=split(args.get("additional_target")),
    )


@pytest.mark.parametrize(
    "case,composite",
    [
        ("llama", False),
        ("llama-options", False),
        ("vlm", False),
        ("vlm", True),
        ("llama-last4", False),  # no layer option: only full names single out the last layers
    ],
)
def test_llamafactory_round_trip(case, composite):
    resolution, plan = resolved(case, per_role=False)
    args = reread("llamafactory", exports.llamafactory(plan))
    assert set(args) <= LLAMAFACTORY_KEYS and args["finetuning_type"] == "lora"
    assert_adapts_exactly(plan, llamafactory_lora_config(args, resolution.model_map.module, composite))


@pytest.mark.parametrize("init", ["pissa", "pissa_niter_4"])
def test_llamafactory_pissa_maps_back(init):
    resolution = lr.resolve(str(LLAMA), roles="q,v")
    args = exports.llamafactory(_plan(resolution, init_lora_weights=init))
    # model/adapter.py: init_lora_weights = "pissa" if pissa_iter == -1 else f"pissa_niter_{pissa_iter}"
    assert args["pissa_init"] is True
    assert ("pissa" if args["pissa_iter"] == -1 else f"pissa_niter_{args['pissa_iter']}") == init


# --------------------------------------------------------------------------- Unsloth
# Unsloth 2026.10.9, unsloth/models/llama.py FastLlamaModel.get_peft_model (FastLanguageModel's); other
# keywords go on to peft.LoraConfig through **kwargs.
UNSLOTH_SIGNATURE = {
    "r",
    "target_modules",
    "lora_alpha",
    "lora_dropout",
    "bias",
    "layers_to_transform",
    "layers_pattern",
    "finetune_last_n_layers",
    "use_gradient_checkpointing",
    "random_state",
    "max_seq_length",
    "use_rslora",
    "modules_to_save",
    "init_lora_weights",
    "loftq_config",
    "temporary_location",
    "qat_scheme",
    "target_parameters",
    "ensure_weight_tying",
    "offload_layers",
    "checkpoint_skip_layers",
}


def unsloth_call(plan):
    """The exported call as read back from its text: (entry point, keyword arguments)."""
    data = exports.unsloth(plan)
    assert reread("unsloth", data) == data
    arguments = data["arguments"]
    assert set(arguments) <= UNSLOTH_SIGNATURE | set(LoraConfig().to_dict())
    # a list, never a string: Unsloth releases before 2026 iterate target_modules character by character
    assert isinstance(arguments["target_modules"], list)
    assert isinstance(arguments["target_parameters"], list)  # None would let Unsloth add expert weights itself
    return data["function"], arguments


@pytest.mark.parametrize("case", ["llama", "llama-options", "moe", "vlm", "llama-last4", "vlm-layers", "phi3"])
def test_unsloth_round_trip(case):
    resolution, plan = resolved(case)
    function, arguments = unsloth_call(plan)
    llama_path = resolution.model_map.model_type in unsloth.LLAMA_PATH
    assert function == ("FastLanguageModel" if llama_path else "FastModel") + ".get_peft_model"
    kwargs = unsloth.lora_kwargs(function, resolution.model_map.module, arguments)
    assert_adapts_exactly(plan, LoraConfig(**kwargs))


def test_unsloth_writes_a_layer_selection_with_its_own_layer_options():
    # `--last-layers 4 -f unsloth` wrote one regex string: a `for module in target_modules` loop saw characters
    resolution, plan = resolved("llama-last4")
    function, arguments = unsloth_call(plan)
    assert function == "FastLanguageModel.get_peft_model"
    assert arguments["target_modules"] == ["q_proj", "v_proj"]
    assert arguments["layers_to_transform"] == [28, 29, 30, 31] and "layers_pattern" not in arguments
    kwargs = unsloth.lora_kwargs(function, resolution.model_map.module, arguments)
    assert kwargs["layers_to_transform"] == [28, 29, 30, 31]  # handed to PEFT as written
    assert_adapts_exactly(plan, LoraConfig(**kwargs))


def test_unsloth_modules_to_save_are_the_names_it_accepts():
    # `--modules-to-save embed,lm-head -f unsloth` wrote ['model.embed_tokens', 'lm_head']: Unsloth before 2026
    # raised "Only 'lm_head' and 'embed_tokens' is allowed"; now any spelling of those leaves passes
    resolution, _ = resolved("llama-last4")
    plan = _plan(resolution, modules_to_save="embed,lm-head")
    function, arguments = unsloth_call(plan)
    assert sorted(arguments["modules_to_save"]) == ["embed_tokens", "lm_head"]
    kwargs = unsloth.lora_kwargs(function, resolution.model_map.module, arguments)
    assert_adapts_exactly(plan, LoraConfig(**kwargs))


def test_unsloth_refuses_what_its_llama_path_refuses():
    resolution, _ = resolved("llama-last4")
    plan = _plan(resolution, modules_to_save="model.layers.31.mlp")
    with pytest.raises(ConfigError, match="trains only embed_tokens, lm_head and norm layers whole"):
        exports.unsloth(plan)
    module = resolution.model_map.module
    with pytest.raises(unsloth.UnslothRefusal, match="is not allowed"):
        unsloth.lora_kwargs("FastLanguageModel", module, {"target_modules": ["q_proj"], "modules_to_save": ["mlp"]})


def test_unsloth_uses_fastmodel_where_fastlanguagemodel_rewrites_the_list():
    # FastLanguageModel on qwen3_moe calls FastModel's get_peft_model with finetune_vision_layers=False, which
    # turns a target list into Unsloth's regex of leaf names: full names match nothing there
    resolution, plan = resolved("moe-last2")
    function, arguments = unsloth_call(plan)
    assert function == "FastModel.get_peft_model"
    module = resolution.model_map.module
    full_names = dict(arguments, target_modules=resolution.target_module_names(), layers_to_transform=None)
    with pytest.raises(unsloth.UnslothRefusal, match="No layers to finetune"):
        unsloth.lora_kwargs("FastLanguageModel", module, full_names)
    assert_adapts_exactly(plan, LoraConfig(**unsloth.lora_kwargs("FastModel", module, full_names)))
    assert_adapts_exactly(plan, LoraConfig(**unsloth.lora_kwargs(function, module, arguments)))


def test_unsloth_leaves_target_parameters_to_nobody():
    # left out, Unsloth adds the experts' 3-D weights for a bare down_proj; the export always writes the list
    resolution, _ = resolved("moe")
    module = resolution.model_map.module
    auto = unsloth.lora_kwargs("FastModel", module, {"target_modules": ["q_proj", "down_proj"]})
    assert auto["target_parameters"] == ["mlp.experts.down_proj"]
    given = unsloth.lora_kwargs(
        "FastModel", module, {"target_modules": ["q_proj", "down_proj"], "target_parameters": []}
    )
    assert given["target_parameters"] == []


# --------------------------------------------------------------------------- torchtune
# torchtune 0.6.1, torchtune/models/llama3_1/_model_builders.py lora_llama3_1_8b and
# torchtune/modules/peft/_utils.py LORA_ATTN_MODULES.
TORCHTUNE_LLAMA_ARGS = {
    "lora_attn_modules",
    "apply_lora_to_mlp",
    "apply_lora_to_output",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "use_dora",
    "quantize_base",
}
TORCHTUNE_ATTN = {"q_proj", "k_proj", "v_proj", "output_proj"}


def test_torchtune_llama_builder_adapts_the_resolved_modules():
    resolution = lr.resolve(str(LLAMA), roles="q,v,ffn,lm-head")
    args = reread("torchtune", exports.torchtune(_plan(resolution, r=16, lora_dropout=0.05)))["model"]
    assert args["_component_"] == "torchtune.models.llama3_1.lora_llama3_1_8b"
    assert set(args) - {"_component_"} <= TORCHTUNE_LLAMA_ARGS
    assert set(args["lora_attn_modules"]) <= TORCHTUNE_ATTN
    assert (args["lora_rank"], args["lora_alpha"], args["lora_dropout"]) == (16, 32, 0.05)
    # What the builder adapts, in transformers names: the listed projections and the whole MLP in
    # every decoder layer, and lm_head for apply_lora_to_output.
    hf = {"output_proj": "o_proj"}
    wanted = {hf.get(m, m) for m in args["lora_attn_modules"]}
    if args["apply_lora_to_mlp"]:
        wanted |= {"gate_proj", "up_proj", "down_proj"}
    adapted = {
        n
        for n in resolution.model_map.all_module_names
        if n.startswith("model.layers.") and n.rsplit(".", 1)[-1] in wanted
    }
    if args["apply_lora_to_output"]:
        adapted.add("lm_head")
    assert adapted == {leaf.name for leaf in resolution.leaves}


# Phi-3-mini: hidden 3072, 32 heads and 32 kv heads of 96, intermediate 8192, 32 layers. torchtune's
# phi3/_convert_weights.py phi3_hf_to_tune splits qkv_proj into q_proj, k_proj, v_proj (its first 3072, next
# 3072 and last 3072 rows) and gate_up_proj into w1, w3; _component_builders.py wraps each module it is told
# to in its own LoRALinear of rank r: r * (in + out) each.
PHI3_SPLIT = {"q": (3072, 3072), "k": (3072, 3072), "v": (3072, 3072), "o": (3072, 3072)}
PHI3_MLP = {"w1": (3072, 8192), "w3": (3072, 8192), "w2": (8192, 3072)}


@pytest.mark.parametrize(
    "roles,attention,mlp,frozen",
    [("q,v", ["q_proj", "v_proj"], False, "attention-k stays frozen"), ("all", list(TORCHTUNE_ATTN), True, None)],
)
def test_torchtune_follows_its_phi3_split(roles, attention, mlp, frozen):
    # torchtune used to refuse q,v on Phi-3 (fused qkv_proj), although its builders split it on load
    resolution = lr.resolve(str(PHI3), roles=roles)
    with pytest.warns(exports.ExportWarning) as record:
        args = exports.torchtune(_plan(resolution))["model"]
    assert args["_component_"] == "torchtune.models.phi3.lora_phi3_mini"
    assert sorted(args["lora_attn_modules"]) == sorted(attention) and args["apply_lora_to_mlp"] is mlp
    short = [{"q_proj": "q", "k_proj": "k", "v_proj": "v", "output_proj": "o"}[m] for m in attention]
    per_layer = sum(8 * sum(PHI3_SPLIT[m]) for m in short) + (mlp and sum(8 * sum(s) for s in PHI3_MLP.values()))
    (message,) = [str(w.message) for w in record]
    assert f"{32 * per_layer:,} trainable parameters" in message
    assert frozen is None or frozen in message


def test_torchtune_builder_follows_size():
    cfg = AutoConfig.for_model(
        "llama",
        num_hidden_layers=16,
        hidden_size=2048,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        max_position_embeddings=131072,
        tie_word_embeddings=True,
    )
    resolution = lr.resolve(cfg, roles="attention")
    args = exports.torchtune(_plan(resolution))["model"]
    assert args["_component_"] == "torchtune.models.llama3_2.lora_llama3_2_1b"
    assert args["lora_attn_modules"] == ["q_proj", "k_proj", "v_proj", "output_proj"]
    with pytest.raises(ConfigError, match="tied"):
        exports.torchtune(_plan(lr.resolve(cfg, roles="q,lm-head")))


# --------------------------------------------------------------------------- MLX-LM, LitGPT: the forms written
def test_mlx_lm_writes_relative_keys_for_the_last_layers_and_full_paths_otherwise():
    resolution, _ = resolved("llama-last4")
    out = exports.mlx_lm(_plan(resolution, lora_alpha=32, use_rslora=True))
    assert out["num_layers"] == 4 and out["lora_parameters"]["keys"] == ["self_attn.q_proj", "self_attn.v_proj"]
    assert out["lora_parameters"]["scale"] == 32 / 8**0.5  # mlx-lm's scale is the multiplier: alpha / sqrt(r)
    some = lr.resolve(str(LLAMA), roles="q,lm-head", layers="0,2")
    out = exports.mlx_lm(_plan(some, use_dora=True))
    assert out["fine_tune_type"] == "dora" and out["num_layers"] == 32
    assert out["lora_parameters"]["keys"] == [
        "model.layers.0.self_attn.q_proj",
        "model.layers.2.self_attn.q_proj",
        "lm_head",
    ]


def test_litgpt_switches():
    resolution = lr.resolve(str(LLAMA), roles="q,k,o,ffn,lm-head")
    out = reread("litgpt", exports.litgpt(_plan(resolution, r=16, lora_alpha=32)))
    assert out == {
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "lora_query": True,
        "lora_key": True,
        "lora_value": False,
        "lora_projection": True,
        "lora_mlp": True,
        "lora_head": True,
    }


# --------------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    return {
        "gemma": write_config(base, tiny_config("gemma"), "gemma"),  # ties its LM head to the embedding
        "mixtral": write_config(base, tiny_config("mixtral", num_local_experts=4), "mixtral"),
    }


REFUSALS = [
    # trainer, model, roles, lora_config kwargs, what the one-line error names
    ("llamafactory", LLAMA, "q,v,ffn", {"ranks": {"ffn": 4}}, "per-role ranks"),
    ("llamafactory", MOE, "experts", {}, "target_parameters"),
    ("llamafactory", LLAMA, "q,v", {"lora_alpha": 12.5}, "whole number"),
    ("llamafactory", LLAMA, "q,v", {"init_lora_weights": "gaussian"}, "PiSSA"),
    ("llamafactory", LLAMA, "q,v", {"bias": "all"}, "bias='all'"),
    ("axolotl", LLAMA, "q,v", {"bias": "lora_only"}, "bias='lora_only'"),
    ("axolotl", LLAMA, "q,v", {"init_lora_weights": False}, "init_lora_weights=False"),
    ("axolotl", LLAMA, "q,v", {"alphas": {"v": 3.5}}, "whole number"),
    ("axolotl", LLAMA, "q,v", {"exclude_modules": ["lm_head"]}, "exclude_modules"),
    ("unsloth", LLAMA, "q,v,lm-head", {}, "lm-head"),
    ("unsloth", LLAMA, "q,v", {"layers_to_transform": [0]}, "layers_to_transform"),
    ("torchtune", LLAMA, "q,v,ffn", {"ranks": {"ffn": 4}}, "per-role ranks"),
    ("torchtune", LLAMA, "q,down", {}, "gate, up and down together"),
    ("torchtune", PHI3, "q,gate", {}, "ffn-gate alone"),  # gate is half of the fused gate_up_proj: half the MLP
    ("torchtune", LLAMA, "ffn", {}, "at least one attention projection"),
    ("torchtune", LLAMA, "q,v", {"modules_to_save": "lm-head"}, "modules_to_save"),
    ("torchtune", LLAMA, "q,v", {"use_rslora": True}, "use_rslora"),
    ("torchtune", EXAMPLES / "mistral-7b-v0.3", "q,v", {}, "vocab_size=32768"),
    ("torchtune", MOE, "attention", {}, "model_type qwen3_moe"),
    ("torchtune", "llava", "q,v", {}, "model_type llava"),
    ("mlx-lm", MOE, "attention", {}, "MLX-LM exports cover"),
    ("mlx-lm", LLAMA, "q,v", {"ranks": {"v": 4}}, "per-role ranks"),
    ("mlx-lm", LLAMA, "q,v", {"bias": "all"}, "bias='all'"),
    ("mlx-lm", LLAMA, "q,v", {"init_lora_weights": "gaussian"}, "initialises LoRA one way"),
    ("mlx-lm", LLAMA, "q,v", {"modules_to_save": "lm-head"}, "modules_to_save"),
    ("mlx-lm", "gemma", "q,lm-head", {}, "no module to adapt"),
    ("ms-swift", LLAMA, "q,v", {"ranks": {"v": 4}}, "per-role ranks"),
    ("ms-swift", LLAMA, "q,v", {"bias": "lora_only"}, "none or all"),
    ("ms-swift", LLAMA, "q,v", {"init_lora_weights": "orthogonal"}, "cannot pass init_lora_weights='orthogonal'"),
    ("ms-swift", MOE, "experts", {}, "target_parameters alone"),
    ("litgpt", LLAMA, "q,down", {}, "lora_mlp adapts the whole MLP"),
    ("litgpt", LLAMA, "q,embed", {}, "cannot adapt embed"),
    ("litgpt", "llava", "q,v", {}, "does not convert llava"),
    ("litgpt", LLAMA, "q,v", {"use_dora": True}, "use_dora"),
    ("litgpt", LLAMA, "q,v", {"lora_alpha": 12.5}, "whole number"),
    ("litgpt", "mixtral", "attention,experts", {}, "router"),  # its lora_mlp holds the router too
]


@pytest.mark.parametrize("trainer,model,roles,kwargs,message", REFUSALS)
def test_unexpressible_is_refused(tiny, trainer, model, roles, kwargs, message):
    resolution = lr.resolve(tiny.get(model, str(model)), roles=roles)
    plan = _plan(resolution, r=8, **kwargs)
    with pytest.raises(ConfigError) as info:
        exports.EXPORTS[trainer](plan)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("trainer", ["torchtune", "litgpt"])
def test_a_layer_selection_is_refused_where_every_layer_is_adapted(trainer):
    resolution, _ = resolved("llama-last4")
    with pytest.raises(ConfigError, match="selected in 4 of 32"):
        exports.EXPORTS[trainer](_plan(resolution))


def test_llamafactory_refuses_the_vision_tower():
    resolution = lr.resolve("llava", roles="q,v", scope="language,vision")
    with pytest.raises(ConfigError, match="--scope language"):
        exports.llamafactory(_plan(resolution))


def test_render_rejects_unknown_format():
    with pytest.raises(ConfigError, match="axolotl, llamafactory, unsloth, torchtune, mlx-lm, ms-swift, litgpt"):
        exports.render("deepspeed", {})


def test_the_cli_offers_every_export():
    from lora_registry.cli.resolve_cmd import FORMATS

    assert ("table", "json", "peft", *exports.EXPORTS) == FORMATS
