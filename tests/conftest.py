"""pytest set-up: the built-ins-only plugin host fixture, the --sweep option, a private map cache. Helpers live in helpers.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Every test runs against a cache folder of its own session, never the user's."""
    import os

    os.environ["LORA_REGISTRY_CACHE_DIR"] = str(tmp_path_factory.mktemp("lora-registry-cache"))
    yield


@pytest.fixture(scope="session")
def pm():
    """A plugin manager with the built-in plugins only (no third-party entry points)."""
    from lora_registry import get_plugin_manager

    return get_plugin_manager(entry_points=False)


def pytest_addoption(parser):
    parser.addoption(
        "--sweep",
        action="store_true",
        default=False,
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
