"""Exports run through the trainers' own code, installed from their pinned wheels (conftest ``trainer_site``).

axolotl's pydantic schema, LLaMA-Factory's argument dataclass and its composite-model table,
MLX-LM building the model from config.json and adapting it with the exported keys, ms-swift's own
argument parsing, LitGPT building its model with the exported switches: on the meta device (mlx:
lazy arrays), never with weights. What each then adapts, mapped back to transformers' names, is
compared with the plan, and so is the trainable count.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import logging
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from peft import LoraConfig

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, assert_adapts_exactly, tiny_config, write_config
from lora_registry import exports, trainer_configs
from lora_registry.settings import LoraSettings

LLAMA = EXAMPLES / "llama-3.1-8b"
# pure Python packages put back out of reach after this module (mlx is a C extension: it stays loaded)
_PURE = ("axolotl", "llamafactory", "swift", "litgpt", "lightning", "lightning_utilities", "torchmetrics")


@pytest.fixture(scope="module")
def site(trainer_site):
    sys.path.insert(0, str(trainer_site))
    yield trainer_site
    sys.path.remove(str(trainer_site))
    for name in [m for m in sys.modules if m.split(".")[0] in _PURE]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny config folders (2 layers, width 64): transformers' full defaults, as a checkpoint's config.json has them."""
    base = tmp_path_factory.mktemp("configs")
    sizes = {
        "llama": {},
        "phi3": {},
        "qwen3": {"head_dim": 16},
        "gemma2": {"head_dim": 16},
        "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
        "qwen3_moe": {"head_dim": 16, "num_experts": 4, "moe_intermediate_size": 32},
    }
    return {name: write_config(base, tiny_config(name, **extra), name) for name, extra in sizes.items()}


def _plan(resolution, **options):
    return resolution.plan(LoraSettings.from_options(**{"r": 8, **options}))


# --------------------------------------------------------------------------- axolotl, LLaMA-Factory
def test_axolotl_schema_accepts_the_export(site):
    from axolotl.utils.schemas.peft import LoraConfig as AxolotlLoraConfig

    for model, roles, selection in (
        (LLAMA, "q,v,ffn", {}),
        (FIXTURES / "qwen3-30b-a3b", "all,router", {}),
        ("llava", "q,v", {"layers": "1,3"}),  # peft_layers_to_transform and peft_layers_pattern
    ):
        plan = _plan(lr.resolve(str(model), roles=roles, **selection))
        data = exports.axolotl(plan)
        parsed = AxolotlLoraConfig.model_validate(data)
        assert set(data) <= set(AxolotlLoraConfig.model_fields)
        assert {key: getattr(parsed, key) for key in data} == data


