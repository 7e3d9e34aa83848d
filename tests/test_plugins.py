"""Plugin manager: every built-in answers, hooks are documented, precedence and isolation hold."""

from __future__ import annotations

import inspect as pyinspect
import json

import pytest
from typer.testing import CliRunner

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES
from lora_registry import hookimpl, hookspecs
from lora_registry.cli import app
from lora_registry.host import BUILTIN_PLUGINS, get_plugin_manager


@pytest.mark.parametrize(
    "name,model",
    [
        ("llama", EXAMPLES / "llama-3.1-8b"),
        ("mistral", EXAMPLES / "mistral-7b-v0.3"),
        ("phi", EXAMPLES / "phi-3-mini-4k-instruct"),
        ("declarative", "gpt2"),
        ("generic", FIXTURES / "qwen3-30b-a3b"),
    ],
)
def test_every_builtin_plugin_answers(pm, name, model):
    # The marker's project name must equal the manager's, or hookimpls are silently ignored.
    assert pm.get_plugin(name) is not None
    assert pm.hooks_of(name)
    assert lr.inspect(str(model), plugin_manager=pm).plugin == name


def test_all_builtins_registered_and_ordered(pm):
    assert set(pm.plugin_names()) == set(BUILTIN_PLUGINS)
    order = pm.precedence()
    assert order.index("llama") < order.index("declarative") < order.index("generic")
    assert order[-1] == "generic"


def test_every_hook_is_documented():
    for name, spec in pyinspect.getmembers(hookspecs, pyinspect.isfunction):
        if not name.startswith("lora_registry_"):
            continue
        doc = pyinspect.getdoc(spec) or ""
        assert ":return:" in doc, f"hook {name} does not document its return contract"
        for param in pyinspect.signature(spec).parameters:
            assert f":param {param}:" in doc, f"hook {name} does not document {param}"


def test_the_readme_plugin_guide_shows_every_hook():
    from helpers import ROOT

    guide = (ROOT / "README.md").read_text(encoding="utf-8").split("### Writing a plugin", 1)[1]
    hooks = [
        name for name, _ in pyinspect.getmembers(hookspecs, pyinspect.isfunction) if name.startswith("lora_registry_")
    ]
    assert len(hooks) == 5
    for name in hooks:
        params = ", ".join(pyinspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({params})" in guide, f"the README's plugin guide does not show {name}({params})"


def test_builtin_plugins_document_their_hooks(pm):
    for name, plugin in pm.pm.list_name_plugin():
        for hook in pm.pm.get_hookcallers(plugin):
            impl = next(i for i in hook.get_hookimpls() if i.plugin_name == name)
            assert pyinspect.getdoc(impl.function), f"{name}.{hook.name} has no docstring"


class _Custom:
    """A third-party plugin answering for llama: gives only q a role."""

    @hookimpl
    def lora_registry_model_types(self):
        """llama"""
        return ["llama"]

    @hookimpl
    def lora_registry_classify(self, model_type, leaves):
        """Only q_proj."""
        if model_type != "llama":
            return None
        return {leaf.name: "attention-q" for leaf in leaves if leaf.name.endswith("q_proj")}


class _Raises:
    @hookimpl
    def lora_registry_classify(self):
        raise RuntimeError("boom")


class _Garbage:
    @hookimpl
    def lora_registry_classify(self, leaves):
        return {"no.such.module": "attention-q"}


class _BadRole:
    @hookimpl
    def lora_registry_classify(self, leaves):
        return {leaves[0].name: "attention-z"}


def _manager_with(*plugins):
    pm = get_plugin_manager(entry_points=False)
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"third{index}")
    return pm


def test_third_party_plugin_beats_builtin():
    pm = _manager_with(_Custom())
    m = lr.inspect(str(EXAMPLES / "llama-3.1-8b"), plugin_manager=pm)
    assert m.plugin == "third0"
    assert set(filter(None, m.roles.values())) == {"attention-q"}
    forced = lr.inspect(str(EXAMPLES / "llama-3.1-8b"), plugin_manager=pm, plugin="llama")
    assert forced.plugin == "llama"


@pytest.mark.parametrize(
    "bad,message",
    [
        (_Raises(), "boom"),
        (_Garbage(), "no.such.module"),
        (_BadRole(), "attention-z"),
    ],
)
def test_a_failing_plugin_is_named_and_the_rest_keep_working(bad, message):
    pm = _manager_with(bad)
    m = lr.inspect(str(EXAMPLES / "mistral-7b-v0.3"), plugin_manager=pm)
    assert m.plugin == "mistral"
    assert any("third0" in w and message in w for w in m.warnings)
    assert any(f.plugin == "third0" for f in pm.failures)


def test_strict_plugins_env_makes_failures_fatal(monkeypatch):
    monkeypatch.setenv("LORA_REGISTRY_STRICT_PLUGINS", "1")
    with pytest.raises(lr.PluginError, match="third0"):
        lr.inspect("mistral", plugin_manager=_manager_with(_Raises()))


