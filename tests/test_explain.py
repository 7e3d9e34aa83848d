"""``explain``: an existing adapter config read back through real PEFT on meta-device models."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, tiny_config, write_config
from lora_registry import exports
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
    path = Path(tmp_path) / name
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
    assert "matches no module" in result.no_ops[0].reason
    # the hint names target_modules for modules (and target_parameters for parameters: see the MoE test)
    assert "(query_key_value is attention-qkv elsewhere; here: target_modules k_proj, q_proj, v_proj)" in (
        result.no_ops[0].reason
    )
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


def test_fused_experts_leave_up_and_down_at_the_shared_experts():
    # Nemotron-H's routed experts are 3-D tensors and PEFT has no rename for it: up_proj/down_proj stop at the
    # shared experts and the dense FFN layers, silently; explain says so. Its Mamba mixers stay untouched too.
    from transformers import AutoConfig

    config = AutoConfig.for_model(
        "nemotron_h",
        num_hidden_layers=4,
        layers_block_type=["mamba", "moe", "attention", "mlp"],
        hidden_size=64,
        intermediate_size=96,
        n_routed_experts=4,
        moe_intermediate_size=32,
        moe_shared_expert_intermediate_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        mamba_num_heads=4,
        mamba_head_dim=16,
        n_groups=1,
        ssm_state_size=8,
        vocab_size=100,
    )
    result = explain({"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]}, config)
    (up,) = [w for w in result.warnings if w.startswith("target_modules up_proj reaches only 2 modules")]
    assert "model.layers.1.mixer.experts.up_proj" in up and "target_parameters" in up
    assert any(
        "the adapter reaches the token mixer of 1 of 4 layers" in w and "NemotronHMamba2Mixer (mixer-*)" in w
        for w in result.warnings
    )
    # lora-registry's own `ffn` adapter reaches the experts and has nothing to warn about them
    own = explain(json.loads(lr.resolve(config, roles="all").adapter_config()), config)
    assert not any("reaches only" in w or "untouched" in w for w in own.warnings)


def test_a_lora_that_never_trains_is_named():
    result = explain({"target_modules": ["in_proj", "dt_proj"]}, "mamba")
    (note,) = [w for w in result.warnings if "dt_proj" in w]
    assert "never trains" in note and "dt_proj.weight" in note


def test_a_speech_encoder_is_not_an_unintended_tower():
    result = explain({"target_modules": ["q_proj", "v_proj"]}, "whisper")
    assert {t.scope for t in result.targets} == {"language", "audio"}
    assert not any("unintended" in w for w in result.warnings)


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
        "trainer",
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


# =========================================================================== tiny models for the rest
TINY_VISION = dict(
    model_type="clip_vision_model",
    num_hidden_layers=2,
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=2,
    image_size=32,
    patch_size=16,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Config folders of 2-layer models: Llama, LLaVA (its CLIP tower has q_proj too), Mixtral, Qwen3-MoE."""
    base = tmp_path_factory.mktemp("tiny")
    llama = tiny_config("llama")
    return {
        "llama": write_config(base, llama, "llama"),
        "llava": write_config(
            base, {"model_type": "llava", "text_config": llama, "vision_config": TINY_VISION}, "llava"
        ),
        "mixtral": write_config(base, tiny_config("mixtral", num_local_experts=4), "mixtral"),
        "qwen3_moe": write_config(
            base,
            tiny_config("qwen3_moe", num_hidden_layers=4, head_dim=16, num_experts=4, moe_intermediate_size=32),
            "moe",
        ),
    }


def run_check(*args):
    out = run(*args)
    problems = [line.removeprefix("check: ") for line in out.stderr.splitlines() if line.startswith("check: ")]
    return out, problems


# =========================================================================== explain --check, for CI
def test_check_passes_what_lora_registry_wrote(tmp_path, tiny):
    path = write(tmp_path, lr.resolve(tiny["llama"], roles="q,v,ffn").adapter_config())
    out, problems = run_check(path, "--check")  # MODEL: the adapter's base_model_name_or_path
    assert out.exit_code == 0 and problems == [], out.output


