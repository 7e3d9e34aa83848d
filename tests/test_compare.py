"""`compare` and the PEFT options of `resolve`, through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig
from typer.testing import CliRunner

from helpers import EXAMPLES, FIXTURES
from lora_registry.cli import app

runner = CliRunner()
LLAMA = str(EXAMPLES / "llama-3.1-8b")


def run(*args):
    return runner.invoke(app, list(args))


def test_compare_llama_standard_choices():
    result = run("compare", LLAMA, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {row["choice"]: row for row in doc["choices"]}
    assert list(rows) == ["q,v r8", "q,k,v,o r8", "qv8-ffn4", "all r16"]
    # per layer: q 4096x4096, k and v 4096->1024, o 4096x4096, gate/up 4096->14336, down 14336->4096; 32 layers
    qv, qkvo = 32 * 8 * (8192 + 5120), 32 * 8 * (8192 + 5120 + 5120 + 8192)
    ffn = 3 * (4096 + 14336)
    assert rows["q,v r8"]["trainable_parameters"] == qv == 3_407_872
    assert rows["q,k,v,o r8"]["trainable_parameters"] == qkvo == 6_815_744
    assert rows["qv8-ffn4"]["trainable_parameters"] == qv + 32 * 4 * ffn == 10_485_760
    assert rows["all r16"]["trainable_parameters"] == 2 * qkvo + 32 * 16 * ffn == 41_943_040
    for row in rows.values():
        n = row["trainable_parameters"]
        assert row["memory_bytes"] == {"fp32": 16 * n, "bf16": 8 * n}
        assert row["share"] == pytest.approx(n / doc["base_parameters"])
    assert rows["qv8-ffn4"]["ranks"]["ffn-down"] == 4 and rows["qv8-ffn4"]["ranks"]["attention-q"] == 8
    # the same numbers `resolve` gives
    preset = json.loads(run("resolve", LLAMA, "--preset", "qv8-ffn4", "-f", "json").stdout)
    assert preset["trainable_parameters"] == rows["qv8-ffn4"]["trainable_parameters"]
    table = run("compare", LLAMA)
    assert table.exit_code == 0 and "10,485,760" in table.stdout and "160.00 MiB" in table.stdout


def test_compare_fused_model_substitutes_and_extra_presets():
    result = run("compare", str(EXAMPLES / "phi-3-mini-4k-instruct"), "--preset", "attention16", "-f", "json")
    assert result.exit_code == 0, result.output
    rows = {row["choice"]: row for row in json.loads(result.stdout)["choices"]}
    assert list(rows)[-1] == "attention16"
    qkvo = rows["q,k,v,o r8"]
    assert qkvo["roles"] == ["attention-o", "attention-qkv"]
    assert any("fused into attention-qkv" in w for w in qkvo["warnings"])


def test_compare_shows_na_only_where_the_model_lacks_the_thing(tmp_path):
    # DeepSeek-V3 attention is latent (q_a/q_b, kv_a/kv_b): q and v are served by those, with the reason
    AutoConfig.for_model(
        "deepseek_v3",
        num_hidden_layers=2,
        first_k_dense_replace=1,
        n_routed_experts=4,
        hidden_size=128,
        intermediate_size=256,
        moe_intermediate_size=32,
        q_lora_rank=32,
        kv_lora_rank=16,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=100,
    ).save_pretrained(tmp_path / "dsv3")
    result = run("compare", str(tmp_path / "dsv3"), "-f", "json")
    assert result.exit_code == 0, result.output
    rows = {row["choice"]: row for row in json.loads(result.stdout)["choices"]}
    assert all(row.get("trainable_parameters", 0) > 0 for row in rows.values()), rows
    assert rows["q,v r8"]["roles"] == ["attention-q-a", "attention-q-b", "attention-kv-a", "attention-kv-b"]
    assert any("served by attention-q-a and attention-q-b" in w for w in rows["q,v r8"]["warnings"])
    # Mamba has no attention at all: q,v is n/a, naming the mixer to ask for instead; all adapts the mixers
    AutoConfig.for_model("mamba", num_hidden_layers=2, hidden_size=64, vocab_size=100).save_pretrained(
        tmp_path / "mamba"
    )
    rows = {
        row["choice"]: row
        for row in json.loads(run("compare", str(tmp_path / "mamba"), "-f", "json").stdout)["choices"]
    }
    assert "matches nothing" in rows["q,v r8"]["error"] and "ask for mixer" in rows["q,v r8"]["error"]
    assert "trainable_parameters" not in rows["q,v r8"]
    assert rows["all r16"]["roles"] == ["mixer-in", "mixer-gate"]
    table = run("compare", str(tmp_path / "mamba"))
    text = " ".join(table.stdout.split())
    assert table.exit_code == 0 and "n/a" in text and "MambaMixer (mixer-*): ask for mixer" in text


def test_resolve_peft_options_reach_the_config_and_the_cost(tmp_path):
    from peft import LoraConfig

    args = [
        "resolve",
        str(FIXTURES / "phi-2"),
        "--roles",
        "q,v",
        "--dora",
        "--rslora",
        "--bias",
        "lora_only",
        "--dropout",
        "0.05",
        "--init",
        "gaussian",
        "--modules-to-save",
        "lm-head",
    ]
    doc = json.loads(run(*args, "-f", "json").stdout)
    cost = doc["cost"]
    assert cost["dora_magnitudes"] == 32 * (2560 + 2560) == cost["biases"]
    assert cost["modules_to_save"] == {"lm_head": 51200 * 2560 + 51200}
    assert (
        doc["trainable_parameters"]
        == cost["total"]
        == sum(cost["lora_by_role"].values()) + 2 * 32 * 5120 + cost["modules_to_save"]["lm_head"]
    )
    assert run(*args, "-f", "peft", "-o", str(tmp_path / "adapter_config.json")).exit_code == 0
    config = LoraConfig.from_pretrained(str(tmp_path))
    assert (
        config.use_dora,
        config.use_rslora,
        config.bias,
        config.lora_dropout,
        config.init_lora_weights,
        config.modules_to_save,
    ) == (True, True, "lora_only", 0.05, "gaussian", ["lm_head"])
    table = run(*args)
    assert table.exit_code == 0
    assert "DoRA magnitudes" in table.stdout and "modules_to_save" in table.stdout and "fp32" in table.stdout
    assert f"{cost['total']:,}" in table.stdout


def test_init_false_is_a_boolean():
    doc = json.loads(run("resolve", LLAMA, "--roles", "q", "--init", "False", "-f", "peft").stdout)
    assert doc["init_lora_weights"] is False


BAD = [
    (["resolve", LLAMA, "--roles", "q", "--bias", "bogus"], "bias must be one of"),
    (["resolve", LLAMA, "--roles", "q", "--dropout", "1.5"], "lora_dropout must be at least 0 and below 1"),
    (["resolve", LLAMA, "--roles", "q", "--init", "xavier"], "init_lora_weights must be"),
    (["resolve", LLAMA, "--roles", "q", "--init", "loftq"], "needs loftq_config"),
    (["resolve", LLAMA, "--roles", "q", "--modules-to-save", "nothing_here"], "neither a role nor a module"),
    (["resolve", LLAMA, "--roles", "q,v", "--modules-to-save", "v"], "both a LoRA target"),
    (["resolve", str(FIXTURES / "qwen3-30b-a3b"), "--roles", "q,experts", "--dora"], "no DoRA for target_parameters"),
    (["compare", LLAMA, "--preset", "nope"], "unknown preset"),
    (["compare", LLAMA, "--format", "yaml"], "unknown format"),
    (["compare", LLAMA, "--scope", "text"], "unknown scope"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a[2:]) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_user_presets_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lora_registry.cli import app

    presets = tmp_path / "presets.toml"
    presets.write_text('[presets.mine]\nroles = "q,v,ffn"\nrank = 4\nalpha = 8\nrank_for = { ffn = 2 }\n')
    llama = str(EXAMPLES / "llama-3.1-8b")
    runner = CliRunner()
    explicit = runner.invoke(
        app,
        ["resolve", llama, "--roles", "q,v,ffn", "--rank", "4", "--alpha", "8", "--rank-for", "ffn=2", "-f", "json"],
    )
    by_file = runner.invoke(app, ["resolve", llama, "--presets", str(presets), "--preset", "mine", "-f", "json"])
    assert by_file.exit_code == 0, by_file.stderr
    assert json.loads(by_file.stdout)["trainable_parameters"] == json.loads(explicit.stdout)["trainable_parameters"]
    monkeypatch.setenv("LORA_REGISTRY_PRESETS", str(presets))
    compared = runner.invoke(app, ["compare", llama, "--preset", "mine", "-f", "json"])
    assert compared.exit_code == 0 and "mine" in compared.stdout
    assert "mine" in runner.invoke(app, ["roles"]).stdout
    presets.write_text('[presets.mine]\nroles = "q,zz"\nrank = 4\nalpha = 8\n')
    bad = runner.invoke(app, ["roles"])
    assert bad.exit_code == 2 and str(presets) in bad.stderr and "presets.mine.roles" in bad.stderr
