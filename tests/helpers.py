"""Helpers shared by the tests: paths, PEFT application, config folders, CLI probes. Real stack, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

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


#: a tiny Llama: 2 layers of width 64, built in milliseconds
TINY = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
}
#: a tiny Phi-3: q, k and v exist only fused (qkv_proj); its default eos id (32000) lies outside this vocabulary
TINY_PHI3 = {**TINY, "model_type": "phi3", "pad_token_id": 0}

_runner = CliRunner()


class Run:
    """What one CLI run left behind: exit status and the two streams."""

    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"Run(code={self.code}, stderr={self.stderr!r})"


def cli(*args: str) -> Run:
    """Run the console entry point in-process, as `lora-registry ARGS` would."""
    old = sys.argv
    sys.argv = ["lora-registry", *map(str, args)]
    from lora_registry.cli import main

    try:
        with _runner.isolation() as (out, err, _):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            return Run(code, out.getvalue().decode(), err.getvalue().decode())
    finally:
        sys.argv = old


def assert_one_line_error(run: Run, *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr starting with ``error:``, containing every fragment."""
    assert run.code == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith("error: ") and "Traceback" not in run.stderr + run.stdout, run
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def config_folder(folder: Path, data) -> Path:
    """``folder`` holding ``config.json`` with ``data`` (a dict, or raw text or bytes for bad-input tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, (str, bytes)) else json.dumps(data)
    (folder / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def subprocess_env(**extra: str | None) -> dict[str, str]:
    """This process's environment (PYTHONPATH included) without HF settings or proxies, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    for key in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        env.pop(key, None)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


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
