"""Each kind of architecture the issue names, handled explicitly: real transformers models on the meta device.

Small configs keep these fast; the sweep (tests/test_sweep.py) covers every default config.
"""

from __future__ import annotations

import pytest
from transformers import AutoConfig

import lora_registry as lr
from helpers import FIXTURES
from lora_registry.coverage import peft_check


def _roles_in_layer(model_map, layer, scope="language"):
    return {
        leaf.name: model_map.roles[leaf.name]
        for leaf in model_map.leaves
        if leaf.layer == layer and leaf.scope == scope
    }


def _exact(resolution, **kw):
    result = peft_check(resolution, **kw)
    assert result.exact, result.difference()
    return result


# ----------------------------------------------------------------------------- fused modules


@pytest.mark.parametrize(
    "model_type,qkv,gate_up",
    [
        ("phi3", "self_attn.qkv_proj", "mlp.gate_up_proj"),  # Phi-3 fuses both (phi plugin)
        ("gpt_neox", "attention.query_key_value", None),  # generic fallback
        ("gpt2", "attn.c_attn", None),  # declarative entry
    ],
)
def test_fused_attention_and_ffn(model_type, qkv, gate_up, pm):
    config = AutoConfig.for_model(model_type, num_hidden_layers=2)
    model_map = lr.inspect(config, plugin_manager=pm)
    roles = {name.split(".", 3)[-1]: role for name, role in _roles_in_layer(model_map, 1).items()}
    assert roles[qkv] == "attention-qkv"
    assert "attention-q" not in model_map.present_roles()
    if gate_up:
        assert roles[gate_up] == "ffn-gate-up"
    # q,v on a fused model widens to the fused module, with a warning; --strict refuses
    widened = lr.resolve(model_map, roles="q,v")
    assert widened.roles == ["attention-qkv"] and any("fused" in w for w in widened.warnings)
    with pytest.raises(lr.RoleError, match="fused"):
        lr.resolve(model_map, roles="q", strict=True)
    _exact(lr.resolve(lr.inspect(config, plugin_manager=pm), roles="all"))


# ----------------------------------------------------------------------------- MLA, experts, routers


def test_multi_head_latent_attention(pm):
    model_map = lr.inspect(str(FIXTURES / "deepseek-v2-lite"), plugin_manager=pm)
    layer = _roles_in_layer(model_map, 1)
    assert layer["model.layers.1.self_attn.q_proj"] == "attention-q"  # V2-Lite has no q_lora_rank: plain q_proj
    assert layer["model.layers.1.self_attn.kv_a_proj_with_mqa"] == "attention-kv-a"
    assert layer["model.layers.1.self_attn.kv_b_proj"] == "attention-kv-b"
    config = AutoConfig.for_model(
        "deepseek_v3",
        num_hidden_layers=2,
        first_k_dense_replace=1,
        n_routed_experts=4,
        hidden_size=128,
        intermediate_size=256,
        moe_intermediate_size=32,
        q_lora_rank=32,
        kv_lora_rank=16,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=100,
    )
    v3 = lr.inspect(config, plugin_manager=pm)
    assert {"attention-q-a", "attention-q-b", "attention-kv-a", "attention-kv-b"} <= set(v3.present_roles())
    _exact(lr.resolve(lr.inspect(config, plugin_manager=pm), roles="attention"))


def test_routed_experts_as_3d_parameters(pm):
    model_map = lr.inspect(str(FIXTURES / "qwen3-30b-a3b"), plugin_manager=pm)
    experts = [leaf for leaf in model_map.leaves if model_map.roles[leaf.name] in ("experts-gate-up", "experts-down")]
    assert experts and all(leaf.kind == "parameter" and len(leaf.shape) == 3 for leaf in experts)
    assert experts[0].shape[0] == 128  # one slice per expert
    resolution = lr.resolve(model_map, roles="experts")
    assert resolution.target_parameters() and not resolution.target_modules()
    _exact(resolution, r=2)


