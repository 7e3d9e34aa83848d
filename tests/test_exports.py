"""Trainer exports adapt exactly the resolved set, or refuse with ConfigError.

Each round trip renders the export, reads the text back, builds the peft.LoraConfig the way that
trainer's own code does from those values (cited per helper), applies it with PEFT to the meta
model, and compares the adapted set and trainable count with the resolution's. axolotl's schema and
LLaMA-Factory's argument class are used as well where those packages are installed (pip install
--no-deps is enough); the pinned key sets below are checked always.
"""

from __future__ import annotations

import ast
import importlib.util
import warnings

import pytest
import yaml
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, expected_keys
from lora_registry import exports
from lora_registry.errors import ConfigError
from lora_registry.settings import LoraSettings

LLAMA = EXAMPLES / "llama-3.1-8b"
MOE = FIXTURES / "qwen3-30b-a3b"  # 3-D experts: target_parameters
CASES = {  # model, roles, per-role ranks, lora_config options
    "llama": (LLAMA, "q,v,ffn", {"ffn": 4}, {}),
    "llama-options": (
        LLAMA,
        "q,v",
        None,
        dict(use_dora=True, use_rslora=True, lora_dropout=0.05, modules_to_save="lm-head"),
    ),
    "moe": (MOE, "all,router", {"experts-down": 2}, {}),
    "vlm": ("llava", "q,v,ffn", {"v": 4}, {}),  # the CLIP tower also has q_proj/v_proj: it must stay untouched
}

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


def resolved(case, per_role=True, **resolve):
    """(resolution, its adapter plan, the lora_config arguments that count parameters) for a case."""
    model, roles, ranks, options = CASES[case]
    resolution = lr.resolve(str(model), roles=roles, **resolve)
    counted = dict(ranks=ranks if per_role else None, **options)
    return resolution, _plan(resolution, r=8, **counted), counted


def _plan(resolution, r=8, lora_alpha=None, ranks=None, alphas=None, **options):
    """The adapter plan an exporter takes, from lora_config-style arguments."""
    return resolution.plan(LoraSettings.from_options(r, lora_alpha, ranks, alphas, **options))


def assert_adapts_exactly(resolution, config, counted):
    """PEFT, given the trainer's config, adapts the resolved set with the predicted trainable count."""
    predicted = resolution.trainable_parameters(8, **counted)  # before PEFT wraps the modules it counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(resolution.model_map.module, config)
    tuner = model.base_model
    adapted = set(tuner.targeted_module_names) | set(getattr(tuner, "targeted_parameter_names", []) or [])
    assert adapted == expected_keys(resolution)
    assert not any("vision_tower" in key for key in adapted)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == predicted


def reread(name, data):
    """The export as the user gets it: rendered to text and parsed back."""
    text = exports.render(name, data)
    if name != "unsloth":
        return yaml.safe_load(text)
    (call,) = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)]
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


# --------------------------------------------------------------------------- axolotl
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
        layers_to_transform=None,
        layers_pattern=None,
        lora_dropout=cfg["lora_dropout"],
        fan_in_fan_out=None,
        modules_to_save=cfg.get("lora_modules_to_save") or None,
        exclude_modules=None,
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


@pytest.mark.parametrize("case", CASES)
def test_axolotl_round_trip(case):
    resolution, plan, counted = resolved(case)
    cfg = reread("axolotl", exports.axolotl(plan))
    assert set(cfg) <= AXOLOTL_KEYS
    assert_adapts_exactly(resolution, axolotl_lora_config(cfg), counted)


# The trainers' own schema code: pure Python wheels, installed --no-deps into a temporary folder (not the
# venv; their full dependency trees need a GPU stack). Pinned, because option names move between releases.
TRAINER_WHEELS = ("axolotl==0.19.0", "llamafactory==0.9.5")


@pytest.fixture(scope="module")
def trainer_site(tmp_path_factory):
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("trainers")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *TRAINER_WHEELS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.skip(
            f"could not install {', '.join(TRAINER_WHEELS)} from the package registry: "
            f"{done.stderr.strip().splitlines()[-1:]}"
        )
    return target


@pytest.fixture
def trainers(trainer_site, monkeypatch):
    monkeypatch.syspath_prepend(str(trainer_site))
    yield trainer_site
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] in ("axolotl", "llamafactory")]:
        del sys.modules[name]


def test_axolotl_schema_accepts_the_export(trainers):
    schema = pytest.importorskip("axolotl.utils.schemas.peft", reason="axolotl not installed")
    for case in CASES:
        _, plan, _ = resolved(case)
        data = exports.axolotl(plan)
        parsed = schema.LoraConfig.model_validate(data)
        assert set(data) <= set(schema.LoraConfig.model_fields)
        assert {key: getattr(parsed, key) for key in data} == data


# --------------------------------------------------------------------------- LLaMA-Factory
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
    "case,composite,resolve",
    [
        ("llama", False, {}),
        ("llama-options", False, {}),
        ("vlm", False, {}),
        ("vlm", True, {}),
        ("llama", False, {"last_layers": 2}),  # only full names single out two layers
    ],
)
def test_llamafactory_round_trip(case, composite, resolve):
    resolution, plan, counted = resolved(case, per_role=False, **resolve)
    args = reread("llamafactory", exports.llamafactory(plan))
    assert set(args) <= LLAMAFACTORY_KEYS and args["finetuning_type"] == "lora"
    assert_adapts_exactly(resolution, llamafactory_lora_config(args, resolution.model_map.module, composite), counted)