def _llamafactory_file(site, relative):
    """One LLaMA-Factory module loaded alone: the package's __init__ imports its whole training stack."""
    path = site / "llamafactory" / relative
    spec = importlib.util.spec_from_file_location(f"llamafactory_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llamafactory_arguments_parse_the_export(site):
    arguments = _llamafactory_file(site, "hparams/finetuning_args.py")
    resolution = lr.resolve(str(LLAMA), roles="q,v,ffn")
    data = exports.llamafactory(_plan(resolution, lora_alpha=32, use_rslora=True))
    parsed = arguments.FinetuningArguments(**data)
    assert parsed.lora_target == sorted(resolution.lora_config().target_modules)
    assert (parsed.lora_rank, parsed.lora_alpha, parsed.use_rslora) == (8, 32, True)


def test_llamafactory_composite_table_is_its_own(site):
    # explain restates model/model_utils/visual.py's _register_composite_model calls; read them from the wheel
    tree = ast.parse((site / "llamafactory/model/model_utils/visual.py").read_text())
    registered = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_register_composite_model":
            kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            registered[kw["model_type"]] = (
                kw.get("projector_keys") or ["multi_modal_projector"],
                kw.get("vision_model_keys") or ["vision_tower"],
                kw.get("language_model_keys") or ["language_model", "lm_head"],
                kw.get("lora_conflict_keys") or [],
            )
    assert registered == trainer_configs.LLAMAFACTORY_COMPOSITE


# --------------------------------------------------------------------------- MLX-LM
def _mlx_model(config_dir):
    import json

    from mlx_lm.utils import _get_classes

    data = json.loads((config_dir / "config.json").read_text())
    model_class, args_class = _get_classes(data)
    model = model_class(args_class.from_dict(data))
    model.freeze()
    return model


def _mlx_adapted(model):
    """``{module path: trainable parameters}`` of the LoRA / DoRA layers mlx-lm made."""
    from mlx.utils import tree_flatten

    out: dict[str, int] = {}
    for name, value in tree_flatten(model.trainable_parameters()):
        module = name.rsplit(".", 1)[0]
        out[module] = out.get(module, 0) + value.size
    return out


@pytest.mark.parametrize(
    "model,roles,options,selection",
    [
        ("llama", "q,v,ffn,lm-head", {}, {}),
        ("llama", "q,down", {"lora_alpha": 32, "use_rslora": True}, {"last_layers": 1}),  # relative keys, num_layers 1
        ("llama", "v,embed", {"use_dora": True}, {"layers": "0"}),  # full paths
        ("phi3", "all", {}, {}),  # fused qkv_proj, gate_up_proj: the same modules in mlx-lm
        ("qwen3", "attention,lm-head", {"lora_dropout": 0.1}, {}),
    ],
)
def test_mlx_lm_adapts_exactly_the_resolved_modules(site, tiny, model, roles, options, selection):
    from mlx_lm.tuner.utils import linear_to_lora_layers

    resolution = lr.resolve(tiny[model], roles=roles, **selection)
    plan = _plan(resolution, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = yaml.safe_load(exports.render("mlx-lm", exports.mlx_lm(plan)))
    said = [str(w.message) for w in caught if issubclass(w.category, exports.ExportWarning)]
    mlx = _mlx_model(Path(tiny[model]))
    # mlx_lm/lora.py train_model: linear_to_lora_layers(model, args.num_layers, args.lora_parameters, use_dora=...)
    assert data["num_layers"] <= len(mlx.layers)
    linear_to_lora_layers(mlx, data["num_layers"], data["lora_parameters"], use_dora=data["fine_tune_type"] == "dora")
    adapted = _mlx_adapted(mlx)
    assert set(adapted) == {leaf.name for leaf in resolution.leaves}
    if said:  # DoRA on an embedding: a magnitude per token in mlx-lm, per dimension in PEFT
        assert f"{sum(adapted.values()):,} trainable parameters" in said[0]
    else:
        assert sum(adapted.values()) == plan.cost.total  # LoRA A and B (and DoRA's magnitudes), as PEFT counts them
    scale = data["lora_parameters"]["scale"]
    expected = plan.settings.alpha / (8**0.5 if plan.settings.use_rslora else 8)
    assert scale == pytest.approx(expected)  # the forward is y + scale * lora_b(lora_a(x)): PEFT's scaling


def test_mlx_lm_names_are_transformers_names(site, tmp_path):
    # MLX_LM_MODEL_TYPES promises every Linear / Embedding module under transformers' own name (the LM head aside:
    # mlx-lm has none where it ties it to the embedding, and the export refuses it there)
    import mlx.nn as nn

    for model_type in sorted(exports.MLX_LM_MODEL_TYPES):
        folder = write_config(tmp_path, tiny_config(model_type, head_dim=16), model_type)
        mlx = _mlx_model(Path(folder))
        theirs = {n for n, m in mlx.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))}
        ours = {leaf.name for leaf in lr.inspect(folder).leaves if leaf.kind == "module"}
        assert theirs - {"lm_head"} == ours - {"lm_head"}, model_type