def test_routed_experts_as_one_module_per_expert(pm):
    config = AutoConfig.for_model(
        "switch_transformers",
        num_layers=2,
        num_decoder_layers=2,
        num_experts=4,
        encoder_sparse_step=2,
        decoder_sparse_step=2,
        d_model=64,
        d_ff=128,
        d_kv=16,
        num_heads=4,
        vocab_size=100,
    )
    model_map = lr.inspect(config, plugin_manager=pm)
    per_expert = [leaf for leaf in model_map.leaves if ".experts.expert_" in leaf.name]
    assert per_expert and all(leaf.kind == "module" for leaf in per_expert)
    assert {model_map.roles[leaf.name] for leaf in per_expert} == {"experts-up", "experts-down"}
    assert {leaf.layer for leaf in per_expert} == {1}  # sparse every other block
    resolution = lr.resolve(model_map, roles="experts,router")
    assert len(resolution.modules["router"]) == 2  # encoder and decoder block 1
    _exact(resolution)


def test_shared_experts_are_ffn_and_routers_are_routers(pm):
    model_map = lr.inspect(str(FIXTURES / "deepseek-v2-lite"), plugin_manager=pm)
    layer = _roles_in_layer(model_map, 1)
    assert layer["model.layers.1.mlp.shared_experts.gate_proj"] == "ffn-gate"
    assert layer["model.layers.1.mlp.shared_experts.down_proj"] == "ffn-down"
    assert layer["model.layers.1.mlp.gate.weight"] == "router"
    qwen2_moe = lr.inspect(AutoConfig.for_model("qwen2_moe", num_hidden_layers=1, num_experts=4), plugin_manager=pm)
    layer = _roles_in_layer(qwen2_moe, 0)
    assert layer["model.layers.0.mlp.shared_expert.up_proj"] == "ffn-up"
    assert layer["model.layers.0.mlp.gate.weight"] == "router"
    # a scalar gate on the shared expert: its own opt-in role, not a router
    assert layer["model.layers.0.mlp.shared_expert_gate"] == "shared-expert-gate"
    # `all` never includes the router or the shared-expert gate; asking for them is explicit
    assert "router" not in lr.resolve(model_map, roles="all").roles
    assert "shared-expert-gate" not in lr.resolve(qwen2_moe, roles="all").roles
    _exact(lr.resolve(qwen2_moe, roles="shared-expert-gate,router"))


def test_dense_first_layers_then_moe(pm):
    config = AutoConfig.for_model(
        "deepseek_v3",
        num_hidden_layers=4,
        first_k_dense_replace=2,
        n_routed_experts=4,
        hidden_size=128,
        intermediate_size=256,
        moe_intermediate_size=32,
        q_lora_rank=32,
        kv_lora_rank=16,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=100,
    )
    model_map = lr.inspect(config, plugin_manager=pm)
    for layer in (0, 1):
        assert set(_roles_in_layer(model_map, layer).values()) >= {"ffn-gate", "ffn-up", "ffn-down"}
        assert "experts-down" not in _roles_in_layer(model_map, layer).values()
    for layer in (2, 3):
        assert {"experts-gate-up", "experts-down", "router", "ffn-down"} <= set(
            _roles_in_layer(model_map, layer).values()
        )
    with pytest.raises(lr.RoleError, match="selected layers"):
        lr.resolve(model_map, roles="experts-down", layers="0-1")
    _exact(lr.resolve(lr.inspect(config, plugin_manager=pm), roles="all"))


# ----------------------------------------------------------------------------- hybrids

HYBRIDS = {
    # model_type: (small config overrides, a mixer input projection, the mixer block's class)
    "jamba": (
        dict(
            num_hidden_layers=4,
            attn_layer_period=2,
            attn_layer_offset=1,
            expert_layer_period=2,
            expert_layer_offset=1,
            num_experts=4,
        ),
        "mamba.in_proj",
        "JambaMambaMixer",
    ),
    "bamba": (dict(num_hidden_layers=3, attn_layer_indices=[1]), "mamba.in_proj", "BambaMixer"),
    "falcon_h1": (dict(num_hidden_layers=2), "mamba.in_proj", "FalconH1Mixer"),
    "qwen3_next": (dict(num_hidden_layers=4, num_experts=4), "linear_attn.in_proj_qkvz", "Qwen3NextGatedDeltaNet"),
    "nemotron_h": (
        dict(num_hidden_layers=3, layers_block_type=["mamba", "attention", "mlp"]),
        "mixer.in_proj",
        "NemotronHMamba2Mixer",
    ),
    "zamba": (dict(), "mamba.in_proj", "ZambaMambaMixer"),  # its shared-attention tying needs the default layout
}


