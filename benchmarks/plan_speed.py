"""How long ``lora-registry plan`` takes and its peak RSS, on Llama-3.1-8B's and Llama-3.1-405B's configs.

    .venv/bin/python benchmarks/plan_speed.py            # the table below, medians of 3 runs
    .venv/bin/python benchmarks/plan_speed.py --quick    # one run of the small cases (the test suite's smoke run)

Each run is the whole command in a fresh process (imports, reading the config, the simulation,
the searches with ``--gpu``), timed from outside; CPU time (user + system) and peak RSS are
that process's own (``os.wait4``): CPU time does not grow when other work shares the machine. Goals (issue 15): 8B under 10 s, 405B under 20 s, peak RSS under 2 GB, on the
2-core development machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLAMA_8B = ROOT / "examples" / "llama-3.1-8b"
LLAMA_405B = ROOT / "tests" / "fixtures" / "llama-3.1-405b"
COMMON = ("--roles", "all", "--rank", "16", "--seq-len", "2048", "--format", "json", "--no-cache")
QLORA = ("--quant", "4bit", "--gradient-checkpointing")
#: (label, MODEL, extra options, in --quick)
CASES = [
    ("8B LoRA", LLAMA_8B, (), True),
    ("8B QLoRA, checkpointing", LLAMA_8B, QLORA, False),
    ("8B QLoRA, checkpointing, --gpu RTX4090", LLAMA_8B, (*QLORA, "--gpu", "RTX4090"), False),
    ("405B LoRA", LLAMA_405B, (), False),
    ("405B QLoRA, checkpointing", LLAMA_405B, QLORA, False),
    ("405B QLoRA, checkpointing, --gpu 256GB", LLAMA_405B, (*QLORA, "--gpu", "256GB"), False),
]


def run_once(model: Path, extra: tuple[str, ...]) -> tuple[float, float, int, str]:
    """``(wall seconds, CPU seconds, peak RSS in bytes, stdout)`` of one ``lora-registry plan`` in a fresh process."""
    script = Path(sys.executable).with_name("lora-registry")
    command = [str(script), "plan", str(model), *COMMON, *extra]
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        env = {**os.environ, "LORA_REGISTRY_CACHE_DIR": cache}
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # reaps the child with its own rusage
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, error = out.read().decode(), err.read().decode()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)}: {error.strip()[-300:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text


def main(argv: list[str] | None = None) -> int:
    """Print the markdown table of medians."""
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of the quick cases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", default="", help="only the cases whose label contains this text")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    print(
        "| case | `plan` wall time (median) | CPU time (median) | peak RSS (max) | peak allocated | layers simulated |"
    )
    print("|---|---|---|---|---|---|")
    for label, model, extra, quick in CASES:
        if (args.quick and not quick) or args.case not in label:
            continue
        runs = [run_once(model, extra) for _ in range(repeat)]
        doc = json.loads(runs[-1][3])
        seconds = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        simulated = ", ".join(map(str, doc["simulated_layers"]))
        verdict = (
            f", {doc['fits']}: max_seq_len {doc['max_seq_len']}, max_batch {doc['max_batch']}" if doc["gpu"] else ""
        )
        print(
            f"| {label} | {seconds:.1f} s | {cpu:.1f} s | {rss / 2**20:.0f} MiB | "
            f"{doc['peak_bytes']['allocated'] / 2**30:.1f} GiB{verdict} | {simulated} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
