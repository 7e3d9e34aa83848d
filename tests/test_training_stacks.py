"""Models as training stacks hold them: compiled, DDP/FSDP-wrapped, checkpointed, ZeRO-3-partitioned, quantized
and PEFT-wrapped, with the real libraries on CPU (one single-process gloo group for the module).

A training script calls ``lr.resolve(model, ...)`` on the model it has. Each case checks that the map
has the bare model's names, roles, shapes and parameter count, and that PEFT applies the emitted
config to exactly the resolved set of the model the trainer wraps.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import lora_registry as lr
from helpers import peft_applies_exactly, tiny_model

ROLES = {"llama": "all,embed,lm-head", "qwen3_moe": "all,router", "gpt2": "all"}


def leaf_view(model_map):
    """What must not depend on how the model is held: each leaf's name, kind, shape, layer, scope and role."""
    return [
        (leaf.name, leaf.kind, leaf.lora_type, leaf.shape, leaf.layer, leaf.scope, model_map.roles.get(leaf.name))
        for leaf in model_map.leaves
    ]


@pytest.fixture(scope="module")
def bare_maps():
    """The map of each tiny model as built, unwrapped (meta device)."""
    return {model_type: lr.inspect(tiny_model(model_type, "meta")) for model_type in ROLES}


def check(model, model_type, bare_maps, *, classes=True, apply_to=None):
    """``model`` maps as the bare model does, and PEFT adapts exactly the resolution of ``ROLES`` on ``apply_to``.

    ``apply_to`` is the model the trainer wraps: a fresh bare one unless given (a quantized model itself,
    whose layer classes, and HQQ's parameter names, are its own: ``classes=False``).
    """
    bare = bare_maps[model_type]
    got = lr.inspect(model)
    assert leaf_view(got) == leaf_view(bare)
    assert (got.model_type, got.plugin, got.base_parameters) == (bare.model_type, bare.plugin, bare.base_parameters)
    assert got.all_module_names == bare.all_module_names
    if classes:
        assert got.parameter_names == bare.parameter_names
    assert (got.tree.input_embedding, got.tree.output_embedding) == (
        bare.tree.input_embedding,
        bare.tree.output_embedding,
    )
    if classes:
        assert [node.cls for node in got.tree.nodes] == [node.cls for node in bare.tree.nodes]
    resolution = lr.resolve(model, roles=ROLES[model_type])
    reference = lr.resolve(bare, roles=ROLES[model_type])
    assert resolution.names_by_role() == reference.names_by_role()
    plan, expected_plan = resolution.plan(), reference.plan()
    assert (plan.target_modules, plan.target_parameters) == (
        expected_plan.target_modules,
        expected_plan.target_parameters,
    )
    expected, targeted, predicted, trainable = peft_applies_exactly(
        resolution, apply_to if apply_to is not None else tiny_model(model_type, "meta")
    )
    assert targeted == expected and trainable == predicted
    return got


# ----------------------------------------------------------------------------- torch's wrappers
@pytest.fixture(scope="module")
def process_group(tmp_path_factory):
    """One single-process gloo group for DDP, FSDP and DeepSpeed (which also reads the rank variables)."""
    import torch.distributed as dist

    store = tmp_path_factory.mktemp("process-group") / "store"
    with pytest.MonkeyPatch.context() as env:
        for key in ("RANK", "LOCAL_RANK"):
            env.setenv(key, "0")
        env.setenv("WORLD_SIZE", "1")
        dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{store}")
        try:
            yield
        finally:
            dist.destroy_process_group()


def layers(model):
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def compiled(model):
    return torch.compile(model)  # never run: the OptimizedModule wrapper is what a script holds


def ddp(model):
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def data_parallel(model):
    return torch.nn.DataParallel(model)


def fsdp1(model, use_orig_params=False):
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    policy = ModuleWrapPolicy({type(layers(model)[0])})
    return FullyShardedDataParallel(
        model, auto_wrap_policy=policy, device_id=torch.device("cpu"), use_orig_params=use_orig_params
    )


def fsdp1_orig_params(model):
    return fsdp1(model, use_orig_params=True)


def fsdp2(model):
    from torch.distributed.fsdp import fully_shard

    for layer in layers(model):
        fully_shard(layer)
    return fully_shard(model)


def checkpointed(model):
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

    layer_class = type(layers(model)[0])
    apply_activation_checkpointing(model, check_fn=lambda module: isinstance(module, layer_class))
    return model


