"""Measured vs predicted peak training memory on a GPU: a small grid, random weights, no downloads.

Run on a machine with one CUDA GPU (the whole grid takes a few minutes on an H100/H200)::

    .venv/bin/pip install -q -c constraints.txt '.[test]'      # torch with CUDA there, plus bitsandbytes
    .venv/bin/python benchmarks/memory_gpu.py > memory_gpu.md

Each cell builds a model from a config (Llama-, Qwen2- and Mistral-shaped, a few layers so each
run is quick) directly on the GPU in bf16 with random weights, quantizes the Linear layers with
bitsandbytes for QLoRA, applies the LoRA config with PEFT, and runs three training steps
(forward, loss, backward, AdamW step) in a fresh process, then prints
``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` next to ``plan_memory``'s
prediction for the same settings. The prediction runs on the meta device in this process.

On a machine without a GPU, ``--device cpu --dry-run`` runs the same code path on CPU with a
tiny grid (the test suite does this): the measurement there is the tracker's count of the real
CPU tensors, so the table checks the wiring, not a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time

#: (label, config overrides) of the models in the grid; sizes keep each run short, not tiny
MODELS = {
    "llama-1B-ish": dict(
        model_type="llama",
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=4,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        head_dim=64,
    ),
    "qwen2-1.5B-ish": dict(
        model_type="qwen2",
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=4,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
    ),
    "mistral-7B-4-layers": dict(
        model_type="mistral",
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=4,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=32768,
        head_dim=128,
    ),
}
TINY = {
    "tiny-llama": dict(
        model_type="llama",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
    )
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def grid(models: dict, seq_len: int, batch: int) -> list[dict]:
    """Every cell: model x (LoRA, QLoRA) x checkpointing off/on."""
    cells = []
    for label in models:
        for quant in ("none", "4bit"):
            for gc in (False, True):
                cells.append(dict(model=label, quant=quant, gradient_checkpointing=gc, seq_len=seq_len, batch=batch))
    return cells


def config_of(overrides: dict):
    """A transformers config from the overrides (``AutoConfig.for_model``), never from the hub."""
    from transformers import AutoConfig

    data = dict(overrides)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def lora_config():
    """The LoRA config of every cell: rank 16 on every linear projection."""
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, lora_dropout=0.0)


def measure(cell: dict, models: dict, device: str) -> dict:
    """Run the cell's training steps for real on ``device`` and return its peak memory."""
    import torch

    from lora_registry import memory, simulation

    settings = memory.MemorySettings(
        seq_len=cell["seq_len"],
        batch=cell["batch"],
        quant=cell["quant"],
        gradient_checkpointing=cell["gradient_checkpointing"],
        packed=True,
    )
    if device == "cpu":
        # no GPU: the tracker on real CPU tensors (the path the test suite checks against meta)
        result = simulation.simulate_step(
            config_of(models[cell["model"]]), lora_config(), settings, device="cpu", target="cpu"
        )
        return {"allocated": result.tracked, "reserved": result.reserved}
    config = config_of(models[cell["model"]])
    if cell["quant"] == "none":
        model = simulation._build(config, settings, None, None, "cuda")  # each weight its own allocation
    else:
        # as from_pretrained loads a checkpoint into bitsandbytes layers: each weight reaches the GPU, is
        # quantized there and its bf16 copy freed; the weights that stay bf16 follow
        model = simulation._build(config, dataclasses.replace(settings, quant="none"), None, None, "cpu")
        model = simulation._quantize(model, settings, torch.bfloat16, "cuda").to("cuda")
    peft_model, params, _ = simulation._prepare(model, lora_config(), settings, "cuda")
    optimizer = simulation._optimizer(params, settings, "cuda")
    # the training step's peak, not the loading's: the prediction models a steady-state step
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    ids = torch.randint(0, models[cell["model"]]["vocab_size"], (cell["batch"], cell["seq_len"]), device="cuda")
    for _ in range(3):
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        del loss
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return {"allocated": torch.cuda.max_memory_allocated(), "reserved": torch.cuda.max_memory_reserved()}


def predict(cell: dict, models: dict, dry_run: bool = False) -> dict:
    """``plan_memory``'s prediction for the cell (the dry run predicts what CPU runs, on meta)."""
    from lora_registry import memory, simulation

    if dry_run:
        settings = memory.MemorySettings(
            seq_len=cell["seq_len"],
            batch=cell["batch"],
            quant=cell["quant"],
            gradient_checkpointing=cell["gradient_checkpointing"],
            packed=True,
        )
        result = simulation.simulate_step(config_of(models[cell["model"]]), lora_config(), settings, target="cpu")
        return {"allocated": result.tracked, "reserved": result.reserved}
    settings = memory.MemorySettings(
        seq_len=cell["seq_len"],
        batch=cell["batch"],
        quant=cell["quant"],
        gradient_checkpointing=cell["gradient_checkpointing"],
        packed=True,
    )
    plan = memory.plan_memory(config_of(models[cell["model"]]), lora_config(), settings, model_label=cell["model"])
    return {"allocated": plan.allocated, "reserved": plan.reserved}


def main(argv: list[str] | None = None) -> int:
    """Print the markdown table of measured vs predicted peaks (``--cell`` runs one measurement, as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--dry-run", action="store_true", help="the tiny CPU grid (no GPU needed)")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="run only the first N cells")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = TINY if args.dry_run else MODELS
    if args.dry_run:
        args.seq_len, args.batch = 32, 1
    if args.cell:
        print(json.dumps(measure(json.loads(args.cell), models, args.device)))
        return 0
    print(
        "| model | quant | checkpointing | seq x batch | allocated measured | predicted | error | "
        "reserved measured | predicted | error | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    cells = grid(models, args.seq_len, args.batch)
    for cell in cells[: args.limit or len(cells)]:
        started = time.perf_counter()
        # a fresh process per cell: the caching allocator starts empty, as in a real run
        extra = ["--dry-run"] if args.dry_run else []
        done = subprocess.run(
            [sys.executable, __file__, "--device", args.device, "--cell", json.dumps(cell)] + extra,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"| {cell['model']} | {cell['quant']} | {cell['gradient_checkpointing']} | failed: {tail[0][:120]} |")
            continue
        got = json.loads(done.stdout.strip().splitlines()[-1])
        want = predict(cell, models, args.dry_run)
        errors = {k: (want[k] - got[k]) / got[k] * 100 if got[k] else 0.0 for k in ("allocated", "reserved")}
        print(
            f"| {cell['model']} | {cell['quant']} | {'on' if cell['gradient_checkpointing'] else 'off'} | "
            f"{cell['seq_len']} x {cell['batch']} | {got['allocated'] / 2**30:.3f} GiB | "
            f"{want['allocated'] / 2**30:.3f} GiB | {errors['allocated']:+.1f}% | {got['reserved'] / 2**30:.3f} GiB | "
            f"{want['reserved'] / 2**30:.3f} GiB | {errors['reserved']:+.1f}% | {time.perf_counter() - started:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
