"""Module trees from config.json (the fast path) equal what transformers builds, and answer without importing torch."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

import lora_registry as lr
from helpers import FIXTURES, ROOT, probe_cli, write_config
from lora_registry.errors import ModelLoadError
from lora_registry.inspection import fast_map, verify_model_map

SMALL = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
# GPT-2 and Falcon name their sizes their own way
SMALL_BY_FAMILY = {
    "gpt2": dict(n_embd=64, n_head=4, n_positions=32, vocab_size=100),
    "falcon": dict(hidden_size=64, num_attention_heads=4, vocab_size=100),
}


def _small(model_type: str, layers: int) -> dict:
    if model_type == "gpt2":
        return {**SMALL_BY_FAMILY["gpt2"], "n_layer": layers}
    return {**SMALL_BY_FAMILY.get(model_type, SMALL), "num_hidden_layers": layers}


VARIANTS = [
    ("llama", {}),
    ("llama", dict(num_key_value_heads=4, attention_bias=True, mlp_bias=True, tie_word_embeddings=True)),
    (
        "llama",
        dict(
            head_dim=32,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
    ),
    ("mistral", dict(sliding_window=16)),
    ("mistral", dict(head_dim=32, tie_word_embeddings=True, sliding_window=None)),
    ("mixtral", dict(num_local_experts=4)),
    ("mixtral", dict(num_local_experts=3, head_dim=8, tie_word_embeddings=True)),
    ("phi", dict(partial_rotary_factor=0.5)),
    ("phi", dict(qk_layernorm=True, tie_word_embeddings=True, num_key_value_heads=4)),
    ("phi3", dict(pad_token_id=0)),
    ("phi3", dict(pad_token_id=0, num_key_value_heads=1, tie_word_embeddings=True)),
    ("phimoe", dict(num_local_experts=4)),
    ("phimoe", dict(num_local_experts=2, attention_bias=True, lm_head_bias=True, tie_word_embeddings=True)),
    ("qwen2", {}),
    (
        "qwen2",
        dict(
            num_key_value_heads=4,
            tie_word_embeddings=True,
            use_sliding_window=True,
            sliding_window=16,
            max_window_layers=1,
        ),
    ),
    ("qwen2", dict(head_dim=32, num_key_value_heads=1, attention_bias=False)),
    ("gpt2", {}),
    (
        "gpt2",
        dict(
            n_inner=80,
            tie_word_embeddings=False,
            activation_function="relu",
            scale_attn_by_inverse_layer_idx=True,
            n_ctx=32,
        ),
    ),
    ("falcon", {}),  # falcon-7b: multi-query attention, attention and MLP in parallel, one norm
    ("falcon", dict(new_decoder_architecture=True, num_kv_heads=2, bias=True, ffn_hidden_size=80)),  # falcon-40b
    ("falcon", dict(new_decoder_architecture=True, num_kv_heads=1, num_ln_in_parallel_attn=1)),
    ("falcon", dict(multi_query=False, parallel_attn=False, tie_word_embeddings=False, alibi=True)),
    ("falcon", dict(multi_query=False, num_ln_in_parallel_attn=2, activation="relu")),
    ("qwen3", {}),
    ("qwen3", dict(head_dim=32, attention_bias=True, tie_word_embeddings=True, layer_types=None)),
    ("qwen3_moe", dict(num_experts=4, moe_intermediate_size=32, num_experts_per_tok=2)),
    ("qwen3_moe", dict(num_experts=3, moe_intermediate_size=24, mlp_only_layers=[0], decoder_sparse_step=1)),
    ("qwen3_moe", dict(num_experts=2, moe_intermediate_size=16, num_experts_per_tok=1, decoder_sparse_step=2)),
    ("gemma2", {}),
    ("gemma2", dict(head_dim=16, tie_word_embeddings=False, hidden_activation="gelu", attention_bias=True)),
    ("gemma3_text", {}),
    ("gemma3_text", dict(head_dim=32, attn_logit_softcapping=50.0, sliding_window=16)),
    ("olmo2", {}),
    ("olmo2", dict(num_key_value_heads=4, attention_bias=True, tie_word_embeddings=True)),
]
#: the families the fast path serves (issue: at least these), each with a tree plugin
FAMILIES = sorted({model_type for model_type, _ in VARIANTS})


def _write(tmp_path, data, name="m"):
    return write_config(tmp_path, data, name)


def _same(fast, slow):
    assert fast is not None
    assert not fast.handle.built  # it came from config.json alone
    assert fast.leaves == slow.leaves  # names, kinds, shapes, layers, scopes, classes on the path, in order
    assert fast.roles == slow.roles
    assert fast.all_module_names == slow.all_module_names
    assert fast.parameter_names == tuple(name for name, _ in slow.module.named_parameters())
    assert fast.base_parameters == slow.base_parameters
    assert (fast.plugin, fast.model_type, fast.model, fast.warnings, fast.null_reasons, fast.config) == (
        slow.plugin,
        slow.model_type,
        slow.model,
        slow.warnings,
        slow.null_reasons,
        slow.config,
    )
    assert fast.tree == slow.tree  # every module, class, parameter shape, tie and embedding
    assert fast == slow
    verify_model_map(fast, slow)


def fast_model_map(source, plugin=None):
    return fast_map(source, lr.get_plugin_host(entry_points=False), plugin=plugin)


def inspect(source):
    return lr.inspect(source, plugin_manager=lr.get_plugin_host(entry_points=False))


def resolve(model_map, roles, **kwargs):
    return lr.resolve(model_map, roles, **kwargs)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("model_type,extra", VARIANTS, ids=lambda v: str(v))
def test_fast_map_equals_the_built_model(tmp_path, model_type, extra, layers):
    source = _write(tmp_path, {"model_type": model_type, **_small(model_type, layers), **extra})
    fast = fast_model_map(source)
    slow = inspect(source)
    _same(fast, slow)
    for roles, kwargs in (
        ("q,v", {}),
        ("all", dict(ranks={"attention": 4}, alphas={"attention-o": 32})),
        ("q,v", {"layers": "0"}),
    ):
        a = resolve(fast, roles, **{k: v for k, v in kwargs.items() if k == "layers"})
        b = resolve(slow, roles, **{k: v for k, v in kwargs.items() if k == "layers"})
        opts = {k: v for k, v in kwargs.items() if k != "layers"}
        assert a.to_dict(**opts) == b.to_dict(**opts)


@pytest.mark.parametrize(
    "folder",
    [
        ROOT / "examples" / "llama-3.1-8b",
        ROOT / "examples" / "mistral-7b-v0.3",
        ROOT / "examples" / "phi-3-mini-4k-instruct",
        FIXTURES / "phi-2",
        FIXTURES / "mixtral-8x7b-v0.1",
        FIXTURES / "gpt2",
        FIXTURES / "falcon-7b",
        FIXTURES / "falcon-40b",
        FIXTURES / "qwen2.5-7b-instruct",
        FIXTURES / "qwen3-30b-a3b",
        FIXTURES / "qwen3-8b",
        FIXTURES / "gemma-2-9b",
        FIXTURES / "gemma-3-1b-it",
        FIXTURES / "olmo-2-1124-7b",
    ],
    ids=lambda p: p.name,
)
def test_real_configs(folder):
    _same(fast_model_map(str(folder)), inspect(str(folder)))


@pytest.mark.parametrize(
    "folder,count,plugin",
    [
        ("gpt2", 124_439_808, "declarative"),  # the published counts of these checkpoints
        ("falcon-7b", 6_921_720_704, "declarative"),
        ("qwen2.5-7b-instruct", 7_615_616_512, "declarative"),
        ("qwen3-8b", 8_190_735_360, "generic"),
        ("gemma-2-9b", 9_241_705_984, "generic"),
        ("gemma-3-1b-it", 999_885_952, "generic"),
        ("olmo-2-1124-7b", 7_298_617_344, "generic"),
    ],
)
def test_published_fixture_counts(folder, count, plugin):
    fast = fast_model_map(str(FIXTURES / folder))
    assert (fast.base_parameters, fast.plugin) == (count, plugin)


def test_405b_fixture_counts():
    fast = fast_model_map(str(FIXTURES / "llama-3.1-405b"))
    assert fast is not None
    assert fast.base_parameters == 405_853_388_800  # the published 405B count
    assert len([leaf for leaf in fast.leaves if leaf.short_name == "q_proj"]) == 126
    assert fast.leaves[1].shape == (16384, 16384) and fast.leaves[2].shape == (1024, 16384)


def _checks():
    """{model_type: ConfigCheck} of every built-in tree plugin."""
    import importlib

    out = {}
    for name in ("llama", "mistral", "phi", "qwen", "gemma", "olmo", "gpt2", "falcon"):
        module = importlib.import_module(f"lora_registry.plugins.{name}")
        checks = getattr(module, "CHECKS", None) or {t: module.CHECK for t in module.MODEL_TYPES}
        out.update(checks)
    return out


def test_the_fast_path_serves_the_families_people_fine_tune():
    assert (
        set(_checks())
        == set(FAMILIES)
        >= {
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen3",
            "qwen3_moe",
            "gemma2",
            "gemma3_text",
            "phi3",
            "gpt2",
            "falcon",
            "olmo2",
        }
    )


@pytest.mark.parametrize("model_type", FAMILIES)
def test_defaults_match_transformers(model_type):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config = CONFIG_MAPPING[model_type]()
    defaults = _checks()[model_type].defaults
    for key, value in defaults.items():
        if value is None and key in ("num_key_value_heads", "head_dim"):
            continue  # computed from other fields, as decoder_settings does
        assert getattr(config, key) == value, key
    if model_type == "falcon":  # filled in from other fields, as the falcon plugin does
        assert (config.num_kv_heads, config.ffn_hidden_size) == (config.num_attention_heads, 4 * config.hidden_size)
    assert config.pad_token_id == defaults.get("pad_token_id")


def test_activation_classes_match_transformers():
    from transformers.activations import ACT2FN

    from lora_registry.architectures import ACTIVATIONS

    assert {name: type(ACT2FN[name]).__name__ for name in ACTIVATIONS} == ACTIVATIONS


@pytest.mark.parametrize(
    "data",
    [
        {"model_type": "mistral", "num_hidden_layers": 1},
        {"model_type": "qwen2", "num_hidden_layers": 1, "hidden_size": 256, "intermediate_size": 64, "vocab_size": 100},
        {"model_type": "gpt2", "n_layer": 1},
        {"model_type": "falcon", "num_hidden_layers": 1, "vocab_size": 1000},
    ],
    ids=lambda d: d["model_type"],
)
def test_missing_keys_take_transformers_defaults(tmp_path, data):
    source = _write(tmp_path, data)
    _same(fast_model_map(source), inspect(source))


def test_qwen2_layer_types(tmp_path):
    kinds = ["full_attention", "sliding_attention", "full_attention"]
    source = _write(
        tmp_path,
        {
            "model_type": "qwen2",
            **_small("qwen2", 3),
            "layer_types": kinds,
            "use_sliding_window": True,
            "sliding_window": 8,
        },
    )
    _same(fast_model_map(source), inspect(source))
    wrong = _write(tmp_path, {"model_type": "qwen2", **_small("qwen2", 3), "layer_types": kinds[:2]}, "wrong")
    assert fast_model_map(wrong) is None  # transformers refuses a list of another length


@pytest.mark.parametrize(
    "data",
    [
        {"model_type": "llama", "quantization_config": {"quant_method": "bitsandbytes"}},
        {"model_type": "llama", "architectures": ["LlamaForSequenceClassification"]},
        {"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
        {"model_type": "llama", "num_hidden_layers": -1},
        {"model_type": "llama", "hidden_size": 100, "num_attention_heads": 3},
        {"model_type": "phi3"},  # pad_token_id 32000 is outside a 100-token vocabulary: transformers refuses
        {"model_type": "phi3", "head_dim": 16},
        {"model_type": "gpt2", "add_cross_attention": True},
        {"model_type": "gpt2", "architectures": ["GPT2ForSequenceClassification"]},
        {"model_type": "falcon", "n_embed": 64},
        {"model_type": "falcon", "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        {"model_type": "qwen2", "quantization_config": {"quant_method": "awq"}},
        {"model_type": "qwen3", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
        {"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForSequenceClassification"]},
        {"model_type": "gemma2", "hidden_activation": "nope"},
        {"model_type": "olmo2", "head_dim": 8},
        {"model_type": "gemma"},
        {"model_type": ["llama"]},
        {"model_type": "llama", "hidden_size": "64"},
        {"model_type": "llama", "tie_word_embeddings": "yes"},
        {"model_type": "llama", "num_hidden_layers": 10_001},
    ],
)
def test_falls_back_on_what_it_does_not_model(tmp_path, data):
    model_type = data["model_type"]
    base = (
        _small(model_type, 1)
        if isinstance(model_type, str) and model_type in FAMILIES
        else {**SMALL, "num_hidden_layers": 1}
    )
    source = _write(tmp_path, {**base, **data})
    assert fast_model_map(source) is None


def test_forced_other_plugin_and_non_paths_fall_back(tmp_path):
    source = _write(tmp_path, {"model_type": "llama", **SMALL, "num_hidden_layers": 1})
    assert fast_model_map(source, plugin="declarative").plugin == "declarative"  # forced: that plugin answers
    assert fast_model_map(source, plugin="llama") is not None
    assert fast_model_map("llama") is None  # a bare model_type needs transformers' defaults
    assert fast_model_map(str(tmp_path / "missing")) is None


def test_verify_names_the_first_difference(tmp_path):
    source = _write(tmp_path, {"model_type": "llama", **SMALL, "num_hidden_layers": 1})
    fast, slow = fast_model_map(source), inspect(source)
    fast = dataclasses.replace(fast, base_parameters=fast.base_parameters + 1)
    with pytest.raises(ModelLoadError, match="base parameters"):
        verify_model_map(fast, slow)


def _cli(*args):
    return probe_cli(*args, env={**os.environ, "LORA_REGISTRY_NO_CACHE": "1"})


@pytest.mark.parametrize(
    "args",
    [
        ("resolve", "{405b}", "--roles", "q,v,ffn", "--format", "json"),
        ("inspect", "{405b}", "--json"),
        ("resolve", "{mixtral}", "--roles", "q,v,experts", "--format", "json", "--layers", "0-3"),
        ("resolve", "{gpt2}", "--roles", "qkv,ffn", "--format", "json"),
        ("resolve", "{falcon}", "--preset", "all16"),
        ("inspect", "{qwen}"),
        ("resolve", "{qwen3moe}", "--roles", "q,v,experts", "--format", "json"),
        ("--help",),
        ("roles",),
        ("plugins",),
    ],
)
def test_fast_commands_import_no_torch(args):
    paths = {
        "405b": str(FIXTURES / "llama-3.1-405b"),
        "mixtral": str(FIXTURES / "mixtral-8x7b-v0.1"),
        "gpt2": str(FIXTURES / "gpt2"),
        "falcon": str(FIXTURES / "falcon-40b"),
        "qwen": str(FIXTURES / "qwen2.5-7b-instruct"),
        "qwen3moe": str(FIXTURES / "qwen3-30b-a3b"),
    }
    done = _cli(*[a.format(**paths) for a in args])
    assert done.returncode == 0, done.stderr
    assert "LOADED=\n" in done.stderr, done.stderr


def test_cli_json_equals_the_verified_slow_path(tmp_path):
    source = _write(tmp_path, {"model_type": "phi", **SMALL, "num_hidden_layers": 2, "qk_layernorm": True})
    fast = _cli("resolve", source, "--roles", "q,v,ffn", "--format", "json", "--rank-for", "ffn=4")
    slow = _cli("resolve", source, "--roles", "q,v,ffn", "--format", "json", "--rank-for", "ffn=4", "--verify")
    assert fast.returncode == slow.returncode == 0, slow.stderr
    assert "LOADED=\n" in fast.stderr and "torch" in slow.stderr
    assert "verified against the model transformers builds" in slow.stderr
    assert fast.stdout == slow.stdout
    inspected = [_cli("inspect", source, "--json", *flag) for flag in ((), ("--verify",))]
    assert inspected[0].stdout == inspected[1].stdout


def test_cached_hub_id_takes_the_fast_path(tmp_path):
    # The layout huggingface_hub's cache uses: refs/main names the snapshot holding config.json.
    repo = tmp_path / "hub" / "models--example--tiny-llama"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama", **SMALL, "num_hidden_layers": 2}))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    args = ["resolve", "example/tiny-llama", "--roles", "q,v,ffn", "--format", "json"]
    env["LORA_REGISTRY_NO_CACHE"] = "1"
    fast, slow = probe_cli(*args, env=env), probe_cli(*args, "--verify", env=env)
    assert fast.returncode == slow.returncode == 0, slow.stderr
    assert "LOADED=\n" in fast.stderr
    assert "verified against the model transformers builds" in slow.stderr
    assert fast.stdout == slow.stdout
    assert json.loads(fast.stdout)["model"] == "example/tiny-llama"


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
@pytest.mark.parametrize(
    "field,value",
    [
        ("initializer_range", 2),
        ("use_cache", 1),
        ("torch_dtype", "many"),
        ("sliding_window", -0.5),
        ("bos_token_id", [1]),
        ("hidden_act", "nope"),
        ("vocab_size", None),
        ("rms_norm_eps", "1e-5"),
        ("eos_token_id", 10**6),
        ("unknown_key", {"a": 1}),
    ],
)
def test_fast_path_never_answers_where_the_build_fails(tmp_path, model_type, field, value):
    data = {**_small(model_type, 1), "model_type": model_type, "pad_token_id": 0, field: value}
    source = _write(tmp_path, data)
    fast = fast_model_map(source)
    if fast is not None:  # then transformers must build the same model
        _same(fast, inspect(source))
    del data[field]
    assert fast_model_map(_write(tmp_path, data, "control")) is not None  # the field alone made the difference
