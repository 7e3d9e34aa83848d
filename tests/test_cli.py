"""The CLI through typer's CliRunner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from helpers import EXAMPLES, FIXTURES
from lora_registry.cli import app

runner = CliRunner()
LLAMA = str(EXAMPLES / "llama-3.1-8b")


def run(*args):
    return runner.invoke(app, list(args))


def test_resolve_json_contract():
    result = run("resolve", LLAMA, "--roles", "q,v,ffn", "--rank-for", "ffn=4", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # the foundation's keys, unchanged; "cost" was added with per-role cost and memory, "scopes" with issue 13
    assert set(doc) == {
        "model",
        "model_type",
        "plugin",
        "roles",
        "scopes",
        "target_modules",
        "target_parameters",
        "trainable_parameters",
        "warnings",
        "cost",
    }
    assert doc["scopes"] == ["language"]
    assert doc["model_type"] == "llama" and doc["plugin"] == "llama"
    assert set(doc["roles"]) == {"attention-q", "attention-v", "ffn-gate", "ffn-up", "ffn-down"}
    assert len(doc["roles"]["attention-q"]) == 32
    assert doc["target_modules"] == ["down_proj", "gate_proj", "q_proj", "up_proj", "v_proj"]
    # q: 8*(4096+4096), v: 8*(4096+1024), gate/up/down: 4*(4096+14336) each; 32 layers
    assert doc["trainable_parameters"] == 32 * (8 * 8192 + 8 * 5120 + 3 * 4 * 18432)


def test_preset_equals_explicit_options():
    preset = json.loads(run("resolve", LLAMA, "--preset", "qv8-ffn4", "-f", "json").stdout)
    explicit = json.loads(
        run(
            "resolve",
            LLAMA,
            "--roles",
            "q,v,ffn",
            "--rank",
            "8",
            "--alpha",
            "16",
            "--rank-for",
            "ffn=4",
            "--alpha-for",
            "ffn=8",
            "-f",
            "json",
        ).stdout
    )
    assert preset == explicit


def test_peft_format_loads_in_peft_and_adapts_exactly(tmp_path):
    from peft import LoraConfig

    out = tmp_path / "adapter_config.json"
    result = run(
        "resolve",
        str(FIXTURES / "qwen3-30b-a3b"),
        "--preset",
        "qv8-ffn4",
        "--roles",
        "q,v,experts",
        "--rank-for",
        "experts=4",
        "-f",
        "peft",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    config = LoraConfig.from_pretrained(str(tmp_path))
    assert config.r == 8 and config.lora_alpha == 16
    assert sorted(config.target_parameters) == ["down_proj", "gate_up_proj"]
    import lora_registry as lr

    resolution = lr.resolve(str(FIXTURES / "qwen3-30b-a3b"), roles="q,v,experts")
    from peft import get_peft_model

    model = get_peft_model(resolution.model_map.module, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == resolution.trainable_parameters(r=8, ranks={"experts": 4})


def test_table_output_names_roles_and_count():
    result = run("resolve", str(EXAMPLES / "phi-3-mini-4k-instruct"), "--roles", "q,v")
    assert result.exit_code == 0
    assert "attention-qkv" in result.stdout and "qkv_proj" in result.stdout
    assert "warning" not in result.stdout and "warning: " in result.stderr


PHI3 = str(EXAMPLES / "phi-3-mini-4k-instruct")
FUSED = "warning: attention-q and attention-v exist only fused into attention-qkv"


@pytest.mark.parametrize("fmt", ["table", "json", "peft", "axolotl", "unsloth", "litgpt"])
def test_warnings_go_to_stderr_whatever_the_format(tmp_path, fmt):
    # `-f peft -o x.json` on Phi-3 with q,v printed only "wrote x.json": the fused-module warning was lost
    printed = run("resolve", PHI3, "--roles", "q,v", "-f", fmt)
    assert printed.exit_code == 0, printed.output
    assert FUSED in printed.stderr and "warning:" not in printed.stdout
    out = tmp_path / "out"
    written = run("resolve", PHI3, "--roles", "q,v", "-f", fmt, "-o", str(out))
    assert written.exit_code == 0 and written.stdout == ""
    assert written.stderr.splitlines()[0].startswith(FUSED) and written.stderr.endswith(f"wrote {out}\n")
    if fmt == "litgpt":  # and what the exporter itself says: LitGPT keeps a LoRA per part of the fused qkv
        assert "warning: LitGPT keeps a LoRA per projection inside fused modules" in written.stderr


def test_the_moe_rename_warning_reaches_a_file_run(tmp_path):
    out = tmp_path / "adapter_config.json"
    result = run("resolve", str(FIXTURES / "deepseek-v2-lite"), "--roles", "q,ffn", "-f", "peft", "-o", str(out))
    assert result.exit_code == 0 and "warning: PEFT rewrites target_modules named" in result.stderr


def test_adapter_config_names_its_base_model_and_task(tmp_path):
    doc = json.loads(run("resolve", LLAMA, "--roles", "q", "-f", "peft").stdout)
    assert doc["base_model_name_or_path"] == LLAMA and doc["task_type"] == "CAUSAL_LM"  # from LlamaForCausalLM
    # a bare model_type names no checkpoint; T5 is built as T5ForConditionalGeneration
    doc = json.loads(run("resolve", "t5", "--roles", "q", "-f", "peft").stdout)
    assert doc["base_model_name_or_path"] is None and doc["task_type"] == "SEQ_2_SEQ_LM"
    for given, written in (("seq_cls", "SEQ_CLS"), ("FEATURE_EXTRACTION", "FEATURE_EXTRACTION"), ("none", None)):
        doc = json.loads(run("resolve", LLAMA, "--roles", "q", "-f", "peft", "--task-type", given).stdout)
        assert doc["task_type"] == written
    bad = run("resolve", LLAMA, "--roles", "q", "-f", "peft", "--task-type", "chat")
    assert bad.exit_code == 2 and "task_type must be one of CAUSAL_LM" in bad.stderr


def test_base_model_reference():
    from lora_registry.plan import base_model_reference

    assert base_model_reference(LLAMA) == LLAMA and base_model_reference("acme/tiny-llama") == "acme/tiny-llama"
    assert base_model_reference("llama") is None and base_model_reference("LlamaForCausalLM") is None


def test_inspect_plugins_roles():
    inspect = run("inspect", LLAMA, "--json")
    assert inspect.exit_code == 0
    doc = json.loads(inspect.stdout)
    assert doc["plugin"] == "llama" and len(doc["modules"]) == 32 * 7 + 2
    assert doc["parameters_by_role"]["attention-q"] == 32 * 4096 * 4096
    table = run("inspect", LLAMA)
    assert table.exit_code == 0 and "plugin llama" in table.stdout
    plugins = json.loads(run("plugins", "--json").stdout)
    names = [p["name"] for p in plugins["plugins"]]
    assert {"llama", "mistral", "phi", "generic", "declarative"} <= set(names)
    assert plugins["hookspec_version"] >= 1
    roles = json.loads(run("roles", "--json").stdout)
    assert "attention-kv-b" in roles["roles"] and "mixer-gate" in roles["roles"]
    assert roles["aliases"]["ffn"] == [
        "ffn-gate",
        "ffn-up",
        "ffn-down",
        "ffn-gate-up",
        "experts-gate",
        "experts-up",
        "experts-down",
        "experts-gate-up",
    ]
    assert roles["aliases"]["mixer"] == ["mixer-in", "mixer-out", "mixer-gate"]


BAD = [
    (["resolve", "/no/such/dir", "--roles", "q"], "no such file"),
    (["resolve", str(FIXTURES), "--roles", "q"], "no config.json"),
    (["resolve", "not_a_model_type", "--roles", "q"], "not a path"),
    (["resolve", LLAMA, "--roles", "q,zz"], "unknown role"),
    (["resolve", LLAMA, "--roles", "experts"], "matches nothing"),
    (["resolve", LLAMA, "--roles", "q", "--rank", "0"], "rank"),
    (["resolve", LLAMA, "--roles", "q", "--rank-for", "q=x"], "not a whole number"),
    (["resolve", LLAMA, "--roles", "q", "--rank-for", "q"], "ROLE=VALUE"),
    (["resolve", LLAMA, "--roles", "q", "--format", "yaml"], "unknown format"),
    (["resolve", LLAMA, "--preset", "nope"], "unknown preset"),
    (["resolve", LLAMA], "give --roles"),
    (["resolve", LLAMA, "--roles", "q", "-o", "/no/such/dir/out.json"], "does not exist"),
    (["resolve", LLAMA, "--roles", "q", "--scope", "text"], "unknown scope"),
    (["resolve", LLAMA, "--roles", "mixer"], "alias 'mixer' matches nothing"),
    (["resolve", LLAMA, "--roles", "q_proj"], "'q_proj' is a module name here (role attention-q: use q)"),
    (["resolve", LLAMA, "--roles", "q", "--include", "in_proj"], "--include 'in_proj' matches no module"),
    (["resolve", LLAMA, "--roles", "q", "--exclude", "v_proj"], "matches nothing the resolution selected"),
    (["resolve", LLAMA, "--roles", "q", "--exclude", "re:["], "not a valid regex"),
    (["resolve", LLAMA, "--roles", "q", "--exclude", "q_proj"], "nothing is left to adapt"),
    (["inspect", "/no/such/config.json"], "no such file"),
]


def test_include_exclude_and_all_linear_on_the_command_line(tmp_path):
    args = ["resolve", LLAMA, "--roles", "q", "--include", "k_proj", "--exclude", "re:.*layers\\.0\\..*"]
    doc = json.loads(run(*args, "-f", "json").stdout)
    assert set(doc["roles"]) == {"attention-q", "attention-k"} and len(doc["roles"]["attention-q"]) == 31
    linear = run("resolve", LLAMA, "--roles", "all-linear", "-f", "json")
    assert linear.exit_code == 0, linear.output
    assert set(json.loads(linear.stdout)["roles"]) == set(
        json.loads(run("resolve", LLAMA, "--roles", "all", "-f", "json").stdout)["roles"]
    )


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a[2:]) or a[0] for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_malformed_config_and_remote_code(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    result = run("resolve", str(tmp_path), "--roles", "q")
    assert result.exit_code == 2 and "malformed JSON" in result.stderr
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "x_custom", "auto_map": {"AutoConfig": "c.C"}}))
    result = run("resolve", str(tmp_path), "--roles", "q")
    assert result.exit_code == 2 and "--trust-remote-code" in result.stderr


def test_output_file_only_when_the_run_succeeds(tmp_path):
    out = tmp_path / "adapter_config.json"
    failed = run("resolve", LLAMA, "--roles", "experts", "-f", "peft", "-o", str(out))
    assert failed.exit_code == 2 and not out.exists() and list(tmp_path.iterdir()) == []
    ok = run("resolve", LLAMA, "--roles", "q,v", "-f", "peft", "-o", str(out))
    assert ok.exit_code == 0 and json.loads(out.read_text())["target_modules"] == ["q_proj", "v_proj"]
    again = run("resolve", LLAMA, "--roles", "q", "-f", "peft", "-o", str(out))
    assert again.exit_code == 2 and "--force" in again.stderr
    assert json.loads(out.read_text())["target_modules"] == ["q_proj", "v_proj"]
    forced = run("resolve", LLAMA, "--roles", "q", "-f", "peft", "-o", str(out), "--force")
    assert forced.exit_code == 0 and json.loads(out.read_text())["target_modules"] == ["q_proj"]


def test_real_subprocess():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ok = subprocess.run(
        [sys.executable, "-m", "lora_registry", "resolve", LLAMA, "--roles", "q,v", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["trainable_parameters"] == 32 * (8 * 8192 + 8 * 5120)
    bad = subprocess.run(
        [sys.executable, "-m", "lora_registry", "resolve", LLAMA, "--roles", "q", "--bogus"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
