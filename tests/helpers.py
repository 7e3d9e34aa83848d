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


#: small configs of architectures with long names: a hybrid (linear-attention layers with null roles and
#: reasons, attention every 4th layer, experts) and a VLM (nested names, a regex for the language scope)
TINY_QWEN3_NEXT = {
    "model_type": "qwen3_next",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "vocab_size": 256,
    "full_attention_interval": 4,
}
TINY_LLAVA = {
    "model_type": "llava",
    "architectures": ["LlavaForConditionalGeneration"],
    "text_config": {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
        "projection_dim": 32,
    },
    "image_token_index": 255,
}