def test_check_fails_on_entries_matching_nothing_and_on_adapting_nothing(tmp_path, tiny):
    out, problems = run_check(write(tmp_path, HAND_WRITTEN), tiny["llama"], "--check", "--json")
    assert out.exit_code == 1 and json.loads(out.stdout)["no_ops"]  # the report still comes, on stdout
    assert problems == [
        "target_modules entry 'query_key_value' matches nothing: matches no module of "
        f"{tiny['llama']} (query_key_value is attention-qkv elsewhere; here: target_modules k_proj, q_proj, v_proj)"
    ]
    out, problems = run_check(write(tmp_path, {"target_modules": ["dense"]}), tiny["llama"], "--check")
    assert out.exit_code == 1 and problems[0].startswith("adapts nothing: PEFT cannot apply it")


@pytest.mark.parametrize(
    "model,config,allow,problem",
    [
        ("llava", {"target_modules": ["q_proj", "v_proj"]}, "vision", "reaches the vision tower: 4 leaves"),
        ("mixtral", {"target_modules": ["q_proj", "gate"]}, "router", "adapts the MoE router with LoRA (2 leaves"),
        ("llama", {"target_modules": ["q_proj", "embed_tokens"]}, "embed", "adapts the input embedding with LoRA"),
        (
            "llama",
            {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]},
            "lm-head",
            "adapts the LM head as a full copy through modules_to_save (lm_head)",
        ),
    ],
)
def test_check_flags_what_a_language_fine_tune_rarely_wants(tmp_path, tiny, model, config, allow, problem):
    path = write(tmp_path, config)
    out, problems = run_check(path, tiny[model], "--check")
    assert out.exit_code == 1 and len(problems) == 1 and problems[0].startswith(problem), problems
    assert problems[0].endswith(f"--allow {allow} if intended")
    out, problems = run_check(path, tiny[model], "--check", "--allow", f"{allow},projector")
    assert out.exit_code == 0 and problems == [], out.output


def test_check_options_are_checked(tmp_path, tiny):
    path = write(tmp_path, HAND_WRITTEN)
    for args, message in (
        (["--check", "--allow", "vision,towers"], "--allow takes vision, audio, projector, router, embed, lm-head"),
        (["--allow", "vision"], "--allow only applies with --check"),
    ):
        out = run(path, tiny["llama"], *args)
        assert out.exit_code == 2 and out.stderr.startswith("error: ") and message in out.stderr


def test_model_defaults_to_the_base_model_the_adapter_names(tmp_path, tiny):
    path = write(tmp_path, lr.resolve(tiny["llama"], roles="q").adapter_config())
    result = explain(path)
    assert result.model_map.model == tiny["llama"] and len(result.targets) == 2
    config = json.loads(lr.resolve("llava", roles="q").adapter_config())  # a bare model_type: no base model named
    out = run(write(tmp_path, config))
    assert out.exit_code == 2 and "names no base_model_name_or_path; give MODEL" in out.stderr


# =========================================================================== an adapter on the hub
# One interpreter runs the CLI several times, so huggingface_hub reads HF_ENDPOINT and HF_HOME as it starts.
HUB_DRIVER = """
import json, os, sys
from lora_registry.cli import main
for step in json.loads(sys.argv[1]):
    os.environ.update(step["env"])
    sys.argv = ["lora-registry", "explain", *step["args"]]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    print("\\n@@" + json.dumps(code), flush=True)
    print("@@", file=sys.stderr, flush=True)
"""


