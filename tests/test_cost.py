"""Cost before training equals what PEFT builds, to the parameter; PEFT options PEFT would reject are refused first."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES

LLAMA = str(EXAMPLES / "llama-3.1-8b")
QWEN3_MOE = str(FIXTURES / "qwen3-30b-a3b")
PHI2 = str(FIXTURES / "phi-2")


def peft_trainable(resolution, r=8, ranks=None, **options):
    """Build the emitted config with PEFT and count its requires_grad parameters."""
    from peft import get_peft_model

    config = resolution.lora_config(r=r, ranks=ranks, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(resolution.model_map.module, config)
    return sum(p.numel() for p in model.parameters() if p.requires_grad), model


EXACT = [
    # (MODEL, roles, ranks, PEFT options)
    (LLAMA, "q,v,ffn", {"ffn": 4}, {}),
    (LLAMA, "q,v", None, {"use_dora": True, "lora_dropout": 0.05}),
    (LLAMA, "q,v", {"v": 4}, {"use_rslora": True, "modules_to_save": ["lm-head"]}),
    (LLAMA, "all", None, {"bias": "all", "modules_to_save": "embed,lm_head", "init_lora_weights": "gaussian"}),
    (
        QWEN3_MOE,
        "q,v,experts,router",
        {"experts": 4},
        {"bias": "all", "use_rslora": True, "modules_to_save": ["lm-head"]},
    ),
    (QWEN3_MOE, "q,v,experts", None, {"bias": "lora_only", "init_lora_weights": False}),
    (PHI2, "q,v,ffn", None, {"bias": "all", "modules_to_save": ["lm-head"]}),
    (PHI2, "q,v,ffn", {"ffn": 4}, {"bias": "lora_only", "use_dora": True}),
    (PHI2, "all,embed", None, {"use_dora": True}),
    (
        str(FIXTURES / "mixtral-8x7b-v0.1"),
        "attention,experts,router",
        None,
        {"bias": "lora_only", "modules_to_save": ["lm-head"]},
    ),
    ("gpt2", "qkv,o,ffn", None, {"use_dora": True, "bias": "lora_only"}),  # transposed Conv1D
]


@pytest.mark.parametrize(
    "model,roles,ranks,options",
    EXACT,
    ids=[f"{m.rsplit('/', 1)[-1]}-{roles}-{'-'.join(o) or 'plain'}" for m, roles, _, o in EXACT],
)
def test_cost_equals_what_peft_builds(model, roles, ranks, options):
    resolution = lr.resolve(model, roles=roles)
    cost = resolution.cost(8, ranks, **options)
    assert cost.total == resolution.trainable_parameters(8, ranks, **options)
    assert (cost.dora > 0) == bool(options.get("use_dora"))
    assert bool(cost.modules_to_save) == bool(options.get("modules_to_save"))
    trainable, _ = peft_trainable(resolution, 8, ranks, **options)
    assert trainable == cost.total


def test_cost_parts_by_hand():
    # llama-3.1-8b: q 4096->4096, v 4096->1024, 32 layers; lm_head 128256 x 4096, no biases anywhere
    resolution = lr.resolve(LLAMA, roles="q,v")
    plain = resolution.cost()
    assert plain.lora == {"attention-q": 32 * 8 * 8192, "attention-v": 32 * 8 * 5120}
    dora = resolution.cost(use_dora=True, modules_to_save=["lm-head"], bias="all")
    assert dora.dora == 32 * (4096 + 1024)
    assert dora.modules_to_save == {"lm_head": 128256 * 4096} and dora.biases == 0
    assert dora.total == plain.total + 32 * 5120 + 128256 * 4096
    # phi-2: bias="all" trains every bias except lm_head's original (ModulesToSaveWrapper freezes it; its copy trains)
    phi = lr.resolve(PHI2, roles="q,v")
    module = phi.model_map.module
    every_bias = sum(p.numel() for n, p in module.named_parameters() if n.endswith(".bias"))
    assert phi.cost(bias="all").biases == every_bias
    assert phi.cost(bias="all", modules_to_save="lm_head").biases == every_bias - module.lm_head.bias.numel()
    assert phi.cost(bias="lora_only").biases == 32 * (2560 + 2560)  # q_proj and v_proj biases only


def test_memory_and_share():
    resolution = lr.resolve(LLAMA, roles="q,v")
    cost = resolution.cost()
    assert cost.share == pytest.approx(cost.total / resolution.model_map.base_parameters)
    assert cost.memory("fp32") == {
        "weights": 4 * cost.total,
        "gradients": 4 * cost.total,
        "adamw_states": 8 * cost.total,
        "total": 16 * cost.total,
    }
    assert cost.memory("bf16")["total"] == 8 * cost.total == 8 * 3_407_872
    with pytest.raises(lr.ConfigError, match="precision"):
        cost.memory("fp8")
    doc = resolution.to_dict(use_dora=True)
    assert doc["trainable_parameters"] == doc["cost"]["total"] == resolution.trainable_parameters(use_dora=True)
    assert doc["cost"]["memory_bytes"]["bf16"]["total"] == 8 * doc["cost"]["total"]


def test_adapter_memory_at_the_dtypes_peft_allocates_and_base_weights():
    resolution = lr.resolve(LLAMA, roles="q,v")
    cost = resolution.cost(use_dora=True, modules_to_save=["lm-head"])
    lora_and_dora = sum(cost.lora.values()) + cost.dora
    copies = sum(cost.modules_to_save.values())
    # LoRA and DoRA fp32 (autocast_adapter_dtype), the lm_head copy in the model's bf16
    assert cost.adapter_memory() == {
        "weights": 4 * lora_and_dora + 2 * copies,
        "gradients": 4 * lora_and_dora + 2 * copies,
        "adamw_states": 2 * (4 * lora_and_dora + 2 * copies),
        "total": 4 * (4 * lora_and_dora + 2 * copies),
    }
    doc = resolution.to_dict(use_dora=True, modules_to_save=["lm-head"])["cost"]
    assert doc["adapter_memory_bytes"] == cost.adapter_memory()
    assert doc["memory_bytes"]["fp32"]["total"] == 16 * cost.total  # the old keys keep their meaning
    weights = doc["base_weight_bytes"]
    assert weights["bf16"] == 2 * resolution.model_map.base_parameters == 16_060_522_496
    # Llama-3.1-8B: 224 quantized projections; embed_tokens and lm_head (the output embedding) stay bf16
    embeddings = 2 * 2 * 128256 * 4096
    assert weights["8bit"] - embeddings < weights["bf16"] // 2 < weights["8bit"]
    assert weights["4bit_double_quant"] < weights["4bit"] < weights["8bit"]


def _tiny_llama():
    # real (random, tiny) weights: PiSSA/OLoRA/MiCA decompose the base weight, which a meta model has not got
    config = AutoConfig.for_model(
        "llama",
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize(
    "roles,options",
    [
        ("q,v,ffn", {"init_lora_weights": "mica"}),
        ("q,v,embed", {"init_lora_weights": "mica"}),
        ("q,v", {"init_lora_weights": "pissa_niter_2", "use_dora": True}),
        ("q,v,embed", {"init_lora_weights": "olora"}),
    ],
)
def test_weight_based_inits_on_real_weights(roles, options):
    resolution = lr.resolve(_tiny_llama(), roles=roles)
    trainable, _ = peft_trainable(resolution, **options)
    assert trainable == resolution.trainable_parameters(**options)
    if options["init_lora_weights"] == "mica":  # MiCA trains A only
        assert trainable < resolution.trainable_parameters()


def test_modules_to_save_names():
    resolution = lr.resolve(LLAMA, roles="v", last_layers=2)
    assert resolution.modules_to_save("lm-head,embed") == ["model.embed_tokens", "lm_head"]
    assert resolution.modules_to_save(["embed_tokens"]) == ["model.embed_tokens"]
    # a role keeps to the selected layers
    assert resolution.modules_to_save("q") == ["model.layers.30.self_attn.q_proj", "model.layers.31.self_attn.q_proj"]
    config = resolution.lora_config(modules_to_save=["lm-head"])
    assert config.modules_to_save == ["lm_head"]


REFUSED = [
    # (MODEL, roles, options, message)
    (LLAMA, "q,v", {"bias": "some"}, "bias must be one of"),
    (LLAMA, "q,v", {"lora_dropout": 1.5}, "lora_dropout must be at least 0 and below 1"),
    (LLAMA, "q,v", {"lora_dropout": -0.1}, "lora_dropout must be at least 0"),
    (LLAMA, "q,v", {"init_lora_weights": "xavier"}, "init_lora_weights must be"),
    (LLAMA, "q,v", {"init_lora_weights": "pissa_niter_x"}, "init_lora_weights must be"),
    (LLAMA, "q,v", {"init_lora_weights": "loftq"}, "needs loftq_config"),
    (LLAMA, "q,v", {"init_lora_weights": "orthogonal", "ranks": {"v": 3}}, "needs even ranks"),
    (LLAMA, "q,v", {"init_lora_weights": "mica", "use_dora": True}, "cannot be combined"),
    (LLAMA, "q,v", {"init_lora_weights": "mica", "r": 4096 + 1}, "needs rank <="),
    (LLAMA, "q,v", {"use_dora": "yes"}, "use_dora must be True or False"),
    (LLAMA, "q,v", {"modules_to_save": ["nothing_here"]}, "neither a role nor a module"),
    (LLAMA, "q,v", {"modules_to_save": ["experts"]}, "matches nothing"),
    (LLAMA, "q,v", {"modules_to_save": ["q"]}, "both a LoRA target"),
    (LLAMA, "q,v", {"modules_to_save": ["self_attn"]}, "both a LoRA target"),
    (QWEN3_MOE, "q,v,experts", {"use_dora": True}, "no DoRA for target_parameters"),
    (QWEN3_MOE, "q,v,experts", {"lora_dropout": 0.1}, "lora_dropout must be 0"),
    (QWEN3_MOE, "q,v,experts", {"init_lora_weights": "mica"}, "no MiCA for target_parameters"),
    (QWEN3_MOE, "q,v,experts", {"init_lora_weights": "orthogonal"}, "reads a module's weight"),
    (QWEN3_MOE, "q,v", {"modules_to_save": ["experts"]}, "selects parameters"),
]


@pytest.mark.parametrize("model,roles,options,message", REFUSED, ids=[m for *_, m in REFUSED])
def test_refused_with_one_line(model, roles, options, message):
    options = dict(options)
    r, ranks = options.pop("r", 8), options.pop("ranks", None)
    resolution = lr.resolve(model, roles=roles)
    for build in (resolution.lora_config, resolution.cost):
        with pytest.raises(lr.ConfigError, match=message) as info:
            build(r, ranks=ranks, **options)
        assert "\n" not in str(info.value)


# What PEFT itself does with each refused combination: the rules above are not guesses.
PEFT_FAILS = [
    (QWEN3_MOE, "q,v,experts", {"use_dora": True}, ValueError, "does not work with use_dora"),
    (QWEN3_MOE, "q,v,experts", {"lora_dropout": 0.1}, ValueError, "does not work with lora_dropout"),
    (QWEN3_MOE, "q,v,experts", {"init_lora_weights": "orthogonal"}, AttributeError, "weight"),
    (QWEN3_MOE, "experts", {"init_lora_weights": "mica"}, ValueError, "variant combination"),
    (LLAMA, "q,v", {"bias": "some"}, NotImplementedError, "bias"),
    (LLAMA, "q,v", {"lora_dropout": 1.5}, ValueError, "dropout probability"),
    (LLAMA, "q,v", {"init_lora_weights": "xavier"}, ValueError, "Unknown initialization"),
    (LLAMA, "q,v", {"init_lora_weights": "orthogonal", "r": 7}, ValueError, "even"),
    (LLAMA, "q,v", {"init_lora_weights": "mica", "use_dora": True}, ValueError, "variant combination"),
]


@pytest.mark.parametrize("model,roles,options,error,message", PEFT_FAILS, ids=[m for *_, m in PEFT_FAILS])
def test_peft_rejects_what_is_refused(model, roles, options, error, message):
    from peft import get_peft_model

    options = dict(options)
    resolution = lr.resolve(model, roles=roles)
    config = resolution.lora_config(options.pop("r", 8))
    for key, value in options.items():  # bypass the checks: set the option on an accepted config
        setattr(config, key, value)
    with warnings.catch_warnings(), pytest.raises(error, match=message):
        warnings.simplefilter("ignore")
        get_peft_model(resolution.model_map.module, config)


def test_peft_silently_drops_lora_inside_modules_to_save():
    # Why an overlap is refused: PEFT does not fail, it just leaves the target un-adapted.
    resolution = lr.resolve(LLAMA, roles="q,v")
    config = resolution.lora_config()
    config.modules_to_save = ["model.layers.0.self_attn.q_proj"]
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(resolution.model_map.module, config)
    assert "model.layers.0.self_attn.q_proj" not in model.base_model.targeted_module_names
    assert "model.layers.1.self_attn.q_proj" in model.base_model.targeted_module_names