@pytest.mark.parametrize("model_type", sorted(HYBRIDS))
def test_hybrid_stacks(model_type, pm):
    overrides, mixer_leaf, mixer_class = HYBRIDS[model_type]
    try:
        config = AutoConfig.for_model(model_type, **overrides)
    except Exception:  # an override this transformers version names differently: fall back to defaults
        config = AutoConfig.for_model(model_type)
    model_map = lr.inspect(config, plugin_manager=pm)
    language = [leaf for leaf in model_map.leaves if leaf.scope == "language"]
    mixers = [leaf for leaf in language if leaf.name.endswith(mixer_leaf)]
    assert mixers, f"no {mixer_leaf} in {model_type}"
    for leaf in mixers:  # the token mixer that is not softmax attention: mixer-* roles
        assert model_map.roles[leaf.name] == "mixer-in"
    present = set(model_map.present_roles())
    assert {"attention-q", "attention-v", "mixer-in", "mixer-out"} <= present
    assert present & {"ffn-down", "experts-down"}
    attention_layers = {leaf.layer for leaf in language if model_map.roles[leaf.name] == "attention-q"}
    mixer_layers = {leaf.layer for leaf in mixers}
    if model_type != "falcon_h1":  # Falcon-H1 runs attention and Mamba side by side in every layer
        assert attention_layers and attention_layers != mixer_layers
    # q,v leaves the mixers untouched: one warning with the counts, naming the mixer and what to add
    qv = lr.resolve(model_map, roles="q,v")
    (warning,) = [w for w in qv.warnings if "untouched" in w]
    layers = {leaf.layer for leaf in language if leaf.layer is not None}
    assert f"reach the token mixer of {len(attention_layers)} of {len(layers)} layers" in warning
    assert f"{len(mixer_layers)} " in warning and mixer_class in warning and "add `mixer`" in warning
    # all reaches every layer's token mixer, and PEFT adapts exactly what it resolved
    every = lr.resolve(model_map, roles="all")
    assert not any("untouched" in w for w in every.warnings)
    assert {
        leaf.layer for leaf in every.leaves if every.model_map.roles[leaf.name].startswith("mixer-")
    } == mixer_layers
    _exact(every)


# ----------------------------------------------------------------------------- encoder-decoder


@pytest.mark.parametrize(
    "model_type,cross",
    [
        ("t5", "layer.1.EncDecAttention"),
        ("bart", "encoder_attn"),
        ("whisper", "encoder_attn"),
    ],
)
def test_encoder_decoder_self_and_cross_attention(model_type, cross, pm):
    model_map = lr.inspect(model_type, plugin_manager=pm)
    names = {leaf.name: leaf for leaf in model_map.leaves}
    cross_q = [n for n in names if f"{cross}." in n and model_map.roles[n] == "attention-q"]
    assert cross_q and all(".decoder." in f".{n}" for n in cross_q)
    self_q = [n for n in names if model_map.roles[n] == "attention-q" and f"{cross}." not in n]
    assert any("encoder" in n for n in self_q) and any("decoder" in n for n in self_q)
    resolution = lr.resolve(model_map, roles="q,v")
    if model_type == "whisper":  # the audio encoder is its own scope, and half of a speech encoder-decoder
        assert all(names[n].scope == "audio" for n in self_q if "encoder" in n)
        assert resolution.scopes == ("language", "audio")  # so the default scope includes it
        decoder = lr.resolve(model_map, roles="q,v", scope="language")
        assert not any("encoder." in leaf.name and "encoder_attn" not in leaf.name for leaf in decoder.leaves)
        assert len(resolution.leaves) > len(decoder.leaves)
        _exact(lr.resolve(lr.inspect(model_type, plugin_manager=pm), roles="q,v"))
    else:
        assert any(".encoder." in f".{leaf.name}" for leaf in resolution.leaves)
        _exact(resolution)


