"""``lora-registry explain``: what an existing adapter_config.json adapts in a model, what it costs, what it misses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from .common import handle_errors, plugin_host


@handle_errors
def explain(
    adapter_config: str = typer.Argument(
        ...,
        help="adapter_config.json, its folder or the adapter's hub id; or a trainer's config: axolotl YAML, "
        "LLaMA-Factory YAML/JSON, a .py file with an Unsloth get_peft_model call, unsloth train --config YAML.",
    ),
    model: str | None = typer.Argument(
        None,
        help="model_type, config.json or its folder, or a hub id (default: the base model the config names).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Exit 1, one line per problem on stderr, if it adapts nothing, an entry matches nothing, or it "
        "reaches a tower, projector, router or embedding --allow does not name.",
    ),
    allow: str | None = typer.Option(
        None,
        "--allow",
        help="With --check: what it may reach, a comma list of vision, audio, projector, router, embed, lm-head.",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    plugin: str | None = typer.Option(None, "--plugin", help="Ask only this plugin."),
    presets_file: Path | None = typer.Option(
        None,
        "--presets",
        help="A TOML file of your own [presets.NAME] and [architectures.TYPE] tables (default: $LORA_REGISTRY_PRESETS).",
    ),
) -> None:
    """Explain ADAPTER_CONFIG on MODEL: roles, layers and modules adapted, trainable parameters, entries matching nothing."""
    from .. import explain as explaining

    allowed = explaining.check_allow(allow or "")  # a bad --allow fails before any model is read
    if allow is not None and not check:
        raise ConfigError("--allow only applies with --check")
    result = explaining.explain(
        adapter_config,
        model,
        trust_remote_code=trust_remote_code,
        plugin=plugin,
        plugin_manager=plugin_host(presets_file),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from .tables import print_all

        print_all(explain_tables(result))
        for warning in result.warnings:
            typer.echo(f"warning: {warning}", err=True)
    if check:
        problems = result.problems(allowed)
        for problem in problems:
            typer.echo(f"check: {problem}", err=True)
        if problems:
            raise typer.Exit(1)


def explain_tables(result) -> list[Any]:
    """Adapted leaves by role and scope, the cost, then the entries that match nothing."""
    from rich.table import Table
    from rich.text import Text

    from ..resolution import format_layers
    from .tables import group_names

    mm = result.model_map
    what = f"{result.source} ({result.trainer})" if result.trainer else result.source
    table = Table(title=f"{what} on {mm.model} ({mm.model_type}, plugin {mm.plugin})")
    for column, justify in (
        ("role", "left"),
        ("scope", "left"),
        ("leaves", "right"),
        ("layers", "left"),
        ("names", "left"),
        ("rank", "right"),
        ("trainable", "right"),
    ):
        table.add_column(column, justify="right" if justify == "right" else "left", overflow="fold")
    for role in result.by_role():
        by_scope: dict[str, list] = {}
        for target in result.targets:
            if (target.role or "null") == role:
                by_scope.setdefault(target.scope or "unknown", []).append(target)
        for scope, targets in sorted(by_scope.items(), key=lambda item: (item[0] != "language", item[0])):
            ranks = sorted({t.rank for t in targets if t.rank is not None})
            table.add_row(
                role if role != "null" else "-",
                scope,
                str(len(targets)),
                format_layers(t.layer for t in targets),
                ", ".join(group_names([t.name for t in targets])),
                ",".join(map(str, ranks)) or "-",
                f"{sum(t.trainable for t in targets):,}",
                style=None if scope == "language" else "yellow",
            )
    table.add_row("total", "", str(len(result.targets)), "", "", "", f"{result.lora_parameters:,}", style="bold")
    base = mm.base_parameters
    cost = f"trainable parameters: {result.trainable_parameters:,}"
    if base:
        cost += f" ({100 * result.share:.3f}% of {base:,})"
    extra = result.trainable_parameters - result.lora_parameters
    if extra:
        cost += f"; LoRA {result.lora_parameters:,} + modules_to_save copies {extra:,}"
    out: list[Any] = [table, Text(cost)] if result.targets else []
    if result.error:
        out.append(Text(f"nothing is adapted: {result.error}", style="red"))
    if result.no_ops:
        no_ops = Table(title="entries that match nothing (silent no-ops)")
        for column in ("field", "entry", "why"):
            no_ops.add_column(column, overflow="fold")
        for entry in result.no_ops:
            no_ops.add_row(entry.field, str(entry.entry), entry.reason or "")
        out.append(no_ops)
    else:
        out.append(Text(f"every entry matches something ({len(result.entries)} checked)"))
    return out  # warnings go to stderr