def hf_checkpointing(model):
    model.gradient_checkpointing_enable()
    return model


def stacked(model):
    return torch.compile(ddp(checkpointed(model)))


WRAPPERS = [compiled, ddp, data_parallel, fsdp1, fsdp1_orig_params, fsdp2, checkpointed, hf_checkpointing, stacked]


@pytest.mark.parametrize("model_type", sorted(ROLES))
@pytest.mark.parametrize("wrap", WRAPPERS, ids=[w.__name__ for w in WRAPPERS])
def test_wrapped_models_map_as_the_bare_model(wrap, model_type, process_group, bare_maps):
    model = wrap(tiny_model(model_type))
    check(model, model_type, bare_maps)


def test_ddp_keeps_the_config_gpt2s_ffn_and_the_model_type(process_group, bare_maps):
    got = lr.inspect(ddp(tiny_model("gpt2")))
    assert got.model_type == "gpt2" and got.plugin == bare_maps["gpt2"].plugin
    assert got.roles["transformer.h.1.mlp.c_proj"] == "ffn-down"


def test_fsdp2_keeps_the_original_class_names(process_group):
    model = fsdp2(tiny_model("qwen3_moe"))
    assert type(model).__name__ == "FSDPQwen3MoeForCausalLM"
    assert lr.inspect(model).tree.root_class == "Qwen3MoeForCausalLM"


def test_empty_weights_from_accelerate(bare_maps):
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = tiny_model("qwen3_moe", None)
    check(model, "qwen3_moe", bare_maps)


# ----------------------------------------------------------------------------- DeepSpeed ZeRO-3
@pytest.fixture(scope="module")
def deepspeed(process_group):
    """DeepSpeed on the module's process group."""
    import deepspeed

    # The shared-memory collective kernel only speeds up multi-process CPU runs; building it takes minutes.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    return deepspeed


