"""Speed and scale: medians of the CLI and the library against baselines measured in the same run.

Prints a markdown table per section, with the machine facts first:

- start-up: ``lora-registry --help``, ``roles``, ``plugins`` against ``python -c "import typer"``;
- the CLI on Llama-3.1-405B's config: ``lora-registry resolve <dir> --roles q,v,ffn --format json``
  against ``python -c "from transformers import AutoConfig"``, and the same on the declarative
  entries' published configs (Falcon-40B, Qwen2.5-7B, GPT-2) with ``--roles all``;
- the library on a meta-built Llama-3.1-405B: ``inspect`` + ``resolve(..., "all")`` against
  baseline A (the founding notes: scan ``named_modules()`` with substring tests) and baseline B
  (PEFT's own matching: ``inject_adapter_in_model``, and ``get_peft_model``, with the emitted
  LoraConfig on a fresh meta model);
- linearity: inspect + resolve on Llama-3.1-405B-shaped models of 8 to 126 layers, per module;
- scale, each case in its own process so peak RSS is its own: Kimi-K2 (deepseek_v3, 384 routed
  experts, about 1T parameters) and a synthetic model of about 70,000 unfused expert Linears.

    .venv/bin/python benchmarks/speed.py              # the README's tables (about 8 minutes on 2 cores)
    .venv/bin/python benchmarks/speed.py --repeat 7   # more runs per median (default 5)
    .venv/bin/python benchmarks/speed.py --quick      # smoke run (under a minute): 1 run each, small models

Every CLI command runs as a subprocess with this interpreter's environment, so the figures are
whatever the current code does. Other load on the machine shows up in every row alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLAMA_405B = ROOT / "tests" / "fixtures" / "llama-3.1-405b"
KIMI_K2 = ROOT / "tests" / "fixtures" / "kimi-k2"
LINEARITY_LAYERS = (8, 16, 32, 64, 126)
# The founding notes' approach: substrings of the usual projection names, tested against every module name.
BASELINE_SUBSTRINGS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PEFT_CAP_SECONDS = 300


# ---------------------------------------------------------------------- timing helpers
def median_seconds(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli() -> list[str]:
    """The ``lora-registry`` console script beside this interpreter, else ``python -m lora_registry``."""
    script = Path(sys.executable).with_name("lora-registry")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lora_registry"]


def command_seconds(argv: list[str], repeat: int) -> float:
    """Median wall time of running ``argv`` as a subprocess (it must succeed)."""

    def run():
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-300:]}")

    return median_seconds(run, repeat)


def run_case(name: str, *args: str, timeout: float | None = None) -> dict:
    """Run one measurement of this script in a fresh process (``--case NAME``) and return its JSON."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--case", name, *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt_s(seconds: float | None) -> str:
    """Seconds as ms below 1 s, else s."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mib(n_bytes: float | None) -> str:
    """Bytes as MiB (one decimal below 10 MiB)."""
    if n_bytes is None:
        return "-"
    mib = n_bytes / 2**20
    return f"{mib:.1f} MiB" if mib < 10 else f"{mib:,.0f} MiB"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------- models
def quiet() -> None:
    import logging

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def llama_405b_config(layers: int | None = None):
    """Llama-3.1-405B's config (optionally with fewer layers), as transformers reads it."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(LLAMA_405B))
    if layers is not None:
        config.num_hidden_layers = layers
    return config


def build_meta(config):
    """The transformers model for ``config`` on the meta device (no weights)."""
    from lora_registry.loading import build_model

    return build_model(config, False)


def synthetic_moe(layers: int, experts: int, hidden: int = 64, expert_hidden: int = 32):
    """A plain torch model on meta with unfused per-expert Linears, named like transformers' MoE models.

    ``model.layers.N.self_attn.{q,k,v,o}_proj``, ``model.layers.N.mlp.gate`` (router) and
    ``model.layers.N.mlp.experts.M.{gate,up,down}_proj``: ``layers * (3 * experts + 5) + 1`` Linears.
    """
    import torch
    import torch.nn as nn

    def linear(i, o):
        return nn.Linear(i, o, bias=False)

    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = linear(hidden, expert_hidden)
            self.up_proj = linear(hidden, expert_hidden)
            self.down_proj = linear(expert_hidden, hidden)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.o_proj = (linear(hidden, hidden) for _ in range(4))

    class SparseMoe(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = linear(hidden, experts)
            self.experts = nn.ModuleList(Expert() for _ in range(experts))

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = Attention()
            self.mlp = SparseMoe()

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(1000, hidden)
            self.layers = nn.ModuleList(DecoderLayer() for _ in range(layers))

    class ForCausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Backbone()
            self.lm_head = linear(hidden, 1000)

    with torch.device("meta"):
        return ForCausalLM()


def founding_notes_scan(model) -> list[str]:
    """Baseline A: every Linear whose name contains a usual projection substring."""
    import torch.nn as nn

    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(s in name for s in BASELINE_SUBSTRINGS)
    ]


