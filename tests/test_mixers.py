"""Token mixers that are not softmax attention (state-space, linear attention, recurrent): their roles,
what LoRA cannot train in them, and the warnings that keep a resolution from silently missing them."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import lora_registry as lr
from helpers import apply_peft, expected_keys
from lora_registry.limits import lora_limits

MAMBA = dict(num_hidden_layers=2, hidden_size=32, state_size=4, vocab_size=100)
ZAMBA = dict(
    num_hidden_layers=4,
    layers_block_type=["mamba", "hybrid", "mamba", "hybrid"],  # Zamba ties its shared block: two hybrids
    hidden_size=32,
    attention_head_dim=16,
    num_attention_heads=2,
    num_key_value_heads=2,
    n_mamba_heads=2,
    mamba_d_state=4,
    intermediate_size=64,
    vocab_size=100,
)


@pytest.fixture(scope="module")
def mamba(pm):
    return lr.inspect(AutoConfig.for_model("mamba", **MAMBA), plugin_manager=pm)


def _changes_logits(config, **lora):
    """Does a LoRA with a random B (init_lora_weights=False) change a real (CPU) model's output?"""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(0, 100, (1, 6))
    with torch.no_grad():
        base = model(ids).logits
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft = get_peft_model(model, LoraConfig(r=2, init_lora_weights=False, **lora))
        return not torch.allclose(base, peft(ids).logits)


def test_the_limits_are_what_the_model_does(mamba, pm):
    limits = lora_limits(mamba)
    kinds = {name.split(".", 3)[-1]: limit.kind for name, limit in limits.items() if ".0." in name}
    assert kinds == {
        "mixer.dt_proj": "never",
        "mixer.x_proj": "kernels",
        "mixer.out_proj": "refused",
        "mixer.conv1d": "refused",
    }
    # dt_proj is multiplied by its .weight, never called: its LoRA changes nothing; x_proj's and in_proj's do
    config = AutoConfig.for_model("mamba", **MAMBA)
    assert not _changes_logits(config, target_modules=["dt_proj"])
    assert _changes_logits(config, target_modules=["x_proj"]) and _changes_logits(config, target_modules=["in_proj"])
    # Zamba's 3-D x_proj_weight: PEFT accepts it, and the forward raises (the mixer is called by keyword)
    zamba_config = AutoConfig.for_model("zamba", **ZAMBA)
    zamba = lr.inspect(zamba_config, plugin_manager=pm)
    assert lora_limits(zamba)["model.layers.0.mamba.x_proj_weight"].kind == "never"
    assert zamba.roles["model.layers.0.mamba.x_proj_weight"] == "mixer-gate"  # inspect still shows the role
    with pytest.raises(TypeError, match="positional argument"):
        _changes_logits(zamba_config, target_modules=[], target_parameters=["x_proj_weight"])


def test_aliases_leave_out_what_lora_cannot_train(mamba):
    resolution = lr.resolve(mamba, roles="all")
    assert resolution.roles == ["mixer-in", "mixer-gate"]
    assert {leaf.short_name for leaf in resolution.leaves} == {"in_proj", "x_proj"}
    (left_out,) = [w for w in resolution.warnings if w.startswith("left out")]
    assert "backbone.layers.{0-1}.mixer.dt_proj" in left_out and "backbone.layers.{0-1}.mixer.out_proj" in left_out
    assert "PEFT refuses LoRA on out_proj" in left_out
    assert any("x_proj" in w and "fused kernels" in w for w in resolution.warnings)
    targeted, trainable, _ = apply_peft(resolution)  # PEFT would raise on out_proj; it is not targeted
    assert targeted == expected_keys(resolution) and trainable == resolution.trainable_parameters()
    # all-linear is PEFT's keyword, resolved the same way: PEFT itself raises for it on Mamba
    assert lr.resolve(mamba, roles="all-linear").leaves == resolution.leaves


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(roles="mixer-out"), "only leaves LoRA cannot train"),
        (dict(roles="mixer-gate"), "add --exclude dt_proj to adapt the rest"),
        (dict(roles="mixer", include="dt_proj"), "never runs"),
        (dict(roles="mixer", include="conv1d"), "PEFT refuses LoRA on conv1d"),
        (dict(roles="q,v"), "it mixes tokens with MambaMixer (mixer-*): ask for mixer"),
        (dict(roles="dt_proj"), "'dt_proj' is a module name here (role mixer-gate), but LoRA cannot train it"),
    ],
)
def test_asking_for_what_lora_cannot_train_is_an_error(mamba, kwargs, message):
    with pytest.raises(lr.LoraRegistryError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        lr.resolve(mamba, **kwargs)


def test_excluding_what_cannot_train_keeps_the_rest(mamba):
    resolution = lr.resolve(mamba, roles="mixer-gate", exclude="dt_proj")
    assert [leaf.short_name for leaf in resolution.leaves] == ["x_proj", "x_proj"]


def test_linear_attention_named_like_attention_is_a_mixer(pm):
    # OLMo-Hybrid's Gated DeltaNet has q_proj/k_proj/v_proj/o_proj: mixer roles, so q reaches only softmax layers
    config = AutoConfig.for_model(
        "olmo_hybrid",
        num_hidden_layers=4,
        hidden_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=96,
        vocab_size=100,
        pad_token_id=0,
        eos_token_id=1,
    )
    model_map = lr.inspect(config, plugin_manager=pm)
    roles = {name.split(".", 2)[-1]: role for name, role in model_map.roles.items() if name.startswith("model.layers.")}
    assert roles["0.linear_attn.q_proj"] == "mixer-in" and roles["0.linear_attn.o_proj"] == "mixer-out"
    assert roles["0.linear_attn.a_proj"] == "mixer-gate" and roles["3.self_attn.q_proj"] == "attention-q"
    q = lr.resolve(model_map, roles="q")
    assert {leaf.layer for leaf in q.leaves} == {3}
    (untouched,) = [w for w in q.warnings if "untouched" in w]
    assert (
        "q reaches the token mixer of 1 of 4 layers of model.layers; 3 mix tokens with OlmoHybridGatedDeltaNet"
        in untouched
    )
    mixer = lr.resolve(model_map, roles="mixer")  # the other way round: softmax attention left untouched
    assert any("1 mixes tokens with softmax attention" in w and "add `attention`" in w for w in mixer.warnings)
    every = lr.resolve(lr.inspect(config, plugin_manager=pm), roles="all")
    assert not any("untouched" in w for w in every.warnings)
    targeted, trainable, _ = apply_peft(every)
    assert targeted == expected_keys(every) and trainable == every.trainable_parameters()