@pytest.mark.parametrize("init", ["pissa", "pissa_niter_4"])
def test_llamafactory_pissa_maps_back(init):
    resolution = lr.resolve(str(LLAMA), roles="q,v")
    args = exports.llamafactory(_plan(resolution, init_lora_weights=init))
    # model/adapter.py: init_lora_weights = "pissa" if pissa_iter == -1 else f"pissa_niter_{pissa_iter}"
    assert args["pissa_init"] is True
    assert ("pissa" if args["pissa_iter"] == -1 else f"pissa_niter_{args['pissa_iter']}") == init


def test_llamafactory_arguments_parse_the_export(trainers):
    spec = importlib.util.find_spec("llamafactory")
    if spec is None:
        pytest.skip("llamafactory not installed")
    # Load the dataclass file alone: the package's __init__ imports its whole training stack.
    path = spec.submodule_search_locations[0] + "/hparams/finetuning_args.py"
    module_spec = importlib.util.spec_from_file_location("llamafactory_finetuning_args", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    resolution = lr.resolve(str(LLAMA), roles="q,v,ffn")
    data = exports.llamafactory(_plan(resolution, r=8, lora_alpha=32, use_rslora=True))
    parsed = module.FinetuningArguments(**data)
    assert parsed.lora_target == sorted(resolution.lora_config().target_modules)
    assert (parsed.lora_rank, parsed.lora_alpha, parsed.use_rslora) == (8, 32, True)


# --------------------------------------------------------------------------- Unsloth
def unsloth_lora_config(kwargs):
    """unsloth/models/llama.py FastLlamaModel.get_peft_model: `arguments = dict(...)`, extra keywords last."""
    kwargs = dict(kwargs)
    named = {
        key: kwargs.pop(key)
        for key in (
            "r",
            "lora_alpha",
            "target_modules",
            "lora_dropout",
            "bias",
            "init_lora_weights",
            "use_rslora",
            "target_parameters",
        )
    }
    return LoraConfig(
        task_type="CAUSAL_LM",
        layers_to_transform=None,
        layers_pattern=None,
        loftq_config=kwargs.pop("loftq_config", {}),
        modules_to_save=kwargs.pop("modules_to_save", None),
        **named,
        **kwargs,
    )


@pytest.mark.parametrize("case", CASES)
def test_unsloth_round_trip(case):
    resolution, plan, counted = resolved(case)
    data = exports.unsloth(plan)
    kwargs = reread("unsloth", data)
    assert kwargs == data
    assert set(kwargs) <= UNSLOTH_SIGNATURE | set(LoraConfig().to_dict())
    assert isinstance(kwargs["target_parameters"], list)  # None would let Unsloth add expert weights itself
    assert_adapts_exactly(resolution, unsloth_lora_config(kwargs), counted)


# --------------------------------------------------------------------------- torchtune
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
    args = exports.torchtune(
        _plan(
            resolution,
        )
    )["model"]
    assert args["_component_"] == "torchtune.models.llama3_2.lora_llama3_2_1b"
    assert args["lora_attn_modules"] == ["q_proj", "k_proj", "v_proj", "output_proj"]
    with pytest.raises(ConfigError, match="tied"):
        resolution = lr.resolve(cfg, roles="q,lm-head")
        exports.torchtune(
            _plan(
                resolution,
            )
        )


# --------------------------------------------------------------------------- refusals
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
    ("torchtune", LLAMA, "ffn", {}, "at least one attention projection"),
    ("torchtune", LLAMA, "q,v", {"modules_to_save": "lm-head"}, "modules_to_save"),
    ("torchtune", LLAMA, "q,v", {"use_rslora": True}, "use_rslora"),
    ("torchtune", EXAMPLES / "phi-3-mini-4k-instruct", "all", {}, "attention-qkv, ffn-gate-up"),
    ("torchtune", EXAMPLES / "mistral-7b-v0.3", "q,v", {}, "vocab_size=32768"),
    ("torchtune", MOE, "attention", {}, "model_type qwen3_moe"),
    ("torchtune", "llava", "q,v", {}, "model_type llava"),
]


@pytest.mark.parametrize("trainer,model,roles,kwargs,message", REFUSALS)
def test_unexpressible_is_refused(trainer, model, roles, kwargs, message):
    resolution = lr.resolve(str(model), roles=roles)
    plan = _plan(resolution, r=8, **kwargs)
    with pytest.raises(ConfigError) as info:
        exports.EXPORTS[trainer](plan)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_torchtune_refuses_a_layer_selection():
    resolution = lr.resolve(str(LLAMA), roles="q,v", last_layers=4)
    with pytest.raises(ConfigError, match="all 32 layers"):
        exports.torchtune(
            _plan(
                resolution,
            )
        )


def test_llamafactory_refuses_the_vision_tower():
    resolution = lr.resolve("llava", roles="q,v", scope="language,vision")
    with pytest.raises(ConfigError, match="--scope language"):
        exports.llamafactory(
            _plan(
                resolution,
            )
        )


def test_render_rejects_unknown_format():
    with pytest.raises(ConfigError, match="axolotl, llamafactory, unsloth, torchtune"):
        exports.render("deepspeed", {})
