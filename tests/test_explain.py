"""``explain``: an existing adapter config read back through real PEFT on meta-device models."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES
from lora_registry.cli.explain_cmd import explain as explain_command
from lora_registry.errors import ConfigError
from lora_registry.explain import explain

LLAMA = str(EXAMPLES / "llama-3.1-8b")
MIXTRAL = str(FIXTURES / "mixtral-8x7b-v0.1")
HAND_WRITTEN = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": ["q_proj", "v_proj", "query_key_value"],
    "inference_mode": True,
}

app = typer.Typer()
app.command("explain")(explain_command)
app.command("other")(lambda: None)  # two commands, so `explain` stays a subcommand as in the real CLI


def run(*args):
    return CliRunner().invoke(app, ["explain", *map(str, args)])


def write(tmp_path, data, name="adapter_config.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "model, roles, ranks",
    [
        (LLAMA, "q,v,ffn", {"ffn": 4}),
        (str(FIXTURES / "qwen3-30b-a3b"), "q,v,experts", {"experts": 4}),  # target_parameters and PEFT's MoE rename
        (str(FIXTURES / "deepseek-v2-lite"), "all", {"ffn": 4}),  # dense FFNs targeted as <module>.weight
    ],
)
def test_own_adapter_config_explains_back_to_its_roles_and_count(tmp_path, model, roles, ranks):
    resolution = lr.resolve(model, roles=roles)
    path = write(tmp_path, resolution.adapter_config(r=8, ranks=ranks))
    result = explain(tmp_path, model)  # the folder holding adapter_config.json
    assert result.source == str(path)
    keys = resolution.target_keys()
    expected = {role: sorted(keys[n] for n in names) for role, names in resolution.names_by_role().items()}
    assert {role: sorted(t.name for t in result.targets if t.role == role) for role in result.by_role()} == expected
    assert result.trainable_parameters == result.lora_parameters == resolution.trainable_parameters(8, ranks)
    assert result.error is None and result.no_ops == [] and result.warnings == []
    assert all(entry.matches > 0 for entry in result.entries)


def test_hand_written_config_names_the_entry_that_matches_nothing(tmp_path):
    result = explain(HAND_WRITTEN, LLAMA)
    assert [(e.field, e.entry) for e in result.no_ops] == [("target_modules", "query_key_value")]
    assert "matches no module" in result.no_ops[0].reason and "q_proj" in result.no_ops[0].reason
    assert {t.role for t in result.targets} == {"attention-q", "attention-v"} and len(result.targets) == 64
    assert {t.rank for t in result.targets} == {16} and {t.layer for t in result.targets} == set(range(32))
    # inference_mode=true in a saved config does not hide the training cost: q 4096x4096, v 1024x4096, 32 layers
    assert result.trainable_parameters == 32 * 16 * ((4096 + 4096) + (4096 + 1024))
    out = run(write(tmp_path, HAND_WRITTEN), LLAMA)
    assert out.exit_code == 0, out.output
    assert "query_key_value" in out.stdout and "silent no-ops" in out.stdout and "attention-q" in out.stdout


def test_nothing_matching_is_reported_not_raised(tmp_path):
    config = dict(HAND_WRITTEN, target_modules=["query_key_value", "dense"])
    result = explain(config, LLAMA)
    assert result.targets == [] and result.trainable_parameters == 0
    assert "{'dense', 'query_key_value'} not found in the base model" in result.error  # sorted: deterministic
    assert {e.entry for e in result.no_ops} == {"query_key_value", "dense"}
    out = run(write(tmp_path, config), LLAMA, "--json")
    assert out.exit_code == 0 and "Traceback" not in out.output
    assert "nothing is adapted" in run(write(tmp_path, config), LLAMA).stdout
    doc = json.loads(out.stdout)
    assert doc["error"] == result.error and doc["targets"] == [] and len(doc["no_ops"]) == 2


def test_a_string_target_modules_is_a_regex():
    result = explain({"target_modules": "q_proj"}, LLAMA)
    assert result.targets == [] and result.error
    assert "regex" in result.no_ops[0].reason and "as a list entry it would match 32" in result.no_ops[0].reason


def test_llava_q_v_warns_that_it_reaches_the_vision_tower(tmp_path):
    out = run(write(tmp_path, {"target_modules": ["q_proj", "v_proj"], "peft_type": "LORA"}), "llava", "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    vision = [t for t in doc["targets"] if t["scope"] == "vision"]
    assert vision and {t["role"] for t in vision} == {"attention-q", "attention-v"}
    assert doc["roles"]["attention-q"]["scopes"] == ["language", "vision"]
    assert any("vision tower" in w and str(len(vision)) in w for w in doc["warnings"])
    # the language-only config lora-registry itself emits for llava does not
    own = explain(json.loads(lr.resolve("llava", roles="q,v").adapter_config()), "llava")
    assert own.warnings == [] and {t.scope for t in own.targets} == {"language"}


def test_gate_on_a_moe_adapts_the_router_as_peft_rewrites_it():
    result = explain({"target_modules": ["q_proj", "v_proj", "gate"]}, MIXTRAL)
    routers = [t for t in result.targets if t.role == "router"]
    assert len(routers) == 32 and all(t.kind == "parameter" and t.name.endswith("mlp.gate.weight") for t in routers)
    assert any("router" in w and "through gate" in w for w in result.warnings)
    assert any("PEFT rewrites target_modules gate" in w for w in result.warnings)
    assert not result.no_ops


def test_regex_widened_by_peft_on_a_moe_is_reported():
    # on Mixtral PEFT 0.21 turns a regex into bare leaf names first: layer 0's q_proj becomes every q_proj
    result = explain({"target_modules": r"model\.layers\.0\.self_attn\.q_proj"}, MIXTRAL)
    assert len(result.targets) == 32
    assert any("also adapts 31 modules the regex does not match" in w for w in result.warnings)


def test_moe_rename_reports_the_dense_modules_peft_then_skips():
    # DeepSeek-V2-Lite: layer 0 has a dense FFN and every MoE layer shared experts, all with a down_proj module;
    # PEFT 0.21 turns "down_proj" into the routed experts' parameter, so none of those modules is adapted.
    result = explain({"target_modules": ["q_proj", "down_proj"]}, str(FIXTURES / "deepseek-v2-lite"))
    roles = result.by_role()
    assert "ffn-down" not in roles and roles["experts-down"]["leaves"] == 26
    (note,) = [w for w in result.warnings if "PEFT rewrites" in w]
    assert "27 modules so named" in note and "model.layers.0.mlp.down_proj" in note


def test_every_kind_of_entry_is_checked():
    config = {
        "target_modules": ["q_proj", "v_proj", "embed_tokens"],
        "exclude_modules": ["v_proj"],
        "layers_to_transform": [0, 1, 40],
        "rank_pattern": {"q_proj": 4, "nope": 2},
        "alpha_pattern": {"q_proj": 8},
        "modules_to_save": ["lm_head", "score"],
        "target_parameters": ["bogus"],
    }
    result = explain(config, LLAMA)
    assert result.error is None
    assert {t.name: t.rank for t in result.targets} == {f"model.layers.{i}.self_attn.q_proj": 4 for i in (0, 1)}
    no_ops = {(e.field, e.entry): e.reason for e in result.no_ops}
    assert set(no_ops) == {
        ("target_modules", "v_proj"),
        ("target_modules", "embed_tokens"),
        ("target_parameters", "bogus"),
        ("rank_pattern", "nope"),
        ("layers_to_transform", 40),
        ("modules_to_save", "score"),
    }
    assert "left out by exclude_modules" in no_ops[("target_modules", "v_proj")]
    assert "has layers 0-31" in no_ops[("layers_to_transform", 40)]
    # modules_to_save trains a full copy of lm_head (128256 x 4096) on top of the LoRA weights
    assert result.trainable_parameters - result.lora_parameters == 128256 * 4096
    assert result.lora_parameters == 2 * 4 * (4096 + 4096)


def test_json_shape_is_stable_and_deterministic(tmp_path):
    path = write(tmp_path, HAND_WRITTEN)
    first, second = run(path, LLAMA, "--json"), run(path, LLAMA, "--json")
    assert first.exit_code == 0 and first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert list(doc) == [
        "adapter_config",
        "model",
        "model_type",
        "plugin",
        "r",
        "lora_alpha",
        "target_modules",
        "target_parameters",
        "error",
        "roles",
        "targets",
        "trainable_parameters",
        "lora_parameters",
        "modules_to_save_parameters",
        "base_parameters",
        "share_percent",
        "entries",
        "no_ops",
        "warnings",
    ]
    assert doc["target_modules"] == ["q_proj", "query_key_value", "v_proj"]
    assert list(doc["roles"]) == ["attention-q", "attention-v"]
    assert list(doc["roles"]["attention-q"]) == ["leaves", "layers", "scopes", "ranks", "trainable_parameters"]
    assert list(doc["targets"][0]) == ["name", "role", "kind", "layer", "scope", "rank", "trainable_parameters"]
    assert doc["targets"][0]["name"] == "model.layers.0.self_attn.q_proj"
    assert doc["share_percent"] == round(100 * doc["trainable_parameters"] / doc["base_parameters"], 4)


def test_library_accepts_a_lora_config_and_leaves_a_built_model_alone():
    from peft import LoraConfig
    from peft.tuners.tuners_utils import BaseTunerLayer

    model_map = lr.inspect(LLAMA)
    result = explain(LoraConfig(r=4, target_modules=["k_proj"]), model_map)
    assert len(result.targets) == 32 and result.trainable_parameters == 32 * 4 * (4096 + 1024)
    assert not any(isinstance(m, BaseTunerLayer) for m in model_map.module.modules())


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("folder", "folder has no adapter_config.json"),
        ('{"target_modules": ["q_proj"]', "not valid JSON"),
        ("[1, 2]", "holds a JSON array"),
        ('{"peft_type": "IA3", "target_modules": ["q_proj"]}', "peft_type is 'IA3'"),
        ('{"peft_type": "LORA", "r": 8}', "neither target_modules nor target_parameters"),
        ('{"peft_type": "LORA", "target_modules": [1, 2]}', "target_modules must be"),
        ('{"target_modules": ["q_proj"], "r": 0}', "r must be a positive whole number"),
        ('{"target_modules": ["q_proj"], "layers_pattern": "layers"}', "PEFT's LoraConfig rejects it"),
        ('{"target_modules": "q_proj", "layers_to_transform": [0]}', "PEFT's LoraConfig rejects it"),
    ],
)
def test_not_an_adapter_config_exits_2_with_one_line(tmp_path, content, message):
    if content is None:
        path = tmp_path / "missing.json"
    elif content == "folder":
        path = tmp_path
    else:
        path = write(tmp_path, content)
    out = run(path, LLAMA)
    assert out.exit_code == 2, out.output
    assert out.stdout == "" and "Traceback" not in out.output
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1 and message in out.stderr
    with pytest.raises(ConfigError, match="^" + re.escape(str(path))):
        explain(path, LLAMA)
