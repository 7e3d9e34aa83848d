"""``lora-registry explain``: what an existing adapter_config.json adapts in a model, what it costs, what it misses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .common import handle_errors, plugin_host, revision_option


@handle_errors
def explain(
    adapter_config: str = typer.Argument(..., help="adapter_config.json, or the folder holding it."),
    model: str = typer.Argument(
        ..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
    plugin: str | None = typer.Option(None, "--plugin", help="Ask only this plugin."),
    presets_file: Path | None = typer.Option(
        None,
        "--presets",
        help="A TOML file of your own [presets.NAME] and [architectures.TYPE] tables (default: $LORA_REGISTRY_PRESETS).",
    ),
) -> None:
    """Explain ADAPTER_CONFIG on MODEL: roles, layers and modules adapted, trainable parameters, entries matching nothing."""
    from .. import explain as explaining
    from ..hub import with_revision

    model = with_revision(model, revision)  # a bad revision fails before the adapter config is read

    result = explaining.explain(
        adapter_config,
        model,
        trust_remote_code=trust_remote_code,
        plugin=plugin,
        plugin_manager=plugin_host(presets_file),
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    from .tables import print_all

    print_all(explain_tables(result))


def explain_tables(result) -> list[Any]:
    """Adapted leaves by role and scope, the cost, the entries that match nothing, then warnings."""
    from rich.table import Table
    from rich.text import Text

    from ..resolution import format_layers
    from .tables import group_names

    mm = result.model_map
    table = Table(title=f"{result.source} on {mm.model} ({mm.model_type}, plugin {mm.plugin})")
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
    for warning in result.warnings:
        out.append(Text(f"warning: {warning}", style="yellow"))
    return out