def test_disable_env_skips_plugins(monkeypatch):
    monkeypatch.setenv("LORA_REGISTRY_DISABLE_PLUGINS", "llama")
    pm = get_plugin_manager(entry_points=False)
    assert pm.get_plugin("llama") is None
    assert lr.inspect(str(EXAMPLES / "llama-3.1-8b"), plugin_manager=pm).plugin == "declarative"


def test_unknown_forced_plugin():
    with pytest.raises(lr.PluginError, match="no plugin named"):
        lr.inspect("mistral", plugin="nope")


def test_data_only_fragment_adds_an_architecture_and_a_preset():
    class Fragment:
        @hookimpl
        def lora_registry_registry_fragment(self):
            return """
[presets.tiny]
roles = "q"
rank = 2
alpha = 4

[architectures.qwen3_moe]
layers = "model.layers"
[architectures.qwen3_moe.layer_roles]
attention-q = "self_attn.q_proj"
"""

    pm = _manager_with(Fragment())
    m = lr.inspect(str(FIXTURES / "qwen3-30b-a3b"), plugin_manager=pm)
    assert m.plugin == "declarative"
    assert set(filter(None, m.roles.values())) == {"attention-q"}


# ----------------------------------------------------------------------------- the host: declines, blocking, tracing


def test_a_plugin_that_declines_is_not_a_failure(tmp_path, pm):
    # A LLaMA config with a classification head: the llama plugin's prediction (lm_head) does not hold, so it
    # declines with the reason; that is "not mine", not a failure, and no warning reaches the user.
    from helpers import write_config

    data = json.loads((EXAMPLES / "llama-3.1-8b" / "config.json").read_text())
    folder = write_config(
        tmp_path, {**data, "num_hidden_layers": 2, "architectures": ["LlamaForSequenceClassification"]}
    )
    host = get_plugin_manager(entry_points=False)
    m = lr.inspect(folder, plugin_manager=host)
    assert m.plugin == "declarative"  # the next plugin answers: the registry entry, which names no head
    assert m.warnings == () and host.failures == []
    assert "lm_head" in m.declines["llama"] and "score" in m.tree.module_names()
    result = CliRunner().invoke(app, ["resolve", folder, "--roles", "q,v", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == [] and result.stderr == ""


def test_a_forced_plugin_that_declines_says_why(tmp_path):
    from helpers import write_config

    data = json.loads((EXAMPLES / "llama-3.1-8b" / "config.json").read_text())
    folder = write_config(
        tmp_path, {**data, "num_hidden_layers": 1, "architectures": ["LlamaForSequenceClassification"]}
    )
    with pytest.raises(lr.PluginError, match="does not understand model_type 'llama': .*'lm_head'.*lacks"):
        lr.inspect(folder, plugin_manager=get_plugin_manager(entry_points=False), plugin="llama")


def test_disabled_plugins_are_blocked_in_pluggy(monkeypatch):
    monkeypatch.setenv("LORA_REGISTRY_DISABLE_PLUGINS", "llama, phi")
    host = get_plugin_manager(entry_points=False)
    assert host.pm.is_blocked("llama") and host.pm.is_blocked("phi")
    assert "llama" not in host.plugin_names()
    host.register(_Custom(), name="llama")  # pluggy refuses a blocked name: nothing is registered
    assert host.get_plugin("llama") is None


def test_trace_env_writes_every_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("LORA_REGISTRY_TRACE_PLUGINS", "1")
    host = get_plugin_manager(entry_points=False)
    lr.inspect(str(EXAMPLES / "llama-3.1-8b"), plugin_manager=host, fast=True)
    err = capsys.readouterr().err
    assert "[lora-registry] llama.lora_registry_module_tree(model_type, config) -> ModuleTree" in err
    assert "[lora-registry] llama.lora_registry_classify(" in err


def test_the_host_merges_the_registry_once_and_exposes_typed_hooks():
    host = get_plugin_manager(entry_points=False)
    assert host.registry is host.registry  # merged once
    types = host.model_types()
    assert types["llama"] == ["llama"] and "qwen3" in types["qwen"] and "gpt2" in types["declarative"]
    answers = host.answers()
    assert answers["gpt2"]["plugin"] == "declarative" and answers["llama"]["plugin"] == "llama"
    assert "qwen3" not in answers  # a tree-only plugin does not classify: qwen3 goes to the generic fallback


USER_ENTRY = """
[presets.mine]
roles = "q"
rank = 4
alpha = 8

[architectures.qwen3_moe]
layers = "model.layers"
[architectures.qwen3_moe.layer_roles]
attention-q = "self_attn.q_proj"
"""


@pytest.mark.parametrize("command", [["inspect", "--json"], ["resolve", "--roles", "q", "--format", "json"]])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_users_architecture_entries_apply_everywhere(tmp_path, monkeypatch, command, how):
    # The same presets file through --presets or LORA_REGISTRY_PRESETS: its [architectures.*] table classifies.
    mine = tmp_path / "mine.toml"
    mine.write_text(USER_ENTRY)
    args = [command[0], str(FIXTURES / "qwen3-30b-a3b"), *command[1:]]
    if how == "flag":
        args += ["--presets", str(mine)]
    else:
        monkeypatch.setenv("LORA_REGISTRY_PRESETS", str(mine))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["plugin"] == "declarative"