def inspect_resolve(model, roles: str = "all"):
    """What the library does on a built model: map it, resolve the roles, emit the LoraConfig."""
    import lora_registry as lr

    resolution = lr.resolve(lr.inspect(model), roles)
    return resolution, resolution.lora_config()


def peft_inject(config, model) -> int:
    """Baseline B: PEFT's own matching and layer creation on ``model``; returns the LoRA layers made."""
    from peft import inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    model = inject_adapter_in_model(config, model, low_cpu_mem_usage=True)
    return sum(isinstance(m, LoraLayer) for m in model.modules())


def peft_get_model(config, model) -> int:
    """Baseline B': ``get_peft_model``, the call training scripts make; returns the LoRA layers made."""
    from peft import get_peft_model
    from peft.tuners.lora import LoraLayer

    return sum(isinstance(m, LoraLayer) for m in get_peft_model(model, config).modules())


def config_size(config) -> dict:
    """How big the emitted targets are: entries and JSON characters of target_modules + target_parameters."""
    modules = config.target_modules
    modules = sorted(modules) if isinstance(modules, (set, frozenset, list, tuple)) else modules
    parameters = sorted(config.target_parameters or [])
    text = json.dumps({"target_modules": modules, "target_parameters": parameters})
    entries = (len(modules) if isinstance(modules, list) else 1) + len(parameters)
    return {"entries": entries, "chars": len(text), "text": text}


# ---------------------------------------------------------------------- cases (each in its own process)
def case_library(args) -> dict:
    """405B (or fewer layers): build, inspect+resolve, baseline A, baseline B (fresh model per run)."""
    import torch.nn as nn

    quiet()
    import peft  # noqa: F401  (imported once up front: its import time is not matching time)

    config = llama_405b_config(args.layers)
    start = time.perf_counter()
    model = build_meta(config)
    build = time.perf_counter() - start
    inspect_resolve(model)  # warm caches (registry, plugin manager) the way any second call sees them
    ours = median_seconds(lambda: inspect_resolve(model), args.repeat)
    scan = median_seconds(lambda: founding_notes_scan(model), args.repeat)
    resolution, lora_config = inspect_resolve(model)
    wanted = set(resolution.target_keys())
    found = set(founding_notes_scan(model))
    peft_runs, get_runs, made = [], [], 0
    for _ in range(args.repeat):
        fresh = build_meta(config)
        start = time.perf_counter()
        made = peft_inject(lora_config, fresh)
        peft_runs.append(time.perf_counter() - start)
        fresh = build_meta(config)
        start = time.perf_counter()
        made_by_get = peft_get_model(lora_config, fresh)
        get_runs.append(time.perf_counter() - start)
    modules = sum(1 for _ in model.named_modules())
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    return {
        "layers": config.num_hidden_layers,
        "modules": modules,
        "linears": linears,
        "build": build,
        "ours": ours,
        "scan": scan,
        "peft": statistics.median(peft_runs),
        "peft_layers": made,
        "peft_get": statistics.median(get_runs),
        "peft_get_layers": made_by_get,
        "selected": len(wanted),
        "scan_found": len(found),
        "scan_missed": len(wanted - found),
        "scan_extra": len(found - wanted),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": config_size(lora_config),
    }


def case_linearity(args) -> dict:
    """inspect + resolve ``all`` per layer count, on one process; time per module."""
    quiet()
    import peft  # noqa: F401

    out = {}
    for layers in args.layer_counts:
        model = build_meta(llama_405b_config(layers))
        inspect_resolve(model)
        seconds = median_seconds(lambda model=model: inspect_resolve(model), args.repeat)
        modules = sum(1 for _ in model.named_modules())
        out[layers] = {"modules": modules, "seconds": seconds}
    return out


