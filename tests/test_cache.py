"""The on-disk map cache: a second call answers without torch, the same answer, and never a stale or foreign one."""

from __future__ import annotations

import json
import os

import pytest

import lora_registry as lr
from helpers import FIXTURES, probe_cli, write_config
from lora_registry import cache
from lora_registry.loading import read_source


@pytest.fixture
def env(tmp_path):
    """A cache folder of this test's own, for subprocesses."""
    return {**os.environ, "LORA_REGISTRY_CACHE_DIR": str(tmp_path / "cache")}


def _entries(env):
    folder = os.path.join(env["LORA_REGISTRY_CACHE_DIR"], "maps")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.mark.parametrize(
    "source",
    [
        "qwen2_moe",  # a bare model_type: transformers' defaults, built once
        str(FIXTURES / "deepseek-v2-lite"),  # a config folder no plugin has a tree for
    ],
)
def test_the_second_call_answers_from_the_cache_without_torch(env, source):
    args = ("resolve", source, "--roles", "attention,experts", "--format", "json")
    first = probe_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "torch" in first.stderr.splitlines()[-1]  # built on the meta device the first time
    assert len(_entries(env)) == 1
    second = probe_cli(*args, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stderr.splitlines()[-1] == "LOADED="
    assert second.stdout == first.stdout
    inspected = probe_cli("inspect", source, "--json", env=env)
    assert inspected.stderr.splitlines()[-1] == "LOADED=" and json.loads(inspected.stdout)["model"] == source


def test_a_cached_hub_id_answers_from_the_cache(tmp_path, env):
    repo = tmp_path / "hub" / "models--example--tiny-deepseek"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    data = json.loads((FIXTURES / "deepseek-v2-lite" / "config.json").read_text())
    (snapshot / "config.json").write_text(json.dumps({**data, "num_hidden_layers": 2}))
    env = {**env, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    args = ("inspect", "example/tiny-deepseek", "--json")
    first, second = probe_cli(*args, env=env), probe_cli(*args, env=env)
    assert first.returncode == second.returncode == 0, second.stderr
    assert second.stderr.splitlines()[-1] == "LOADED=" and second.stdout == first.stdout


def test_no_cache_flag_and_env_write_nothing(env):
    args = ("resolve", "gpt2", "--roles", "qkv", "--format", "json")
    assert probe_cli(*args, "--no-cache", env=env).returncode == 0
    assert _entries(env) == []
    assert probe_cli(*args, env={**env, "LORA_REGISTRY_NO_CACHE": "1"}).returncode == 0
    assert _entries(env) == []


def test_the_key_follows_what_the_map_depends_on(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_REGISTRY_CACHE_DIR", str(tmp_path / "cache"))
    host = lr.get_plugin_host(entry_points=False)
    data = json.loads((FIXTURES / "deepseek-v2-lite" / "config.json").read_text())
    a = read_source(write_config(tmp_path, {**data, "num_hidden_layers": 2}, "a"))
    b = read_source(write_config(tmp_path, {**data, "num_hidden_layers": 3}, "b"))
    same = read_source(write_config(tmp_path, {**data, "num_hidden_layers": 2}, "c"))
    key = cache.map_key(a, host, plugin=None, trust_remote_code=False)
    assert key == cache.map_key(same, host, plugin=None, trust_remote_code=False)  # content, not path
    assert key != cache.map_key(b, host, plugin=None, trust_remote_code=False)
    assert key != cache.map_key(a, host, plugin="generic", trust_remote_code=False)
    assert key != cache.map_key(a, host, plugin=None, trust_remote_code=True)
    mine = tmp_path / "mine.toml"
    mine.write_text(
        '[architectures.deepseek_v2]\nlayers = "model.layers"\n'
        '[architectures.deepseek_v2.layer_roles]\nattention-q-a = "self_attn.q_a_proj"\n'
    )
    with_entry = lr.get_plugin_host(entry_points=False, presets=mine)
    assert key != cache.map_key(a, with_entry, plugin=None, trust_remote_code=False)  # the user's entries count


def test_a_cached_map_equals_a_fresh_one_and_builds_its_module_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_REGISTRY_CACHE_DIR", str(tmp_path / "cache"))
    host = lr.get_plugin_host(entry_points=False)
    folder = write_config(
        tmp_path, {**json.loads((FIXTURES / "deepseek-v2-lite" / "config.json").read_text()), "num_hidden_layers": 2}
    )
    fresh = lr.inspect(folder, plugin_manager=host, cache=True)
    cached = lr.inspect(folder, plugin_manager=host, cache=True)
    assert cached == fresh and not cached.handle.built
    assert cached.module is not None and cached.handle.built  # explain and PEFT checks get the module


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: "not json",
        lambda text: json.dumps({**json.loads(text), "key": "another"}),  # another key's entry under this name
        lambda text: json.dumps({**json.loads(text), "format": 999}),
        lambda text: json.dumps({**json.loads(text), "map": {**json.loads(text)["map"], "roles": []}}),
    ],
)
def test_a_corrupt_or_foreign_entry_is_ignored_and_rewritten(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("LORA_REGISTRY_CACHE_DIR", str(tmp_path / "cache"))
    host = lr.get_plugin_host(entry_points=False)
    folder = write_config(
        tmp_path,
        {
            "model_type": "qwen2_moe",
            "num_hidden_layers": 1,
            "num_experts": 4,
            "hidden_size": 64,
            "intermediate_size": 96,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 96,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 100,
        },
    )
    fresh = lr.inspect(folder, plugin_manager=host, cache=True)
    (entry,) = (tmp_path / "cache" / "maps").iterdir()
    entry.write_text(damage(entry.read_text()))
    again = lr.inspect(folder, plugin_manager=host, cache=True)
    assert again == fresh and again.handle.built  # rebuilt, not read
    assert json.loads(entry.read_text())["map"] == fresh.to_json()  # and written back whole


def test_an_unwritable_cache_folder_only_means_no_caching(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("LORA_REGISTRY_CACHE_DIR", str(blocked / "below-a-file"))
    m = lr.inspect("gpt2", plugin_manager=lr.get_plugin_host(entry_points=False), cache=True)
    assert m.plugin == "declarative"
