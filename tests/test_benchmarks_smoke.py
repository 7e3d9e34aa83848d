"""benchmarks/speed.py --quick runs end to end, and its scale fixtures say what the README claims."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from helpers import FIXTURES, ROOT


def test_speed_quick_runs_and_reports_every_section():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for heading in ("### Start-up", "### Library on a meta-built", "### Linearity", "### Scale"):
        assert heading in out, out
    assert "failed" not in out, out
    # every start-up command reports a median
    for command in ("--help", "roles", "plugins"):
        assert re.search(rf"\| `lora-registry {command}` \| \d+(\.\d+)? m?s \|", out), out
    # the synthetic MoE's emitted targets are a few suffixes, not one name per expert
    synthetic = next(line for line in out.splitlines() if line.startswith("| synthetic"))
    entries = int(re.search(r"(\d+) entries", synthetic).group(1))
    assert entries <= 8, synthetic
    # the founding-notes scan is checked against the exact resolution on Llama
    assert re.search(r"\d+ names; misses \d+, extra \d+", out), out


def test_scale_fixtures_are_the_documented_shapes():
    llama = json.loads((FIXTURES / "llama-3.1-405b" / "config.json").read_text())
    assert (llama["model_type"], llama["num_hidden_layers"], llama["hidden_size"]) == ("llama", 126, 16384)
    kimi = json.loads((FIXTURES / "kimi-k2" / "config.json").read_text())
    assert kimi["model_type"] == "deepseek_v3"
    assert (kimi["num_hidden_layers"], kimi["n_routed_experts"], kimi["first_k_dense_replace"]) == (61, 384, 1)
    assert "auto_map" not in kimi and "quantization_config" not in kimi
