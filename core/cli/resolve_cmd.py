"""``lora-registry resolve``: roles -> exact target names, a LoRA config, and its cost."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ConfigError
from . import adapter_options as opt
from .common import check_output, handle_errors, write_atomic

#: peft is adapter_config.json; the trainers' formats are written by lora_registry.exports
FORMATS = ("table", "json", "peft", "axolotl", "llamafactory", "unsloth", "torchtune")


@handle_errors
def resolve(
    model: str = opt.MODEL,
    roles: str | None = opt.ROLES,
    rank: int | None = opt.RANK,
    alpha: float | None = opt.ALPHA,
    rank_for: list[str] | None = opt.RANK_FOR,
    alpha_for: list[str] | None = opt.ALPHA_FOR,
    preset: str | None = opt.PRESET,
    presets_file: Path | None = opt.PRESETS_FILE,
    scope: str = opt.SCOPE,
    strict: bool = opt.STRICT,
    layers: str | None = opt.LAYERS,
    last_layers: int | None = opt.LAST_LAYERS,
    dropout: float = opt.DROPOUT,
    bias: str = opt.BIAS,
    rslora: bool = opt.RSLORA,
    dora: bool = opt.DORA,
    init: str = opt.INIT,
    modules_to_save: str | None = opt.MODULES_TO_SAVE,
    output_format: str = typer.Option(
        "table",
        "--format",
        "-f",
        help="table, json, peft (adapter_config.json), axolotl, llamafactory, unsloth or torchtune.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to FILE (only when the whole run succeeds)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output file."),
    trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
    plugin: str | None = opt.PLUGIN,
    verify: bool = opt.VERIFY,
    no_cache: bool = opt.NO_CACHE,
) -> None:
    """Resolve roles onto MODEL's module names and print the LoRA config that adapts exactly those."""
    if output_format not in FORMATS:
        raise ConfigError(f"unknown format {output_format!r}; choose from {', '.join(FORMATS)}")
    check_output(output, force)
    plan = opt.adapter_plan(
        model,
        roles=roles,
        rank=rank,
        alpha=alpha,
        rank_for=rank_for,
        alpha_for=alpha_for,
        preset=preset,
        presets_file=presets_file,
        scope=scope,
        strict=strict,
        layers=layers,
        last_layers=last_layers,
        dropout=dropout,
        bias=bias,
        rslora=rslora,
        dora=dora,
        init=init,
        modules_to_save=modules_to_save,
        trust_remote_code=trust_remote_code,
        plugin=plugin,
        verify=verify,
        no_cache=no_cache,
    )
    text = None
    if output_format == "json":
        text = json.dumps(plan.to_dict(), indent=2) + "\n"
    elif output_format == "peft":
        text = plan.adapter_config()
    elif output_format != "table":
        from ..exports import EXPORTS, render

        text = render(output_format, EXPORTS[output_format](plan))
    else:
        from .tables import resolution_table

        renderable = resolution_table(plan)  # everything is checked before anything is printed
    if output is not None:
        if text is None:
            from .tables import render_plain

            text = render_plain(renderable)
        write_atomic(output, text)
        typer.echo(f"wrote {output}", err=True)
    elif text is not None:
        typer.echo(text, nl=False)
    else:
        from .tables import print_all

        print_all(renderable)
