"""``lora-registry plan``: will the LoRA or QLoRA run fit? The peak training memory, known before training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import adapter_options as opt
from .common import (
    check_output,
    format_option,
    handle_errors,
    json_option,
    note,
    output_option,
    output_path,
    pick_format,
    quiet_option,
    write_atomic,
)

FORMATS = ("table", "json")


@handle_errors
def plan(
    model: str = opt.MODEL,
    seq_len: int = typer.Option(..., "--seq-len", help="Tokens per row of the training batch.", metavar="L"),
    batch: int = typer.Option(1, "--batch", help="Rows per training step (per GPU).", metavar="B"),
    gradient_checkpointing: bool = typer.Option(
        False, "--gradient-checkpointing", help="Recompute each layer in backward (transformers' non-reentrant)."
    ),
    quant: str = typer.Option(
        "none", "--quant", help="none, 8bit (LLM.int8) or 4bit (NF4, double quantization).", metavar="none|8bit|4bit"
    ),
    dtype: str = typer.Option(
        "bf16", "--dtype", help="bf16, fp16 or fp32: the dtype the model is loaded in.", metavar="bf16|fp16|fp32"
    ),
    recipe: str = typer.Option(
        "peft",
        "--recipe",
        help="peft (get_peft_model, nothing else) or trl (k-bit preparation, autocast).",
        metavar="peft|trl",
    ),
    packed: bool = typer.Option(False, "--packed", help="Rows are packed full: no padding, no mask."),
    gpu: str | None = typer.Option(
        None, "--gpu", help="A GPU name (RTX4090, A100-80GB, H100, ...) or a size, 24GB.", metavar="NAME|SIZE"
    ),
    roles: list[str] | None = opt.ROLES,
    rank: int | None = opt.RANK,
    alpha: float | None = opt.ALPHA,
    rank_for: list[str] | None = opt.RANK_FOR,
    alpha_for: list[str] | None = opt.ALPHA_FOR,
    preset: str | None = opt.PRESET,
    presets_file: Path | None = opt.PRESETS_FILE,
    scope: list[str] | None = opt.SCOPE,
    strict: bool = opt.STRICT,
    layers: list[str] | None = opt.LAYERS,
    last_layers: int | None = opt.LAST_LAYERS,
    include: list[str] | None = opt.INCLUDE,
    exclude: list[str] | None = opt.EXCLUDE,
    dropout: float = opt.DROPOUT,
    bias: str = opt.BIAS,
    rslora: bool = opt.RSLORA,
    dora: bool = opt.DORA,
    init: str = opt.INIT,
    modules_to_save: list[str] | None = opt.MODULES_TO_SAVE,
    output_format: str = format_option(FORMATS),
    as_json: bool = json_option(),
    output: str | None = output_option("lora-registry-plan.json or .txt"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output file."),
    trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
    revision: str | None = opt.REVISION,
    plugin: str | None = opt.PLUGIN,
    verify: bool = opt.VERIFY,
    no_cache: bool = opt.NO_CACHE,
    quiet: bool = quiet_option(),
) -> None:
    """Predict the peak GPU memory of one LoRA/QLoRA training step on MODEL, and whether it fits a GPU."""
    from ..memory import MemorySettings

    output_format = pick_format(output_format, as_json, FORMATS)
    target = output_path(output, "lora-registry-plan.json" if output_format == "json" else "lora-registry-plan.txt")
    check_output(target, force)
    settings = MemorySettings(  # every value (and bitsandbytes for --quant) is checked before a model is read
        seq_len=seq_len,
        batch=batch,
        gradient_checkpointing=gradient_checkpointing,
        quant=quant.strip().lower(),
        dtype=dtype.strip().lower(),
        recipe=recipe.strip().lower(),
        packed=packed,
        gpu=gpu,
    )
    adapter = opt.adapter_plan_from(locals())  # every option above that chooses targets and settings
    memory = adapter.memory(settings)
    if output_format == "json":
        text = json.dumps(memory.to_dict(), indent=2) + "\n"
    else:
        from .tables import memory_tables, print_all, render_plain

        renderables = memory_tables(memory)
        if target is None:
            print_all(renderables)
            return
        text = render_plain(renderables)
    if target is None:
        typer.echo(text, nl=False)
        return
    write_atomic(target, text)
    note(f"wrote {target}")
