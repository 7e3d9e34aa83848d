"""LoRA settings and the adapter plan: values checked once, the preset-override rule in one place."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES
from lora_registry.cli import app
from lora_registry.settings import LoraSettings

LLAMA = str(EXAMPLES / "llama-3.1-8b")


def _counting(monkeypatch, target: str):
    module, name = target.rsplit(".", 1)
    import importlib

    owner = importlib.import_module(module)
    original = getattr(owner, name)
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.mark.parametrize("fmt", ["table", "json", "peft", "axolotl"])
def test_one_run_checks_each_peft_option_once(monkeypatch, fmt):
    values = _counting(monkeypatch, "lora_registry.settings.check_option_values")
    targets = _counting(monkeypatch, "lora_registry.peft_compat.check_targets")
    per_role = _counting(monkeypatch, "lora_registry.resolution.per_role")
    hosts = _counting(monkeypatch, "lora_registry.host.get_plugin_host")
    merges = _counting(monkeypatch, "lora_registry.host.load_registry")
    args = [
        "resolve",
        LLAMA,
        "--roles",
        "q,v,ffn",
        "--rank-for",
        "ffn=4",
        "--dora",
        "--format",
        fmt,
        "--modules-to-save",
        "lm-head",
        "--no-cache",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert (len(values), len(targets), len(hosts), len(merges)) == (1, 1, 1, 1)
    assert len(per_role) == 2  # ranks and alphas, each expanded once


def test_settings_are_frozen_and_checked_when_made():
    settings = LoraSettings(r=4, ranks={"FFN": 2})
    assert settings.ranks == {"ffn": 2} and settings.alpha == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.r = 8  # type: ignore[misc]
    for bad, message in (
        (dict(r=0), "rank must be"),
        (dict(lora_alpha=float("nan")), "alpha must be"),
        (dict(bias="some"), "bias must be"),
        (dict(lora_dropout=1.0), "lora_dropout"),
        (dict(ranks={"ffn": 2.5}), "rank for ffn"),
        (dict(ranks="ffn=4"), "mapping"),
        (dict(init_lora_weights="mica", use_dora=True), "cannot be combined"),
    ):
        with pytest.raises(lr.ConfigError, match=message):
            LoraSettings(**bad)


def test_a_preset_with_overrides():
    host = lr.get_plugin_host(entry_points=False)
    preset = host.registry.presets["qv8-ffn4"]
    plain = LoraSettings.from_preset(preset)
    assert (plain.r, plain.alpha, dict(plain.default_ranks), plain.preset) == (8, 16, {"ffn": 4}, "qv8-ffn4")
    mine = LoraSettings.from_preset(preset, r=16, ranks={"ffn": 2}, use_dora=True)
    assert (mine.r, mine.alpha, dict(mine.ranks), mine.use_dora) == (
        16,
        16,
        {"ffn": 2},
        True,
    )  # alpha stays the preset's
    # the preset's per-role ranks apply only where their roles resolved; the user's win over them
    resolution = lr.resolve(LLAMA, "q,v")
    assert resolution.plan(plain).ranks == {}
    both = lr.resolve(LLAMA, "q,v,ffn")
    assert both.plan(plain).rank_of("ffn-up") == 4 and both.plan(mine).rank_of("ffn-up") == 2
    with pytest.raises(lr.ConfigError, match="not among the resolved roles"):
        resolution.plan(mine)  # the user's own per-role rank for a role that did not resolve is an error


def test_the_plan_holds_every_output():
    resolution = lr.resolve(str(FIXTURES / "qwen3-30b-a3b"), "q,v,experts")
    plan = resolution.plan(LoraSettings(r=8, ranks={"experts": 4}))
    doc = plan.to_dict()
    assert doc["trainable_parameters"] == plan.cost.total == resolution.trainable_parameters(8, {"experts": 4})
    assert doc["target_modules"] == ["q_proj", "v_proj"] and doc["target_parameters"] == plan.target_parameters
    config = plan.lora_config()
    assert config.rank_pattern == plan.rank_pattern and set(config.target_modules) == set(plan.target_modules)
    assert json.loads(plan.adapter_config())["base_model_name_or_path"] == str(FIXTURES / "qwen3-30b-a3b")