def test_t5_embed_is_the_embedding_that_runs(pm):
    # transformers 5 gives T5's encoder and decoder their own embedding modules tied to `shared`;
    # a LoRA on `shared` would never run.
    resolution = lr.resolve("t5", roles="embed")
    assert sorted(leaf.name for leaf in resolution.leaves) == ["decoder.embed_tokens", "encoder.embed_tokens"]
    assert "tied" in resolution.model_map.null_reasons["shared"]
    _exact(resolution)


# ----------------------------------------------------------------------------- nesting, scope, layers


@pytest.mark.parametrize("model_type", ["llava", "gemma3", "mllama", "qwen2_vl"])
def test_nested_language_model_layers_and_scopes(model_type, pm):
    model_map = lr.inspect(model_type, plugin_manager=pm)
    language_q = [
        leaf for leaf in model_map.leaves if leaf.scope == "language" and model_map.roles[leaf.name] == "attention-q"
    ]
    vision_q = [
        leaf
        for leaf in model_map.leaves
        if leaf.scope == "vision" and model_map.roles[leaf.name] in ("attention-q", "attention-qkv")
    ]
    assert language_q and vision_q
    assert all(".language_model." in leaf.name for leaf in language_q)
    assert sorted({leaf.layer for leaf in language_q}) == list(range(len(language_q)))  # index within the stack
    # defaults to the language model; the vision tower only when asked
    resolution = lr.resolve(model_map, roles="q,v")
    assert all(leaf.scope == "language" for leaf in resolution.leaves)
    first = lr.resolve(model_map, roles="q", layers="0")
    assert [leaf.name for leaf in first.leaves] == [language_q[0].name]
    last = lr.resolve(model_map, roles="q", last_layers=1)
    assert [leaf.name for leaf in last.leaves] == [language_q[-1].name]
    _exact(lr.resolve(lr.inspect(model_type, plugin_manager=pm), roles="q,v", scope="language,vision"))


# ----------------------------------------------------------------------------- issue 13: found wrong or missing

REVIEW_FIXES = [
    # (model_type, leaf name, role, scope): each was wrong or missing before issue 13
    ("deepseek_v4", "model.layers.0.self_attn.kv_proj", "attention-kv-a", "language"),  # the shared K=V projection
    ("deepseek_v4", "model.layers.0.self_attn.o_b_proj", "attention-o", "language"),
    ("deepseek_v4", "model.layers.0.self_attn.compressor.kv_proj", "attention-kv-a", "language"),
    ("deepseek_v4", "model.layers.0.self_attn.compressor.gate_proj", None, "language"),  # was ffn-gate
    ("deepseek_v4", "model.layers.0.self_attn.o_a_proj", None, "language"),  # grouped Linear: LoRA cannot fit
    ("internvl", "model.vision_tower.encoder.layer.0.attention.projection_layer", "attention-o", "vision"),
    ("janus", "model.vision_model.encoder.layers.0.self_attn.projection_layer", "attention-o", "vision"),
    ("video_llava", "model.video_tower.encoder.layers.0.mlp.fc1", "ffn-up", "vision"),  # was scope language, null
    ("video_llava", "model.video_tower.encoder.layers.0.mlp.fc2", "ffn-down", "vision"),
    ("modernbert-decoder", "model.layers.0.attn.Wo", "attention-o", "language"),
    ("t5gemma2", "model.encoder.vision_tower.encoder.layers.0.mlp.fc1", "ffn-up", "vision"),
    ("t5gemma2", "model.encoder.vision_tower.encoder.layers.0.mlp.fc2", "ffn-down", "vision"),
    ("qwen3_vl", "model.visual.deepstack_merger_list.0.linear_fc1", None, "projector"),  # was scope vision
    ("qwen2_moe", "model.layers.0.mlp.shared_expert_gate", "shared-expert-gate", "language"),
    ("rwkv", "rwkv.blocks.0.feed_forward.receptance", "ffn-gate", "language"),  # the channel mix is the FFN
    ("xlstm", "backbone.blocks.0.ffn.proj_up_gate", "ffn-gate", "language"),
]


