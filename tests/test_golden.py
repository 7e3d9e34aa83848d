"""The hand-checked golden table: the role and scope of every leaf of one layer per architecture.

Each ``tests/golden/<model_type>[@layer].toml`` was written by reading the model's code in
transformers (the file names the classes), not by running lora-registry. A failure here means
transformers renamed or restructured a module, or the classifier changed its mind: decide which
by reading the code again, as PEFT's Phi defaults needed when upstream modeling changed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

import lora_registry as lr
from lora_registry.registry import tomllib

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = sorted(GOLDEN.glob("*.toml"))


@lru_cache(maxsize=4)
def _model_map(model_type):
    from lora_registry import get_plugin_manager

    return lr.inspect(model_type, plugin_manager=get_plugin_manager(entry_points=False))


def test_the_table_is_broad():
    model_types = {tomllib.loads(f.read_text())["model_type"] for f in FILES}
    assert len(model_types) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden_layer(path):
    golden = tomllib.loads(path.read_text())
    model_map = _model_map(golden["model_type"])
    layer = golden["layer"]
    expected = {name: (entry["role"], entry["scope"]) for name, entry in golden["leaves"].items()}
    actual = {
        leaf.name: (model_map.roles.get(leaf.name) or "null", leaf.scope)
        for leaf in model_map.leaves
        if leaf.layer == layer
    }
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = [
        f"{name}: golden {expected[name]}, got {actual[name]}"
        for name in expected
        if name in actual and expected[name] != actual[name]
    ]
    problems = (
        [f"missing from the model: {n}" for n in missing] + [f"not in the golden file: {n}" for n in extra] + wrong
    )
    assert not problems, f"{path.name}: {len(problems)} differences:\n" + "\n".join(problems[:40])
