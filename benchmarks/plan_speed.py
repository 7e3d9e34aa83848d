"""How long ``plan_memory`` takes, and its peak RSS: Llama-3.1-8B and -405B configs at seq 2048, batch 1.

    .venv/bin/python benchmarks/plan_speed.py

Each case runs in a fresh process (so RSS is that case's alone), imports included in "total".
Goals (issue): 8B under 10 s, 405B under 20 s, peak RSS under 2 GB on a 2-core machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ("llama-3.1-8b", ROOT / "examples" / "llama-3.1-8b" / "config.json", {}),
    ("llama-3.1-8b", ROOT / "examples" / "llama-3.1-8b" / "config.json", {"quant": "4bit", "gradient_checkpointing": True}),
    ("llama-3.1-405b", ROOT / "tests" / "fixtures" / "llama-3.1-405b" / "config.json", {}),
    ("llama-3.1-405b", ROOT / "tests" / "fixtures" / "llama-3.1-405b" / "config.json",
     {"quant": "4bit", "gradient_checkpointing": True}),
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def one(path: str, extra: dict) -> dict:
    """Plan one case in this process; return its timings and peak RSS."""
    started = time.perf_counter()
    from transformers import AutoConfig
    from peft import LoraConfig

    from lora_registry.memory import MemorySettings, plan_memory

    imported = time.perf_counter()
    config = AutoConfig.from_pretrained(str(Path(path).parent))
    plan = plan_memory(config, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS),
                       MemorySettings(seq_len=2048, batch=1, **extra), model_label=path)
    done = time.perf_counter()
    return {"plan_s": done - imported, "total_s": done - started,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "allocated_gib": plan.allocated / 2**30, "simulated": plan.simulated_layers}


def main() -> int:
    """Print the markdown table."""
    if len(sys.argv) == 3:
        print(json.dumps(one(sys.argv[1], json.loads(sys.argv[2]))))
        return 0
    print("| model | settings | plan | with imports | peak RSS | peak allocated | layers simulated |")
    print("|---|---|---|---|---|---|---|")
    for name, path, extra in CASES:
        out = subprocess.run([sys.executable, __file__, str(path), json.dumps(extra)], capture_output=True, text=True)
        if out.returncode:
            print(f"| {name} | {extra} | failed: {out.stderr.strip().splitlines()[-1][:100]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        settings = ", ".join(f"{k}={v}" for k, v in extra.items()) or "LoRA bf16"
        print(f"| {name} | {settings} | {r['plan_s']:.1f} s | {r['total_s']:.1f} s | {r['rss_mb']:.0f} MB | "
              f"{r['allocated_gib']:.1f} GiB | {', '.join(map(str, r['simulated']))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
