"""Shared helpers: real transformers, torch and PEFT on the meta device; no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def apply_peft(resolution, r=8, ranks=None, alphas=None):
    """Apply the emitted LoraConfig with PEFT; return (targeted keys, trainable parameter count, peft model)."""
    from lora_registry.coverage import peft_check

    result = peft_check(resolution, r=r, ranks=ranks, alphas=alphas)
    return result.targeted, result.trainable, result.model


def expected_keys(resolution):
    """The keys PEFT should report: module names, or parameter names for parameter targets."""
    return set(resolution.target_keys().values())


@pytest.fixture(scope="session")
def pm():
    """A plugin manager with the built-in plugins only (no third-party entry points)."""
    from lora_registry import get_plugin_manager

    return get_plugin_manager(entry_points=False)


def pytest_addoption(parser):
    parser.addoption(
        "--sweep", action="store_true", default=False,
        help="also run the sweep over every text-generating model type transformers ships (minutes)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "sweep: the whole-corpus sweep; runs only with --sweep (as .ci/run does)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--sweep"):
        return
    skip = pytest.mark.skip(reason="whole-corpus sweep: pass --sweep to run it (the README's test command does)")
    for item in items:
        if "sweep" in item.keywords:
            item.add_marker(skip)
