"""Helpers shared by the tests: paths, PEFT application, config folders, CLI probes. Real stack, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def peft_adapts(module, config):
    """``(adapted names, trainable parameters)`` when PEFT applies ``config`` to a copy of ``module``."""
    import copy
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(copy.deepcopy(module), config)
    tuner = model.base_model
    adapted = set(tuner.targeted_module_names) | set(getattr(tuner, "targeted_parameter_names", None) or [])
    return adapted, sum(p.numel() for p in model.parameters() if p.requires_grad)


def assert_adapts_exactly(plan, config):
    """PEFT, given a trainer's config, adapts the plan's resolved set with the plan's trainable count."""
    adapted, trainable = peft_adapts(plan.resolution.model_map.module, config)
    assert adapted == expected_keys(plan.resolution)
    assert not any("vision_tower" in key for key in adapted)
    assert trainable == plan.cost.total


def tiny_config(model_type: str, **sizes) -> dict:
    """transformers' full default config of ``model_type`` at a tiny size (2 layers, width 64), as ``config.json`` data."""
    from transformers import AutoConfig

    defaults = dict(
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    config = AutoConfig.for_model(model_type, **{**defaults, **sizes}).to_dict()
    return {key: value for key, value in config.items() if not key.startswith("_") and key != "transformers_version"}


def write_config(folder: Path, data: dict, name: str = "m") -> str:
    """A folder holding ``config.json`` with ``data``; returns its path."""
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(data))
    return str(target)


#: run the CLI in-process and report which heavy libraries got imported (on stderr, last line)
PROBE = (
    "import sys\n"
    "from lora_registry.cli import main\n"
    "code = 0\n"
    "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
    "print('LOADED=' + ','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def probe_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``lora-registry ARGS`` in a fresh interpreter through ``PROBE`` (stderr ends with ``LOADED=...``)."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env if env is not None else os.environ.copy(),
    )