# --------------------------------------------------------------------------- ms-swift
@pytest.fixture(scope="module")
def swift_arguments(site):
    """ms-swift 4.6.0's TunerArguments, loaded by file: the swift package's __init__ pulls in its model registry,
    PIL and modelscope, and the two names this file needs from swift.utils (get_logger) are given to it."""
    stubs = {name: types.ModuleType(name) for name in ("swift", "swift.utils")}
    stubs["swift"].__path__ = []
    stubs["swift.utils"].get_logger = lambda *a, **k: logging.getLogger("swift")
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        path = site / "swift/arguments/tuner_args.py"
        spec = importlib.util.spec_from_file_location("swift_tuner_args", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old

    @dataclasses.dataclass
    class Arguments(module.TunerArguments):
        tuner_type: str = "lora"  # base_args/base_args.py BaseArguments
        model_meta: object = None

        def _init_multimodal_full(self):  # full fine-tuning only, and it needs the model registry
            pass

    return Arguments


def swift_argv(data):
    """swift/cli/main.py parse_yaml_args: each ``k: v`` of the config file becomes ``--k v`` (lists: repeated values)."""
    argv = []
    for key, value in data.items():
        argv.append(f"--{key}")
        argv += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return argv


@pytest.mark.parametrize(
    "model,roles,options,selection",
    [
        (LLAMA, "q,v,ffn", {"lora_dropout": 0.05}, {}),
        (LLAMA, "q,v", {"modules_to_save": "lm-head", "use_rslora": True}, {"layers": "0-7,24-31"}),  # target_regex
        ("llava", "q,v", {}, {}),  # the CLIP tower has q_proj too: a regex
        ("qwen3_moe", "attention,experts", {}, {}),  # target_parameters
    ],
)
def test_ms_swift_parses_the_export_and_adapts_exactly(swift_arguments, tiny, model, roles, options, selection):
    from transformers import HfArgumentParser

    plan = _plan(lr.resolve(tiny.get(model, str(model)), roles=roles, **selection), **options)
    data = yaml.safe_load(exports.render("ms-swift", exports.ms_swift(plan)))
    (args,) = HfArgumentParser([swift_arguments]).parse_args_into_dataclasses(swift_argv(data))
    # pipelines/train/tuner.py prepare_adapter (tuner_backend peft), get_target_modules (an explicit list or
    # target_regex is returned as it is), get_modules_to_save
    kwargs = dict(
        r=args.lora_rank,
        target_modules=args.target_modules,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        bias=args.lora_bias,
        modules_to_save=list(args.modules_to_save),
        use_rslora=args.use_rslora,
        use_dora=args.use_dora,
        init_lora_weights=args.init_weights,
    )
    if args.target_parameters is not None:
        kwargs["target_parameters"] = args.target_parameters
    assert isinstance(args.target_modules, str) == ("target_regex" in data)
    assert_adapts_exactly(plan, LoraConfig(task_type="CAUSAL_LM", **kwargs))


# --------------------------------------------------------------------------- LitGPT
def _litgpt_model(model_map, mlp_class, switches):
    """LitGPT's GPT for the same sizes as a tiny transformers model, built with the exported switches on meta."""
    from litgpt.lora import GPT, Config

    c = model_map.config
    experts = {"n_expert": 4, "n_expert_per_token": 2, "moe_intermediate_size": c["intermediate_size"]}
    config = Config(
        name="tiny",
        block_size=128,
        n_layer=c["num_hidden_layers"],
        n_embd=c["hidden_size"],
        n_head=c["num_attention_heads"],
        n_query_groups=c["num_key_value_heads"],
        head_size=c["hidden_size"] // c["num_attention_heads"],
        intermediate_size=c["intermediate_size"],
        vocab_size=c["vocab_size"],
        padded_vocab_size=c["vocab_size"],
        bias=False,
        norm_class_name="RMSNorm",
        parallel_residual=False,
        mlp_class_name=mlp_class,
        **(experts if mlp_class == "LLaMAMoE" else {}),
        **switches,
    )
    with torch.device("meta"):
        return GPT(config)


def _litgpt_adapted(model):
    """``{(layer, transformers role)}`` LitGPT adapts (scripts/convert_hf_checkpoint.py copy_weights_hf_llama names)."""
    from litgpt.lora import LoRALinear, LoRAQKVLinear

    roles = {
        "attn.proj": "attention-o",
        "mlp.fc_1": "ffn-gate",
        "mlp.fc_2": "ffn-up",
        "mlp.proj": "ffn-down",
        "mlp.gate": "router",
    }
    experts = {"fc_1": "experts-gate", "fc_2": "experts-up", "proj": "experts-down"}
    out = set()
    for name, module in model.named_modules():
        if not isinstance(module, LoRALinear) or module.r == 0:
            continue
        if name == "lm_head":
            out.add((None, "lm-head"))
            continue
        _, _, layer, rest = name.split(".", 3)
        if isinstance(module, LoRAQKVLinear):
            parts = ("attention-q", "attention-k", "attention-v")
            out.update((int(layer), part) for part, on in zip(parts, module.enable_lora) if on)
        elif rest.startswith("mlp.experts."):
            out.add((int(layer), experts[rest.rsplit(".", 1)[-1]]))
        else:
            out.add((int(layer), roles[rest]))
    return out


ATTENTION = ("attention-q", "attention-k", "attention-v", "attention-o")
FFN = ("ffn-gate", "ffn-up", "ffn-down")


@pytest.mark.parametrize(
    "model,roles,mlp_class,per_layer,head",
    [
        ("llama", "q,k,o,ffn,lm-head", "LLaMAMLP", ("attention-q", "attention-k", "attention-o", *FFN), True),
        ("phi3", "q,v", "LLaMAMLP", ("attention-q", "attention-v"), False),  # one LoRA per enabled part of its qkv
        ("phi3", "all", "LLaMAMLP", (*ATTENTION, *FFN), False),
        (
            "mixtral",
            "attention,experts,router",
            "LLaMAMoE",
            (*ATTENTION, "experts-gate", "experts-up", "experts-down", "router"),
            False,
        ),
    ],
)
def test_litgpt_adapts_what_was_asked(site, tiny, model, roles, mlp_class, per_layer, head):
    from litgpt.lora import mark_only_lora_as_trainable

    resolution = lr.resolve(tiny[model], roles=roles)
    plan = _plan(resolution)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        switches = yaml.safe_load(exports.render("litgpt", exports.litgpt(plan)))
    said = [str(w.message) for w in caught if issubclass(w.category, exports.ExportWarning)]
    gpt = _litgpt_model(resolution.model_map, mlp_class, switches)
    mark_only_lora_as_trainable(gpt)
    expected = {(layer, role) for layer in range(2) for role in per_layer} | ({(None, "lm-head")} if head else set())
    assert _litgpt_adapted(gpt) == expected
    trainable = sum(p.numel() for p in gpt.parameters() if p.requires_grad)
    fused = {"attention-qkv", "ffn-gate-up", "experts-gate-up"} & set(resolution.names_by_role())
    if fused:  # LitGPT's own LoRA per part of a fused module: the export says how many parameters that makes
        (message,) = said
        assert f"{trainable:,} trainable parameters" in message
    else:
        assert not said and trainable == plan.cost.total