def test_an_adapter_on_the_hub(tmp_path, tiny):
    # Against the fake hub (tests/hubserver.py): the adapter's hub id, then its base model's, through hub.py.
    from hubserver import FakeHub

    llama = json.loads((Path(tiny["llama"]) / "config.json").read_text())
    adapter = json.loads(lr.resolve(tiny["llama"], roles="q,v").adapter_config())
    adapter["base_model_name_or_path"] = "acme/tiny-llama"  # as PEFT saves it: the hub id of the base model
    online, offline = {"HF_HUB_OFFLINE": "0"}, {"HF_HUB_OFFLINE": "1"}
    steps = [
        {"args": ["acme/tiny-lora", "--json"], "env": online},  # downloads the adapter config, then the base config
        {"args": ["acme/tiny-lora", "--json"], "env": offline},  # both from the cache now
        {"args": ["acme/no-such-repo"], "env": online},
        {"args": ["acme/weights-only"], "env": online},
        {"args": ["acme/not-cached"], "env": offline},
    ]
    with FakeHub() as hub:
        hub.add_repo("acme/tiny-lora", {"adapter_config.json": adapter})
        hub.add_repo("acme/tiny-llama", {"config.json": llama})
        hub.add_repo("acme/weights-only", {"adapter_model.safetensors": b""})
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGINGFACE_")) and "PROXY" not in k.upper()
        }
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), NO_PROXY="127.0.0.1")
        done = subprocess.run(
            [sys.executable, "-c", HUB_DRIVER, json.dumps(steps)], capture_output=True, text=True, env=env, timeout=300
        )
        adapter_gets = hub.count("GET", "/acme/tiny-lora/")
    outs = [part.strip() for part in done.stdout.split("@@")]
    codes = [json.loads(outs[i + 1].splitlines()[0]) for i in range(len(steps))]
    stdouts = [outs[0]] + ["\n".join(outs[i + 1].splitlines()[1:]) for i in range(len(steps) - 1)]
    errs = [part.strip() for part in done.stderr.split("@@")]
    assert codes == [0, 0, 2, 2, 2], done.stderr
    first, again = json.loads(stdouts[0]), json.loads(stdouts[1])
    assert first == again and first["model"] == "acme/tiny-llama" and len(first["targets"]) == 4
    assert first["adapter_config"].endswith("adapter_config.json")
    assert adapter_gets == 1  # downloaded once; the second run reads the cache
    for err, message in zip(
        errs[2:],
        (
            "acme/no-such-repo: no repo acme/no-such-repo on ",
            "acme/weights-only: the repo has no adapter_config.json at revision 'main'",
            "acme/not-cached: adapter_config.json is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
        ),
    ):
        lines = [line for line in err.splitlines() if line]
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), err


# =========================================================================== what a trainer's config builds
def test_axolotl_lora_target_linear_is_every_linear_leaf_minus_the_head(tmp_path, tiny):
    config = {"base_model": tiny["llava"], "adapter": "lora", "lora_r": 4, "lora_alpha": 8, "lora_target_linear": True}
    result = explain(write(tmp_path, yaml.safe_dump(config), "axolotl.yaml"))
    assert result.trainer == "axolotl" and result.model_map.model == tiny["llava"]
    # loaders/adapter.py find_all_linear_names: leaf names of every Linear: the vision tower and projector too
    assert {t.scope for t in result.targets} == {"language", "vision", "projector"}
    assert "lm_head" not in {t.name for t in result.targets}
    assert any("reaches the vision tower" in p for p in result.problems())
    # a regex next to lora_target_linear becomes one more list entry, matched as a name: a no-op
    config.update(base_model=tiny["llama"], lora_target_modules=r".*\.q_proj")
    result = explain(write(tmp_path, yaml.safe_dump(config), "axolotl.yaml"))
    assert [e.entry for e in result.no_ops] == [r".*\.q_proj"] and len(result.targets) == 2 * 7
    assert any("lora_target_linear turns the lora_target_modules regex" in w for w in result.warnings)