def case_scale(args) -> dict:
    """One large model: build, inspect + resolve ``all`` + LoraConfig, peak memory, config size.

    With ``--peft``, instead time PEFT's ``inject_adapter_in_model`` with the emitted config on a
    freshly built copy (the caller gives that case its own time limit).
    """
    import tracemalloc

    import torch.nn as nn

    quiet()
    import peft  # noqa: F401

    def build():
        if args.model == "kimi-k2":
            from lora_registry.loading import load_model

            return load_model(str(KIMI_K2)).model
        return synthetic_moe(args.synthetic_layers, args.synthetic_experts)

    start = time.perf_counter()
    model = build()
    built = time.perf_counter() - start
    start = time.perf_counter()
    resolution, lora_config = inspect_resolve(model)
    seconds = time.perf_counter() - start
    if args.peft:
        del model, resolution
        fresh = build()
        start = time.perf_counter()
        made = peft_inject(lora_config, fresh)
        return {"peft": time.perf_counter() - start, "peft_layers": made}
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    result = {
        "model": args.model,
        "build": built,
        "seconds": seconds,
        "linears": linears,
        "leaves": len(resolution.model_map.leaves),
        "selected": len(resolution.target_keys()),
        "parameters": resolution.model_map.base_parameters,
        "config": config_size(lora_config),
    }
    # Peak RSS before tracemalloc's own bookkeeping; then a second pass under tracemalloc (it slows
    # Python down, so it is not the timed one).
    result["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del resolution, lora_config
    tracemalloc.start()
    inspect_resolve(model)
    result["traced_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result


# ---------------------------------------------------------------------- sections
def machine_facts() -> str:
    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in ("torch", "transformers", "peft", "typer"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {versions}; load average at start {load}"
    )


def section_startup(repeat: int) -> str:
    # Round-robin: each round runs the baseline and every command once, so load that comes and goes
    # on a shared machine lands on all of them alike instead of skewing the ratios.
    commands = [[sys.executable, "-c", "import typer"]] + [
        cli() + argv for argv in (["--help"], ["roles"], ["plugins"])
    ]
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for argv, runs in zip(commands, times):
            runs.append(command_seconds(argv, 1))
    base, *medians = (statistics.median(runs) for runs in times)
    rows = [['`python -c "import typer"` (baseline)', fmt_s(base), "1.0x", ""]]
    for argv, seconds in zip(commands[1:], medians):
        ratio = seconds / base
        rows.append([f"`lora-registry {argv[-1]}`", fmt_s(seconds), f"{ratio:.1f}x", "yes" if ratio < 3 else "no"])
    # the installed copy, or a source tree when PYTHONPATH points at one
    package = subprocess.run(
        [sys.executable, "-c", "import lora_registry; print(lora_registry.__path__[0])"], capture_output=True, text=True
    ).stdout.strip()
    return (
        "### Start-up\n\n"
        + table(["command", "median", "vs baseline", "under 3x"], rows)
        + f"\n\n`{' '.join(cli())}`, importing `{package}`."
    )


# The declarative entries' fast path too: the published configs of GPT-2, Falcon-40B and Qwen2.5-7B.
CLI_FAST_CASES = [
    (LLAMA_405B, "q,v,ffn"),
    (ROOT / "tests" / "fixtures" / "falcon-40b", "all"),
    (ROOT / "tests" / "fixtures" / "qwen2.5-7b-instruct", "all"),
    (ROOT / "tests" / "fixtures" / "gpt2", "all"),
]


def section_cli_resolve(repeat: int) -> str:
    # Round-robin, like the start-up section: each round runs the baseline and every command once.
    commands = [[sys.executable, "-c", "from transformers import AutoConfig"]] + [
        cli() + ["resolve", str(folder.relative_to(ROOT)), "--roles", roles, "--format", "json", "--no-cache"]
        for folder, roles in CLI_FAST_CASES + CLI_TREE_CASES
    ]
    times: list[list[float]] = [[] for _ in commands]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for _ in range(repeat):
            for argv, runs in zip(commands, times):
                runs.append(command_seconds(argv, 1))
    finally:
        os.chdir(cwd)
    base, *medians = (statistics.median(runs) for runs in times)
    rows = [['`python -c "from transformers import AutoConfig"` (baseline)', fmt_s(base), "1.00x", ""]]
    for argv, seconds in zip(commands[1:], medians):
        ratio = seconds / base
        rows.append(
            [
                f"`lora-registry {' '.join(argv[len(cli()) :])}`",
                fmt_s(seconds),
                f"{ratio:.2f}x",
                "yes" if ratio < 0.25 else "no",
            ]
        )
    return "### CLI on published configs (the config-only fast path)\n\n" + table(
        ["command", "median", "vs baseline", "under 0.25x"], rows
    )


#: the fast path's newer families (module trees from their plugins) on published configs, first call, cache off
CLI_TREE_CASES = [
    (ROOT / "tests" / "fixtures" / "qwen3-8b", "q,v,ffn"),
    (ROOT / "tests" / "fixtures" / "qwen3-30b-a3b", "q,v,experts"),
    (ROOT / "tests" / "fixtures" / "gemma-2-9b", "all"),
    (ROOT / "tests" / "fixtures" / "gemma-3-1b-it", "all"),
    (ROOT / "tests" / "fixtures" / "olmo-2-1124-7b", "all"),
]
#: models no plugin has a tree for: answered from the cache on the second call
CLI_CACHE_CASES = [
    ("qwen3_moe", "q,v,experts"),  # a bare model_type: transformers' default config
    ("deepseek_v3", "attention,ffn"),
    (ROOT / "tests" / "fixtures" / "deepseek-v2-lite", "attention,experts"),
    (ROOT / "tests" / "fixtures" / "kimi-k2", "attention"),
]


def section_cache(repeat: int, quick: bool) -> str:
    """First call (built on the meta device, cache written) and later calls (the cache, no torch) per model."""
    import tempfile

    cases = CLI_CACHE_CASES[:1] if quick else CLI_CACHE_CASES
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "LORA_REGISTRY_CACHE_DIR": folder}
        env.pop("LORA_REGISTRY_NO_CACHE", None)
        base_runs: list[float] = []
        timed: list[tuple[str, float, list[float]]] = []
        for model, roles in cases:
            label = model if isinstance(model, str) else str(model.relative_to(ROOT))
            argv = cli() + ["resolve", label, "--roles", roles, "--format", "json"]
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, check=True, timeout=900)
            first = time.perf_counter() - start
            later = []
            for _ in range(repeat):
                base_runs.append(command_seconds([sys.executable, "-c", "from transformers import AutoConfig"], 1))
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, check=True, timeout=300)
                later.append(time.perf_counter() - start)
            timed.append((label, first, later))
        base = statistics.median(base_runs)
        rows.append(['`python -c "from transformers import AutoConfig"` (baseline)', "", fmt_s(base), "1.00x", ""])
        for label, first, later in timed:
            ratio = statistics.median(later) / base
            rows.append(
                [
                    f"`resolve {label}`",
                    fmt_s(first),
                    fmt_s(statistics.median(later)),
                    f"{ratio:.2f}x",
                    "yes" if ratio < 0.25 else "no",
                ]
            )
    return "### The map cache: a second call of any architecture\n\n" + table(
        ["command", "first call", "later calls (median)", "vs baseline", "under 0.25x"], rows
    )


