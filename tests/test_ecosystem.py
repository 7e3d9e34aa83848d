"""Third-party plugins as ordinary packages: the example package installed for real, and scaffold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import lora_registry as lr
from helpers import EXAMPLES, probe_cli
from lora_registry.cli import app
from lora_registry.coverage import peft_check
from lora_registry.host import get_plugin_manager
from lora_registry.registry import load_registry, tomllib

PACKAGE = EXAMPLES / "lora-registry-tinyformer"
CONFIG = PACKAGE / "tinyformer-config"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the example plugin package into a temporary folder (not the test venv).

    It is built from a copy: setuptools builds in the source folder, and the checkout stays as it was.
    """
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / PACKAGE.name
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def on_path(installed, monkeypatch):
    """The example package importable and its entry point discoverable, for this test only."""
    monkeypatch.syspath_prepend(str(installed))
    yield installed
    for name in [m for m in sys.modules if m.startswith("lora_registry_tinyformer")]:
        del sys.modules[name]


def _cli(installed, *args):
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lora_registry", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_installed_plugin_is_discovered_and_answers_from_the_cli(installed):
    plugins = _cli(installed, "plugins", "--json")
    assert plugins.returncode == 0, plugins.stderr
    data = json.loads(plugins.stdout)
    row = next(p for p in data["plugins"] if p["name"] == "tinyformer")
    assert row["package"] == "lora-registry-tinyformer" and row["version"] == "0.1.0"
    assert row["precedence"] == 1  # a third-party plugin is asked before every built-in
    assert "lora_registry_build_model" in row["hooks"]
    assert data["answers"]["tinyformer"]["plugin"] == "tinyformer"
    assert "third-party" in data["answers"]["tinyformer"]["why"]
    assert data["hookspec_version"] == lr.HOOKSPEC_VERSION

    inspected = _cli(installed, "inspect", str(CONFIG), "--json")
    assert inspected.returncode == 0, inspected.stderr
    model_map = json.loads(inspected.stdout)
    assert model_map["plugin"] == "tinyformer" and model_map["model_type"] == "tinyformer"
    roles = {m["name"]: m["role"] for m in model_map["modules"]}
    assert roles["blocks.3.mix.Wq"] == "attention-q" and roles["blocks.7.channel.contract"] == "ffn-down"

    # the plugin's registry fragment adds a preset that the CLI accepts
    resolved = _cli(installed, "resolve", str(CONFIG), "--preset", "tinyformer-mix8", "--format", "json")
    assert resolved.returncode == 0, resolved.stderr
    out = json.loads(resolved.stdout)
    assert out["plugin"] == "tinyformer"
    assert set(out["roles"]) == {
        "attention-q",
        "attention-k",
        "attention-v",
        "attention-o",
        "ffn-gate",
        "ffn-up",
        "ffn-down",
    }
    # preset: attention at r8 (8 layers x 4 x 8 x (512+512)), ffn at r4 (8 x 3 x 4 x (512+1376))
    assert out["trainable_parameters"] == 8 * 4 * 8 * 1024 + 8 * 3 * 4 * (512 + 1376)


@pytest.mark.parametrize(
    "args",
    [
        ("resolve", str(EXAMPLES / "llama-3.1-8b"), "--roles", "q,v"),
        ("resolve", str(CONFIG), "--preset", "tinyformer-mix8", "--format", "json"),
        ("inspect", str(CONFIG), "--json"),
    ],
)
def test_an_installed_plugin_keeps_the_fast_path(installed, args):
    # Installing a plugin must not slow the others down: its classify takes no `model`, so the built-ins'
    # trees still answer from config.json; and its own tree (lora_registry_module_tree) serves its model.
    env = {**os.environ, "PYTHONPATH": str(installed), "LORA_REGISTRY_NO_CACHE": "1"}
    fast = probe_cli(*args, env=env)
    assert fast.returncode == 0, fast.stderr
    assert "LOADED=\n" in fast.stderr, fast.stderr
    slow = probe_cli(*args, "--verify", env=env)
    assert slow.returncode == 0, slow.stderr
    assert "fast path verified against the model transformers builds" in slow.stderr
    assert slow.stdout == fast.stdout


def test_without_the_plugin_the_model_type_is_a_clear_error():
    result = CliRunner().invoke(app, ["inspect", str(CONFIG)])
    assert result.exit_code == 2
    assert "no installed plugin builds it" in result.stderr