@pytest.fixture(scope="module")
def zero3(deepspeed):
    """GPT-2 and Qwen3-MoE built under ``deepspeed.zero.Init``: every parameter partitioned to shape [0]."""
    models = {}
    for model_type in ("gpt2", "qwen3_moe"):
        tiny_model(
            model_type, "meta"
        )  # import the model code first: zero.Init's patched constructors break torch imports
        with deepspeed.zero.Init(
            config_dict_or_path={"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}}
        ):
            models[model_type] = tiny_model(model_type, None)
    return models


@pytest.mark.parametrize("model_type", ["gpt2", "qwen3_moe"])
def test_zero3_partitioned_parameters_count_at_their_full_shape(zero3, model_type, bare_maps):
    model = zero3[model_type]
    assert all(tuple(p.shape) == (0,) for p in model.parameters())
    got = check(model, model_type, bare_maps)
    assert got.base_parameters > 0
    if model_type == "qwen3_moe":
        assert {"experts-gate-up", "experts-down", "router"} <= set(got.present_roles())


def test_deepspeed_engine(deepspeed, bare_maps):
    engine, *_ = deepspeed.initialize(model=tiny_model("gpt2"), config={"train_micro_batch_size_per_gpu": 1})
    assert type(engine).__name__ == "DeepSpeedEngine"
    check(engine, "gpt2", bare_maps)


# ----------------------------------------------------------------------------- quantized models
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Tiny Llama and Qwen3-MoE checkpoints, to load quantized as a training script does."""
    folder = tmp_path_factory.mktemp("checkpoints")
    for model_type in ("llama", "qwen3_moe"):
        tiny_model(model_type).save_pretrained(folder / model_type)
    return folder


def load_quantized(folder, quantization_config):
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization_config, device_map="cpu")


@pytest.mark.parametrize("model_type", ["llama", "qwen3_moe"])
@pytest.mark.parametrize("bits", [4, 8])
def test_bitsandbytes(saved, bits, model_type, bare_maps):
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True) if bits == 4 else BitsAndBytesConfig(load_in_8bit=True)
    model = load_quantized(saved / model_type, config)
    q_proj = layers(model)[0].self_attn.q_proj
    assert type(q_proj).__name__ == ("Linear4bit" if bits == 4 else "Linear8bitLt")
    if bits == 4:
        assert q_proj.weight.numel() * 2 == q_proj.in_features * q_proj.out_features  # packed two to a byte
    # packed 4-bit weights count at their logical size: the same base count as the unquantized model
    check(model, model_type, bare_maps, classes=False, apply_to=model)


def test_hqq(bare_maps):
    from hqq.core.quantize import BaseQuantizeConfig
    from hqq.models.hf.base import AutoHQQHFModel

    model = tiny_model("llama")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AutoHQQHFModel.quantize_model(
            model, quant_config=BaseQuantizeConfig(nbits=4, group_size=64), compute_dtype=torch.float32, device="cpu"
        )
    assert type(layers(model)[0].mlp.down_proj).__name__ == "HQQLinear"
    got = check(model, "llama", bare_maps, classes=False, apply_to=model)
    assert got.leaves[1].module_class == "HQQLinear"


def test_torchao(saved, bare_maps):
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import TorchAoConfig

    model = load_quantized(saved / "llama", TorchAoConfig(Int8WeightOnlyConfig()))
    assert "torchao" in type(layers(model)[0].self_attn.q_proj.weight).__module__
    check(model, "llama", bare_maps, apply_to=model)


def test_a_parameter_whose_size_cannot_be_known_is_an_error_naming_it():
    model = tiny_model("llama")
    # what a sharding library that records no full shape leaves behind
    layers(model)[1].mlp.down_proj.weight = torch.nn.Parameter(torch.empty(0))
    with pytest.raises(lr.ModelLoadError, match=r"model\.layers\.1\.mlp\.down_proj\.weight is empty here"):
        lr.inspect(model)


def test_packed_experts_peft_cannot_adapt_are_an_error_naming_them():
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.mxfp4 import Mxfp4GptOssExperts

    config = AutoConfig.for_model(
        "gpt_oss",
        num_hidden_layers=1,
        hidden_size=64,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=4,
        vocab_size=100,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    # gpt-oss as transformers loads it natively (replace_with_mxfp4_linear, which needs GPU kernels to run):
    # MXFP4 experts packed two values to a byte
    with torch.device("meta"):
        model.model.layers[0].mlp.experts = Mxfp4GptOssExperts(config)
    with pytest.raises(lr.ModelLoadError, match=r"model\.layers\.0\.mlp\.experts\.gate_up_proj: a packed uint8"):
        lr.inspect(model)


def test_a_quantized_layer_peft_has_no_layer_for_is_an_error_naming_it():
    from transformers.integrations.bitnet import BitLinear

    model = tiny_model("llama", "meta")
    layers(model)[0].mlp.up_proj = BitLinear(64, 96, bias=False, device="meta", dtype=torch.bfloat16)
    with pytest.raises(
        lr.ModelLoadError, match=r"model\.layers\.0\.mlp\.up_proj\.weight: a packed uint8 weight of BitLinear"
    ):
        lr.inspect(model)


# ----------------------------------------------------------------------------- PEFT models
def test_peft_model_with_modules_to_save_and_trainable_tokens(bare_maps):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4, target_modules=["q_proj"], modules_to_save=["lm_head"], trainable_token_indices={"embed_tokens": [1, 2]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(tiny_model("llama"), config)
    got = lr.inspect(peft_model)
    # no original_module, modules_to_save.default or token_adapter; the base count holds no adapter weights
    assert leaf_view(got) == leaf_view(bare_maps["llama"])
    assert got.base_parameters == bare_maps["llama"].base_parameters
    resolution = lr.resolve(peft_model, roles="v,embed,lm-head")
    assert resolution.modules["embed"] == ["model.embed_tokens"] and resolution.modules["lm-head"] == ["lm_head"]
    expected, targeted, predicted, trainable = peft_applies_exactly(resolution, tiny_model("llama", "meta"))
    assert targeted == expected and trainable == predicted


def test_a_further_adapter_on_a_peft_qwen3_moe_targets_what_the_first_one_does():
    from peft import LoraConfig, get_peft_model

    first = LoraConfig(
        r=4, target_modules=["q_proj"], target_parameters=["mlp.experts.down_proj", "mlp.experts.gate_up_proj"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(tiny_model("qwen3_moe", "meta"), first)
    resolution = lr.resolve(peft_model, roles="v,experts")
    config = resolution.lora_config()
    assert sorted(config.target_parameters) == ["mlp.experts.down_proj", "mlp.experts.gate_up_proj"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model.add_adapter("second", config)  # PEFT refused the shortest suffixes here before
    second = sum(p.numel() for name, p in peft_model.named_parameters() if ".second." in f"{name}.")
    assert second == resolution.trainable_parameters()
    with pytest.raises(lr.ConfigError, match="adapter 'default' with target_parameters"):
        lr.resolve(peft_model, roles="experts-down").lora_config()