@pytest.mark.parametrize("model_type,name,role,scope", REVIEW_FIXES, ids=lambda v: str(v).rsplit(".", 1)[-1])
def test_review_fixes(model_type, name, role, scope, pm):
    model_map = _default_map(model_type, pm)
    leaf = next(leaf for leaf in model_map.leaves if leaf.name == name)
    assert (model_map.roles.get(name), leaf.scope) == (role, scope)
    if role is None:
        assert model_map.null_reasons[name]


def test_null_reasons_say_what_the_leaf_is(pm):
    v32 = _default_map("deepseek_v32", pm)
    indexer = v32.null_reasons["model.layers.0.self_attn.indexer.wk"]
    assert "sparse-attention indexer" in indexer and "never trains" in indexer and "SSM" not in indexer
    v4 = _default_map("deepseek_v4", pm)
    assert "pooling weights" in v4.null_reasons["model.layers.0.self_attn.compressor.gate_proj"]
    assert "grouped" in v4.null_reasons["model.layers.0.self_attn.o_a_proj"]
    # q, k and v reach the shared K=V projection; o the output projection; PEFT's all-linear would crash on o_a_proj
    kv = lr.resolve(v4, roles="k")
    assert {leaf.short_name for leaf in kv.leaves} == {"kv_proj"} and any("k and v share" in w for w in kv.warnings)
    linear = lr.resolve(v4, roles="all-linear")
    assert not any(leaf.short_name == "o_a_proj" for leaf in linear.leaves)
    assert any("o_a_proj" in w and w.startswith("left out") for w in linear.warnings)


def test_gemma4_vision_wrappers_are_judged_by_their_names(pm):
    text = dict(
        num_hidden_layers=1,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        global_head_dim=32,
        vocab_size=100,
        vocab_size_per_layer_input=100,
        hidden_size_per_layer_input=16,
    )
    vision = dict(num_hidden_layers=1, hidden_size=64, intermediate_size=128, num_attention_heads=2, head_dim=32)
    config = AutoConfig.for_model("gemma4", text_config=text, vision_config=vision)
    model_map = lr.inspect(config, plugin_manager=pm)
    tower = "model.vision_tower.encoder.layers.0."
    roles = {name[len(tower) :]: role for name, role in model_map.roles.items() if name.startswith(tower)}
    assert roles == {
        "self_attn.q_proj.linear": "attention-q",
        "self_attn.k_proj.linear": "attention-k",
        "self_attn.v_proj.linear": "attention-v",
        "self_attn.o_proj.linear": "attention-o",
        "mlp.gate_proj.linear": "ffn-gate",
        "mlp.up_proj.linear": "ffn-up",
        "mlp.down_proj.linear": "ffn-down",
    }
    projection = next(leaf for leaf in model_map.leaves if leaf.name == "model.embed_vision.embedding_projection")
    assert projection.scope == "projector"
    # q on the language model and the tower: exact targets, although q_proj also names the wrapper module
    _exact(lr.resolve(lr.inspect(config, plugin_manager=pm), roles="q,v", scope="language,vision"))


_DEFAULT_MAPS: dict = {}


def _default_map(model_type, pm):
    if model_type not in _DEFAULT_MAPS:
        _DEFAULT_MAPS[model_type] = lr.inspect(model_type, plugin_manager=pm)
    return _DEFAULT_MAPS[model_type]


@pytest.mark.parametrize(
    "model_type,speech",
    [("speech_to_text", True), ("moonshine", True), ("qwen2_audio", False)],
)
def test_a_speech_encoder_is_half_the_model_a_tower_is_opt_in(model_type, speech, pm):
    # Speech encoder-decoders: the audio encoder is labelled audio and the default scope includes it;
    # an audio-LLM's tower that feeds a language model stays opt-in.
    model_map = _default_map(model_type, pm)
    audio = [leaf for leaf in model_map.leaves if leaf.scope == "audio"]
    assert audio and all(".encoder." in f".{leaf.name}" or "audio_tower" in leaf.name for leaf in audio)
    resolution = lr.resolve(model_map, roles="q,v")
    assert resolution.scopes == (("language", "audio") if speech else ("language",))
    assert any(leaf.scope == "audio" for leaf in resolution.leaves) == speech