def section_library(repeat: int, layers: int | None) -> str:
    extra = ["--repeat", str(repeat)] + (["--layers", str(layers)] if layers else [])
    r = run_case("library", *extra)
    if "error" in r:
        return f"### Library\n\nfailed: {r['error']}"
    name = "Llama-3.1-405B" if layers is None else f"Llama-3.1-405B ({layers} layers)"
    rows = [
        [
            'lora-registry: `resolve(inspect(model), "all")` + `lora_config()`',
            fmt_s(r["ours"]),
            "1.0x",
            f"{r['selected']} leaves, exact; emits {r['config']['entries']} suffixes",
        ],
        [
            "A: founding notes, `named_modules()` + substring tests",
            fmt_s(r["scan"]),
            f"{r['scan'] / r['ours']:.2f}x",
            f"{r['scan_found']} names; misses {r['scan_missed']}, extra {r['scan_extra']}",
        ],
        [
            "B: PEFT `inject_adapter_in_model` (emitted config, fresh meta model)",
            fmt_s(r["peft"]),
            f"{r['peft'] / r['ours']:.2f}x",
            f"{r['peft_layers']} LoRA layers made",
        ],
        [
            "B': PEFT `get_peft_model` (emitted config, fresh meta model)",
            fmt_s(r["peft_get"]),
            f"{r['peft_get'] / r['ours']:.2f}x",
            f"{r['peft_get_layers']} LoRA layers made",
        ],
    ]
    head = (
        f"### Library on a meta-built {name}\n\n{r['modules']:,} modules, {r['linears']} Linear, "
        f"{r['parameters'] / 1e9:.1f}B parameters; building it on meta took {fmt_s(r['build'])} "
        f"(not in any row; B and B' build a fresh model per run, also not timed).\n\n"
    )
    return head + table(["what", "median", "vs lora-registry", "result"], rows)


