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


#: sizes of the tiny random-weight models the training-stack tests wrap (2 layers, hidden 64)
TINY_SIZES = {
    "llama": dict(
        num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2
    ),
    "qwen3_moe": dict(
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
    ),
    "gpt2": dict(n_layer=2, n_embd=64, n_head=4, n_positions=32),
}


def tiny_model(model_type: str, device: str | None = "cpu", **sizes):
    """A seeded random-weight model of ``model_type`` with ``TINY_SIZES`` (vocabulary 100), built on ``device``.

    ``device=None`` builds wherever the surrounding context puts tensors (DeepSpeed's ``zero.Init``).
    """
    import contextlib

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, vocab_size=100, **{**TINY_SIZES[model_type], **sizes})
    torch.manual_seed(0)
    with torch.device(device) if device else contextlib.nullcontext():
        return AutoModelForCausalLM.from_config(config)


def peft_applies_exactly(resolution, module) -> tuple[set, set, int, int]:
    """Apply ``resolution``'s LoraConfig to ``module`` with PEFT: (expected keys, targeted keys, predicted, trainable)."""
    from lora_registry.peft_compat import apply

    model, targeted = apply(module, resolution.lora_config())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return expected_keys(resolution), targeted, resolution.trainable_parameters(), trainable
