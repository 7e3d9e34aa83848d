"""pytest set-up: the built-ins-only plugin host fixture, the --sweep option, a private map cache, the trainers'
packages installed once per session. Helpers live in helpers.py."""

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


#: The trainers' own code the exports are checked against, pinned (option names move between releases): pure
#: Python wheels (mlx-cpu ships mlx's CPU library), installed --no-deps into a folder of their own, never into the
#: venv, whose torch, transformers and PEFT they then use. LitGPT imports lightning; MLX-LM needs mlx's CPU build.
TRAINER_WHEELS = (
    "axolotl==0.19.0",
    "llamafactory==0.9.5",
    "ms-swift==4.6.0",
    "litgpt==0.5.13",
    "lightning==2.6.6",
    "lightning-utilities==0.15.3",
    "torchmetrics==1.9.0",
    "mlx==0.32.4",
    "mlx-cpu==0.32.4",
    "mlx-lm==0.32.2",
)


@pytest.fixture(scope="session")
def trainer_site(tmp_path_factory):
    """A folder holding ``TRAINER_WHEELS`` (pip's own cache makes later sessions fast); skips if pip cannot get them."""
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("trainers")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *TRAINER_WHEELS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.skip(f"could not install the trainers' wheels: {done.stderr.strip().splitlines()[-1:]}")
    return target


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