def section_linearity(repeat: int, counts) -> str:
    # Each point is cheap, and noise at small sizes would hide the shape: take more runs than elsewhere.
    r = run_case("linearity", "--repeat", str(max(repeat, 11)), "--layer-counts", ",".join(map(str, counts)))
    if "error" in r:
        return f"### Linearity\n\nfailed: {r['error']}"
    rows = [
        [layers, f"{v['modules']:,}", fmt_s(v["seconds"]), f"{v['seconds'] / v['modules'] * 1e6:.0f} µs"]
        for layers, v in r.items()
    ]
    # Least-squares line through (modules, seconds): the slope is the cost of one more module, the
    # intercept the fixed cost per call; linear means the points sit on it.
    xs = [v["modules"] for v in r.values()]
    ys = [v["seconds"] for v in r.values()]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sum((x - mx) ** 2 for x in xs) or 1)
    intercept = my - slope * mx
    worst = max(abs(y - (intercept + slope * x)) / y for x, y in zip(xs, ys))
    return (
        "### Linearity: inspect + resolve `all` on Llama-3.1-405B shapes\n\n"
        + table(["layers", "modules", "median", "per module"], rows)
        + f"\n\nFit: {slope * 1e6:.0f} µs per module + {fmt_s(intercept)} per call; "
        f"the furthest point is {worst:.0%} off the line."
    )


def section_scale(quick: bool) -> str:
    synthetic = ["--synthetic-layers", "4", "--synthetic-experts", "16"] if quick else []
    cases = [("Kimi-K2 (deepseek_v3, 61 layers, 384 routed experts)", ["--model", "kimi-k2"])]
    cases.append(("synthetic: unfused per-expert Linears", ["--model", "synthetic", *synthetic]))
    if quick:
        cases = cases[1:]
    rows, notes = [], []
    for label, extra in cases:
        r = run_case("scale", *extra)
        if "error" in r:
            rows.append([label, "failed"] + ["-"] * 7)
            notes.append(f"{label}: {r['error']}")
            continue
        peft = "-"
        if r["model"] == "synthetic" and quick:
            peft = "skipped (--quick)"
        elif r["model"] == "synthetic":
            p = run_case("scale", "--peft", *extra, timeout=PEFT_CAP_SECONDS + 120)
            peft = (
                f"{fmt_s(p['peft'])} ({p['peft_layers']:,} LoRA layers)"
                if "peft" in p
                else f"not measured: {p.get('error', 'no result')}"
            )
        size = r["config"]
        rows.append(
            [
                label,
                f"{r['parameters'] / 1e9:,.1f}B",
                f"{r['linears']:,}",
                f"{r['selected']:,}",
                fmt_s(r["build"]),
                fmt_s(r["seconds"]),
                f"{fmt_mib(r['maxrss'])} / {fmt_mib(r['traced_peak'])}",
                f"{size['entries']} entries, {size['chars']} chars",
                peft,
            ]
        )
        notes.append(f"{label} emits: `{size['text']}`")
    head = [
        "model",
        "parameters",
        "Linear modules",
        "selected",
        "build on meta",
        "inspect+resolve+config",
        "peak RSS / traced",
        "emitted targets",
        "PEFT inject (reference)",
    ]
    return (
        "### Scale: resolve `all` (each case in its own process)\n\n"
        + table(head, rows)
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\nPeak RSS is the case process's `ru_maxrss` (build included); traced is tracemalloc's peak "
        "of Python allocations during inspect + resolve + lora_config."
    )


# ---------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per median (default 5; --quick: 1)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 run each, small models; no Kimi-K2, no 405B CLI row, no PEFT on the synthetic model",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--layer-counts", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--peft", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--synthetic-layers", type=int, default=48, help=argparse.SUPPRESS)
    parser.add_argument("--synthetic-experts", type=int, default=480, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        args.layer_counts = [int(x) for x in (args.layer_counts or "").split(",") if x]
        result = {"library": case_library, "linearity": case_linearity, "scale": case_scale}[args.case](args)
        print(json.dumps(result, default=str))
        return 0

    repeat = 1 if args.quick and args.repeat == 5 else args.repeat
    print(f"# lora-registry speed (median of {repeat} run{'s' * (repeat > 1)})\n")
    print(machine_facts() + "\n")
    sections = [
        lambda: section_startup(repeat),
        lambda: "(--quick: the CLI on Llama-3.1-405B skipped)" if args.quick else section_cli_resolve(repeat),
        lambda: section_cache(repeat, args.quick),
        lambda: section_library(repeat, 8 if args.quick else None),
        lambda: section_linearity(repeat, (2, 4, 8) if args.quick else LINEARITY_LAYERS),
        lambda: section_scale(args.quick),
    ]
    for section in sections:
        print(section() + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