def test_plan_rebuilds_a_plugin_built_model_from_its_config(on_path):
    from lora_registry.loading import load_recipe

    pm = get_plugin_manager()
    recipe = load_recipe(str(CONFIG), plugin_manager=pm)
    assert recipe.model_type == "tinyformer" and recipe.config["num_hidden_layers"] == 8
    assert len(recipe.build({**recipe.config, "num_hidden_layers": 2}).blocks) == 2  # the plugin builds any depth
    adapter = lr.resolve(str(CONFIG), roles="q,v", plugin_manager=pm).plan()
    # Tinyformer's forward takes no labels: there is no training step to plan, and the error says why
    with pytest.raises(lr.ModelLoadError, match="labels") as err:
        adapter.memory(lr.MemorySettings(seq_len=16))
    assert "\n" not in str(err.value)


def test_installed_plugin_in_process_peft_exact(on_path):
    pm = get_plugin_manager()
    assert pm.precedence()[0] == "tinyformer"
    resolution = lr.resolve(str(CONFIG), roles="q,v,ffn", plugin_manager=pm)
    assert resolution.model_map.plugin == "tinyformer"
    assert len(resolution.leaves) == 8 * 5
    result = peft_check(resolution, r=4, ranks={"ffn": 2})
    assert result.exact, result.difference()
    # the generic fallback alone cannot tell Tinyformer's mixers are attention: the plugin is what makes it right
    generic = lr.inspect(str(CONFIG), plugin_manager=pm, plugin="generic")
    assert generic.plugin == "generic"
    assert "attention-q" not in generic.present_roles()


def test_plugin_that_fails_to_build_is_named(on_path):
    bad = CONFIG.parent / "tinyformer-config"
    pm = get_plugin_manager()
    with pytest.raises(lr.ModelLoadError, match="plugin 'tinyformer' failed to build"):
        from lora_registry.loading import build_with_plugin

        build_with_plugin(pm, "tinyformer", {"model_type": "tinyformer", "hidden_size": "wide"}, str(bad))


# ----------------------------------------------------------------------------- scaffold


@pytest.mark.parametrize("model_type", ["qwen3", "t5", "olmoe", "deepseek_v2"])
def test_scaffold_entry_reproduces_the_generic_answer(model_type, pm):
    generic = lr.inspect(model_type, plugin_manager=pm)
    assert generic.plugin == "generic"
    text = CliRunner().invoke(app, ["scaffold", model_type]).stdout
    fragment = tomllib.loads(text)  # valid TOML
    assert list(fragment["architectures"]) == [model_type]

    class DataOnly:
        @lr.hookimpl
        def lora_registry_registry_fragment(self):
            return text

    manager = get_plugin_manager(entry_points=False)
    manager.register(DataOnly(), name="shipped-entry")
    declared = lr.inspect(model_type, plugin_manager=manager)
    assert declared.plugin == "declarative"
    language = [leaf.name for leaf in generic.leaves if leaf.scope == "language"]
    assert {n: declared.roles[n] for n in language} == {n: generic.roles[n] for n in language}


def test_scaffold_refuses_a_model_a_plugin_already_answers(tmp_path):
    result = CliRunner().invoke(app, ["scaffold", "gpt2", "-o", str(tmp_path / "x.toml")])
    assert result.exit_code == 2 and "already answered by plugin 'declarative'" in result.stderr
    assert not (tmp_path / "x.toml").exists()


def test_scaffold_writes_a_file(tmp_path):
    out = tmp_path / "entry.toml"
    result = CliRunner().invoke(app, ["scaffold", "qwen3", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "[architectures.qwen3]" in out.read_text()
    load_registry().merged(tomllib.loads(out.read_text()), str(out))  # validates as a registry fragment


def test_a_plugin_that_fails_to_import_is_one_warning_line_and_the_rest_work(tmp_path):
    # An installed distribution whose entry point module raises on import (a broken release).
    site = tmp_path / "site"
    (site / "broken_acme_plugin").mkdir(parents=True)
    (site / "broken_acme_plugin" / "__init__.py").write_text("raise ImportError('acme needs a newer torch')\n")
    info = site / "broken_acme-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-acme\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lora_registry]\nacme = broken_acme_plugin\n")
    env = {**os.environ, "PYTHONPATH": str(site), "LORA_REGISTRY_NO_CACHE": "1"}
    run = probe_cli("resolve", str(EXAMPLES / "llama-3.1-8b"), "--roles", "q,v", "--format", "json", env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()[:-1]  # the probe's own LOADED= line last
    assert lines == [
        "warning: plugin 'acme' (broken-acme) failed to load and was skipped: ImportError: acme needs a newer torch"
    ]
    assert json.loads(run.stdout)["plugin"] == "llama"
    listed = probe_cli("plugins", "--json", env=env)
    assert any(f["plugin"] == "acme" for f in json.loads(listed.stdout)["failures"])