def test_llamafactory_config_as_it_builds_it(tmp_path, tiny):
    # lora_target: all: model_utils/misc.py find_all_linear_modules, minus lm_head, the projector and the frozen tower
    yaml_file = write(tmp_path, f"model_name_or_path: {tiny['llava']}\nfinetuning_type: lora\n", "lf.yaml")
    result = explain(yaml_file)
    assert result.trainer == "LLaMA-Factory" and {t.scope for t in result.targets} == {"language"}
    assert len(result.targets) == 2 * 7 and result.config.lora_alpha == 16  # lora_alpha: lora_rank * 2
    # composite models: entries are substrings of full names (patch_target_modules); one matching nothing is named
    json_file = write(
        tmp_path, {"model_name_or_path": tiny["llava"], "lora_target": "q_proj,query_key_value"}, "lf.json"
    )
    result = explain(json_file)
    assert {t.role for t in result.targets} == {"attention-q"} and {t.scope for t in result.targets} == {"language"}
    assert [(e.field, e.entry) for e in result.no_ops] == [("lora_target", "query_key_value")]
    # use_unsloth: model/adapter.py hands its arguments to Unsloth's FastLanguageModel.get_peft_model instead
    config = {"model_name_or_path": tiny["llama"], "lora_target": "q_proj,embed_tokens", "use_unsloth": True}
    result = explain(write(tmp_path, config, "lf-unsloth.json"))
    assert {t.role for t in result.targets} == {"attention-q"}  # Unsloth trains embed_tokens whole instead
    assert result.saved == {"model.embed_tokens": 128 * 64}


def test_unsloth_studio_config(tmp_path, tiny):
    result = explain(write(tmp_path, f"model: {tiny['llama']}\nlora:\n  lora_r: 4\n", "unsloth.yaml"))
    assert result.trainer == "Unsloth" and len(result.targets) == 2 * 7  # an empty target_modules: the 7 projections
    out = run(write(tmp_path, f"model: {tiny['llama']}\nlora:\n  rank: 4\n", "bad.yaml"))
    assert out.exit_code == 2 and "unsloth's lora section has no key 'rank'" in out.stderr


def test_unsloth_refusal_is_one_line(tmp_path, tiny):
    text = "model = FastLanguageModel.get_peft_model(model, r=8, target_modules=['q_proj'], modules_to_save=['mlp'])\n"
    out = run(write(tmp_path, text, "peft.py"), tiny["llama"])
    assert out.exit_code == 2 and out.stderr.count("\n") == 1
    assert "Unsloth's FastLanguageModel.get_peft_model raises: Unsloth: Module = mlp is not allowed" in out.stderr


@pytest.mark.parametrize("trainer", ["axolotl", "llamafactory", "unsloth"])
def test_an_export_explains_back_to_its_resolution(tmp_path, tiny, trainer):
    if trainer == "unsloth":  # FastModel.get_peft_model, with Unsloth's layer options
        resolution = lr.resolve(tiny["qwen3_moe"], roles="q,v", last_layers=2)
    else:
        resolution = lr.resolve(tiny["llama"], roles="q,v,ffn", last_layers=1)
    plan = resolution.plan()
    text = exports.render(trainer, exports.EXPORTS[trainer](plan))
    model = resolution.model_map.model
    if trainer == "unsloth":
        text = f"model, tokenizer = FastModel.from_pretrained(model_name={model!r})\n" + text
    else:
        text = yaml.safe_dump({"base_model" if trainer == "axolotl" else "model_name_or_path": model}) + text
    result = explain(write(tmp_path, text, "config.py" if trainer == "unsloth" else "config.yaml"))
    assert {t.name for t in result.targets} == set(resolution.target_keys().values())
    assert result.trainable_parameters == plan.cost.total and result.problems() == []


def test_moe_hint_names_target_parameters(tiny):
    # Mixtral's experts are 3-D parameters: "here: down_proj" sent people to target_modules, which cannot reach them
    result = explain({"target_modules": ["q_proj", "down_proj"]}, tiny["mixtral"])
    (no_op,) = result.no_ops
    assert no_op.entry == "down_proj"
    assert "here: target_parameters experts.down_proj" in no_op.reason


def test_embedding_warnings_say_what_is_large(tiny):
    result = explain({"target_modules": ["q_proj", "embed_tokens"], "modules_to_save": ["lm_head"]}, tiny["llama"])
    lora, copy = [w for w in result.warnings if "embedding" in w], [w for w in result.warnings if "full copy" in w]
    assert lora and "large" not in lora[0] and "rarely what a fine-tune needs" in lora[0]
    assert copy == [
        f"trains a full copy of lm_head (the LM head) through modules_to_save: {128 * 64:,} parameters, "
        f"{100 * 128 * 64 / result.model_map.base_parameters:.2f}% of the model"
    ]
