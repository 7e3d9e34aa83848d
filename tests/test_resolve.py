"""Library API: model inputs, role rules, fused modules, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, apply_peft, write_config


def test_model_map_shape_and_roles():
    m = lr.inspect(str(EXAMPLES / "llama-3.1-8b"))
    d = m.to_dict()
    assert set(d) == {"model", "model_type", "plugin", "modules"}
    assert d["model_type"] == "llama" and d["plugin"] == "llama"
    q = next(e for e in d["modules"] if e["name"] == "model.layers.0.self_attn.q_proj")
    assert q == {
        "name": "model.layers.0.self_attn.q_proj",
        "role": "attention-q",
        "kind": "module",
        "shape": [4096, 4096],
        "layer": 0,
        "scope": "language",
    }
    k = next(e for e in d["modules"] if e["name"] == "model.layers.31.self_attn.k_proj")
    assert k["shape"] == [1024, 4096] and k["layer"] == 31  # GQA: 8 kv heads x 128
    head = next(e for e in d["modules"] if e["name"] == "lm_head")
    assert head["role"] == "lm-head" and head["layer"] is None


def test_experts_as_parameters():
    m = lr.inspect(str(FIXTURES / "qwen3-30b-a3b"))
    entry = next(e for e in m.to_dict()["modules"] if e["name"] == "model.layers.5.mlp.experts.gate_up_proj")
    assert entry["kind"] == "parameter" and entry["role"] == "experts-gate-up"
    assert entry["shape"] == [128, 2 * 768, 2048] and entry["layer"] == 5
    r = lr.resolve(str(FIXTURES / "qwen3-30b-a3b"), roles="experts")
    assert r.modules == {} and set(r.parameters) == {"experts-gate-up", "experts-down"}
    assert r.lora_config().target_parameters == ["down_proj", "gate_up_proj"]


def test_fused_role_resolves_to_fused_module_with_warning():
    r = lr.resolve(str(EXAMPLES / "phi-3-mini-4k-instruct"), roles="q,v")
    assert list(r.modules) == ["attention-qkv"]
    assert len(r.warnings) == 1 and "attention-k" in r.warnings[0] and "qkv_proj" in r.warnings[0]
    with pytest.raises(lr.RoleError, match="fused"):
        lr.resolve(str(EXAMPLES / "phi-3-mini-4k-instruct"), roles="q,v", strict=True)


def test_missing_role_names_what_the_model_has():
    with pytest.raises(lr.RoleError) as info:
        lr.resolve(str(EXAMPLES / "llama-3.1-8b"), roles="q,experts")
    assert "experts" in str(info.value) and "attention-q" in str(info.value)
    with pytest.raises(lr.RoleError, match="attention-q-a"):
        lr.resolve(str(EXAMPLES / "llama-3.1-8b"), roles="attention-q-a")


def test_alias_matching_part_of_its_roles_is_fine():
    r = lr.resolve("gpt2", roles="ffn")  # GPT-2 has no gate
    assert set(r.modules) == {"ffn-up", "ffn-down"}
    assert r.warnings == []


def test_unknown_role_is_an_error_before_building():
    with pytest.raises(lr.RoleError, match="unknown role or alias 'queries'"):
        lr.resolve("this-model-does-not-exist", roles="queries")


def test_roles_as_a_python_list():
    a = lr.resolve("mistral", roles=["q", "v", "ffn"])
    b = lr.resolve("mistral", roles="q,v,ffn")
    assert a.names_by_role() == b.names_by_role()


def test_all_leaves_out_router_embed_and_lm_head():
    r = lr.resolve(str(FIXTURES / "mixtral-8x7b-v0.1"), roles="all")
    assert "router" not in r.roles and "embed" not in r.roles and "lm-head" not in r.roles
    r2 = lr.resolve(str(FIXTURES / "mixtral-8x7b-v0.1"), roles="all,router,embed,lm-head")
    assert {"router", "embed", "lm-head"} <= set(r2.roles)


def test_model_inputs_agree(tmp_path):
    by_dir = lr.resolve(str(EXAMPLES / "mistral-7b-v0.3"), roles="q,v")
    by_file = lr.resolve(str(EXAMPLES / "mistral-7b-v0.3" / "config.json"), roles="q,v")
    config = AutoConfig.from_pretrained(str(EXAMPLES / "mistral-7b-v0.3"))
    by_config = lr.resolve(config, roles="q,v")
    with torch.device("meta"):
        module = AutoModelForCausalLM.from_config(config)
    by_module = lr.resolve(module, roles="q,v")
    names = by_dir.names_by_role()
    assert names == by_file.names_by_role() == by_config.names_by_role() == by_module.names_by_role()
    assert by_module.trainable_parameters() == by_dir.trainable_parameters()


def test_peft_wrapped_module_maps_onto_the_same_names():
    r = lr.resolve(str(EXAMPLES / "mistral-7b-v0.3"), roles="q,v")
    _, _, peft_model = apply_peft(r)
    again = lr.inspect(peft_model)
    fresh = lr.inspect(str(EXAMPLES / "mistral-7b-v0.3"))
    assert [(f.name, f.shape) for f in again.leaves] == [(f.name, f.shape) for f in fresh.leaves]
    assert again.roles == fresh.roles


def test_native_class_wins_over_auto_map(tmp_path):
    # Phi-3's config carries auto_map, but transformers implements phi3: no remote code, no flag needed.
    m = lr.inspect(str(EXAMPLES / "phi-3-mini-4k-instruct"))
    assert type(m.module).__module__.startswith("transformers.models.phi3")


def test_remote_code_needs_the_flag(tmp_path):
    data = json.loads((FIXTURES / "phi-2" / "config.json").read_text())
    data["model_type"] = "my_custom_arch"
    data["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    data["architectures"] = ["XForCausalLM"]  # not a class transformers ships
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(lr.RemoteCodeError, match="--trust-remote-code"):
        lr.inspect(str(tmp_path))


#: Kimi-K2-Instruct's config.json, shrunk: a model_type transformers lacks, auto_map, an architectures class it ships
KIMI_K2 = {
    **json.loads((FIXTURES / "kimi-k2" / "config.json").read_text()),
    "model_type": "kimi_k2",
    "auto_map": {
        "AutoConfig": "configuration_deepseek.DeepseekV3Config",
        "AutoModel": "modeling_deepseek.DeepseekV3Model",
        "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM",
    },
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
    **dict(num_hidden_layers=2, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, vocab_size=100),
    **dict(n_routed_experts=4, num_experts_per_tok=2, num_attention_heads=4, num_key_value_heads=4),
    **dict(q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16),
}


def test_kimi_k2_builds_with_the_class_its_architectures_names(tmp_path):
    folder = write_config(tmp_path, KIMI_K2, "kimi")
    kimi = lr.inspect(folder)
    plain = {k: v for k, v in KIMI_K2.items() if k not in ("auto_map", "quantization_config")}
    native = lr.inspect(write_config(tmp_path, {**plain, "model_type": "deepseek_v3"}, "deepseek"))
    assert type(kimi.module).__name__ == "DeepseekV3ForCausalLM" and kimi.model_type == "deepseek_v3"
    assert [(f.name, f.shape) for f in kimi.leaves] == [(f.name, f.shape) for f in native.leaves]
    assert kimi.roles == native.roles and kimi.base_parameters == native.base_parameters
    stand_in, quantized = kimi.warnings
    assert "'kimi_k2' is not in transformers" in stand_in and "own code (auto_map) was not run" in stand_in
    assert "DeepseekV3ForCausalLM" in stand_in and "quantization_config (fp8)" in quantized
    # the flag still asks for the checkpoint's code, which this config-only folder lacks: one precise line
    with pytest.raises(lr.ModelLoadError, match="auto_map names configuration_deepseek.py, which is not in"):
        lr.inspect(folder, trust_remote_code=True)


#: a tiny gpt-oss (MXFP4 experts in its published checkpoints) and a tiny Llama
GPT_OSS = dict(
    model_type="gpt_oss", num_hidden_layers=2, hidden_size=64, intermediate_size=64, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, num_local_experts=4, vocab_size=100,
)  # fmt: skip
LLAMA = dict(
    model_type="llama", num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=100,
)  # fmt: skip
QUANTIZED = [
    (
        GPT_OSS,
        {
            "quant_method": "mxfp4",
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
        },
        [
            "(mxfp4)",
            "packed at half width",
            "Mxfp4Config(dequantize=True)",
            "either way: model.layers.*.self_attn, model.layers.*.mlp.router, model.embed_tokens, lm_head)",
        ],
    ),
    (LLAMA, {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}, ["(fp8)", "dequantize=True"]),
    (
        LLAMA,
        {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"]},
        ["(compressed-tensors)", "run_compressed=False", "either way: lm_head)"],
    ),
    (
        LLAMA,
        {"quant_method": "bitsandbytes", "load_in_4bit": True, "llm_int8_skip_modules": ["lm_head"]},
        ["(bitsandbytes)", "PEFT adapts bitsandbytes-quantized Linear layers", "either way: lm_head)"],
    ),
]


@pytest.mark.parametrize("config,quantization,fragments", QUANTIZED, ids=[q["quant_method"] for _, q, _ in QUANTIZED])
def test_a_quantized_checkpoint_says_in_one_warning_what_was_assumed(tmp_path, config, quantization, fragments):
    quantized = lr.inspect(write_config(tmp_path, {**config, "quantization_config": quantization}, "q"))
    plain = lr.inspect(write_config(tmp_path, config, "plain"))
    assert [(f.name, f.shape) for f in quantized.leaves] == [(f.name, f.shape) for f in plain.leaves]
    assert quantized.base_parameters == plain.base_parameters
    (note,) = [w for w in quantized.warnings if "quantization_config" in w]
    assert len(quantized.warnings) == len(plain.warnings) + 1
    assert note.startswith(str(tmp_path / "q") + ": its quantization_config ") and "built unquantized" in note
    for fragment in fragments:
        assert fragment in note


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"hidden_size": 8}', "no model_type"),
        ('{"model_type": "no_such_type"}', "unknown model_type"),
        ('{"model_type": "llama", "num_hidden_layers": "many"}', "num_hidden_layers must be a positive whole number"),
        ('{"model_type": "llama", "num_hidden_layers": -2}', "num_hidden_layers must be a positive whole number"),
        ('{"model_type": "llama", "hidden_size": 100, "num_attention_heads": 3}', "invalid llama config"),
    ],
)
def test_bad_configs_raise_model_load_error(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(lr.ModelLoadError, match=message):
        lr.inspect(str(tmp_path))


def test_missing_paths_and_unknown_types(tmp_path):
    with pytest.raises(lr.ModelLoadError, match="no such file"):
        lr.inspect(str(tmp_path / "nope" / "config.json"))
    with pytest.raises(lr.ModelLoadError, match="no config.json"):
        lr.inspect(str(tmp_path))
    with pytest.raises(lr.ModelLoadError, match="did you mean llama"):
        lr.inspect("lama")


def test_uncached_hub_id_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(lr.ModelLoadError, match="not in the local Hugging Face cache"):
        lr.inspect("some-org/some-model")


def test_uncached_hub_id_with_the_hub_unreachable_fails_fast(monkeypatch, tmp_path):
    # huggingface_hub reads HF_ENDPOINT and HF_HUB_CACHE when it is imported: set what it made of them
    import huggingface_hub.constants as constants

    endpoint = "http://127.0.0.1:9"  # the discard port: nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    with pytest.raises(lr.ModelLoadError, match="the hub at http://127.0.0.1:9 is not reachable"):
        lr.inspect("some-org/some-model")


def test_cached_hub_id_is_read_from_the_cache(monkeypatch, tmp_path):
    # Lay out a hub cache entry the way huggingface_hub does, then resolve the id offline.
    repo = tmp_path / "models--meta-llama--Llama-3.1-8B"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    shutil.copy(EXAMPLES / "llama-3.1-8b" / "config.json", snapshot / "config.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    r = lr.resolve("meta-llama/Llama-3.1-8B", roles="q,v")
    assert r.model_map.model == "meta-llama/Llama-3.1-8B" and r.model_map.plugin == "llama"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"r": 0}, "rank"),
        ({"r": -3}, "rank"),
        ({"r": 2.5}, "rank"),
        ({"lora_alpha": 0}, "alpha"),
        ({"ranks": {"ffn": 0}}, "rank for ffn"),
        ({"ranks": {"experts": 4}}, "not among the resolved roles"),
        ({"ranks": {"nonsense": 4}}, "unknown role"),
    ],
)
def test_bad_lora_settings(kwargs, message):
    r = lr.resolve("mistral", roles="q,v,ffn")
    with pytest.raises(lr.LoraRegistryError, match=message):
        r.lora_config(**kwargs)


def test_bad_scope():
    with pytest.raises(lr.ConfigError, match="unknown scope"):
        lr.resolve("mistral", roles="q", scope="text")


def test_builds_through_auto_classes_when_the_direct_class_cannot():
    # Emu3's config only builds through AutoModelForCausalLM (which takes its text config).
    m = lr.inspect("emu3")
    assert type(m.module).__name__ == "Emu3ForCausalLM" and m.present_roles()


def test_the_narrower_per_role_key_wins_whatever_the_order():
    resolution = lr.resolve(str(EXAMPLES / "llama-3.1-8b"), roles="all")
    for ranks in ({"all": 2, "ffn": 4, "q": 16}, {"q": 16, "ffn": 4, "all": 2}):
        assert resolution.rank_of("ffn-up", 8, ranks) == 4
        assert resolution.rank_of("attention-q", 8, ranks) == 16
        assert resolution.rank_of("attention-k", 8, ranks) == 2


# ----------------------------------------------------------------------------- issue 13: what PEFT users type
_DSV3 = dict(
    num_hidden_layers=2,
    first_k_dense_replace=1,
    n_routed_experts=4,
    hidden_size=64,
    intermediate_size=96,
    moe_intermediate_size=16,
    q_lora_rank=16,
    kv_lora_rank=16,
    num_attention_heads=2,
    num_key_value_heads=2,
    vocab_size=100,
)


@pytest.fixture(scope="module")
def tiny_maps(pm):
    """Small llama, DeepSeek-V3 (latent attention, dense layer then MoE) and Qwen3-MoE (routed experts only) maps."""
    llama = AutoConfig.for_model("llama", num_hidden_layers=2, hidden_size=64, intermediate_size=96, vocab_size=100)
    qwen3_moe = AutoConfig.for_model("qwen3_moe", num_hidden_layers=2, hidden_size=64, num_experts=4, vocab_size=100)
    return {
        "llama": lr.inspect(llama, plugin_manager=pm),
        "deepseek_v3": lr.inspect(AutoConfig.for_model("deepseek_v3", **_DSV3), plugin_manager=pm),
        "qwen3_moe": lr.inspect(qwen3_moe, plugin_manager=pm),
    }


def test_include_and_exclude(tiny_maps):
    llama = tiny_maps["llama"]
    r = lr.resolve(llama, roles="q,v", include="k_proj,lm_head", exclude="layers.0.self_attn.v_proj")
    names = {leaf.name for leaf in r.leaves}
    assert "model.layers.0.self_attn.k_proj" in names and "lm_head" in names
    assert "model.layers.0.self_attn.v_proj" not in names and "model.layers.1.self_attn.v_proj" in names
    assert r.roles == ["attention-q", "attention-k", "attention-v", "lm-head"]
    regex = lr.resolve(llama, roles="q", include=r"re:model\.layers\.1\.mlp\..*_proj", exclude=["re:.*layers\\.0\\..*"])
    assert {leaf.name for leaf in regex.leaves} == {
        "model.layers.1.self_attn.q_proj",
        "model.layers.1.mlp.gate_proj",
        "model.layers.1.mlp.up_proj",
        "model.layers.1.mlp.down_proj",
    }
    targeted, trainable, _ = apply_peft(
        lr.resolve(llama, roles="q,v", include="k_proj", exclude="layers.0.self_attn.v_proj")
    )
    assert "model.layers.0.self_attn.v_proj" not in targeted and "model.layers.1.self_attn.k_proj" in targeted
    # a module holding parameter leaves names them (the router's weight, the experts' tensors)
    moe = lr.resolve(tiny_maps["qwen3_moe"], roles="o", include="layers.1.mlp.gate,layers.1.mlp.experts")
    assert moe.roles == ["attention-o", "experts-down", "experts-gate-up", "router"]
    assert len(moe.parameters["router"]) == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(include="nope_proj"), "matches no module or parameter"),
        (dict(exclude="k_proj"), "matches nothing the resolution selected"),
        (dict(include="re:("), "not a valid regex"),
        (dict(include=5), "comma list or a list"),
        (dict(exclude=5), "exclude must be a comma list or a list of names, not 5"),
    ],
)
def test_include_exclude_errors(tiny_maps, kwargs, message):
    with pytest.raises(lr.LoraRegistryError, match=message.replace("(", r"\(")):
        lr.resolve(tiny_maps["llama"], roles="q,v", **kwargs)


def test_include_lists_leaves_without_a_role_as_null(pm):
    model_map = lr.inspect("bert", plugin_manager=pm)  # its position embedding has no role
    r = lr.resolve(model_map, roles="q", include="position_embeddings")
    assert r.roles[-1] == "null" and r.names_by_role()["null"] == ["bert.embeddings.position_embeddings"]
    assert r.to_dict()["roles"]["null"] == ["bert.embeddings.position_embeddings"]


def test_all_linear_is_peft_keyword_with_roles_shown(tiny_maps):
    llama = lr.resolve(tiny_maps["llama"], roles="all-linear")
    assert set(llama.roles) == {
        "attention-q",
        "attention-k",
        "attention-v",
        "attention-o",
        "ffn-gate",
        "ffn-up",
        "ffn-down",
    }
    # on a model PEFT converts, the keyword reaches the experts and the router (all does not)
    moe = lr.resolve(tiny_maps["qwen3_moe"], roles="all-linear")
    assert "router" in moe.roles and "router" not in lr.resolve(tiny_maps["qwen3_moe"], roles="all").roles
    targeted, trainable, _ = apply_peft(moe)
    assert targeted == {*moe.target_keys().values()} and trainable == moe.trainable_parameters()


def test_served_by_latent_attention_and_routed_experts(tiny_maps):
    dsv3 = tiny_maps["deepseek_v3"]
    qv = lr.resolve(dsv3, roles="q,v")
    assert qv.roles == ["attention-q-a", "attention-q-b", "attention-kv-a", "attention-kv-b"]
    assert qv.served == {"q": ("attention-q-a", "attention-q-b"), "v": ("attention-kv-a", "attention-kv-b")}
    assert any("k and v share" in w for w in qv.warnings)
    assert lr.resolve(dsv3, roles="k").leaves == lr.resolve(dsv3, roles="v").leaves
    plan = qv.plan(lr.LoraSettings(r=8, ranks={"q": 4}))  # a per-role rank reaches the roles serving it
    assert plan.rank_of("attention-q-b") == 4 and plan.rank_of("attention-kv-a") == 8
    with pytest.raises(lr.RoleError, match="drop --strict"):
        lr.resolve(dsv3, roles="q", strict=True)
    with pytest.raises(lr.RoleError, match="matches nothing"):  # a role written in full stays precise
        lr.resolve(dsv3, roles="attention-q")
    moe = tiny_maps["qwen3_moe"]
    gud = lr.resolve(moe, roles="gate,up,down")
    assert gud.roles == ["experts-down", "experts-gate-up"]
    assert any("routed experts only" in w for w in gud.warnings)
    assert lr.resolve(moe, roles="ffn").roles == ["experts-down", "experts-gate-up"]  # ffn: the whole sublayer
    with pytest.raises(lr.RoleError, match="matches nothing"):  # ffn-* stay dense and shared
        lr.resolve(moe, roles="ffn-gate,ffn-up,ffn-down")
    up = lr.resolve(moe, roles="up")
    assert any("adapts gate and up together" in w for w in up.warnings)


@pytest.mark.parametrize(
    "roles,hint",
    [
        ("q_proj", "'q_proj' is a module name here (role attention-q: use q), or pass it with --include q_proj"),
        ("gate_proj,q", "(role ffn-gate: use gate)"),
        ("all_linear", "PEFT's keyword is 'all-linear'"),
    ],
)
def test_a_module_name_as_a_role_gets_a_hint(tiny_maps, roles, hint):
    with pytest.raises(lr.RoleError, match=hint.replace("(", r"\(").replace(")", r"\)")):
        lr.resolve(tiny_maps["llama"], roles=roles)
