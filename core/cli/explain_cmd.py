"""``lora-registry explain``: what an existing adapter (or a trainer's config) adapts in a model, what it costs, what it misses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from .common import (
    format_option,
    handle_errors,
    json_option,
    note,
    pick_format,
    plugin_host,
    plugin_option,
    quiet_option,
    revision_option,
)

FORMATS = ("table", "json")


@handle_errors
def explain(
    adapter_config: str = typer.Argument(
        ...,
        help="adapter_config.json, its folder or the adapter's hub id; or a trainer's config: axolotl YAML, "
        "LLaMA-Factory YAML/JSON, a .py file with an Unsloth get_peft_model call, unsloth train --config YAML.",
    ),
    model: str | None = typer.Argument(
        None,
        help="model_type, config.json or its folder, or a hub id (owner/name[@revision]) "
        "(default: the base model the config names).",
    ),
    as_json: bool = json_option(),
    output_format: str = format_option(FORMATS),
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
        metavar="WHAT",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
    plugin: str | None = plugin_option(),
    presets_file: Path | None = typer.Option(
        None,
        "--presets",
        help="A TOML file of your own [presets.NAME] and [architectures.TYPE] tables (default: $LORA_REGISTRY_PRESETS).",
    ),
    quiet: bool = quiet_option(),
) -> None:
    """Explain ADAPTER_CONFIG on MODEL: roles, layers and modules adapted, trainable parameters, entries matching nothing."""
    from .. import explain as explaining
    from ..hub import with_revision

    if model is not None:
        model = with_revision(model, revision)  # a bad revision fails before the adapter config is read
    elif revision is not None:
        raise ConfigError("--revision applies to MODEL; give MODEL, or put the revision in the adapter's base model")
    as_json = pick_format(output_format, as_json, FORMATS) == "json"
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
        note(f"warning: {warning}")
    if check:
        problems = result.problems(allowed)
        for problem in problems:
            typer.echo(f"check: {problem}", err=True)
        if problems:
            raise typer.Exit(1)


def explain_tables(result: Any) -> list[Any]:
    """Adapted leaves by role and scope, the cost, then the entries that match nothing (warnings go to stderr)."""
    from ..resolution import format_layers
    from .tables import Column, Grid, Line, group_names

    mm = result.model_map
    what = f"{result.source} ({result.trainer})" if result.trainer else result.source
    table = Grid(
        f"{what} on {mm.model} ({mm.model_type}, plugin {mm.plugin})",
        [
            Column("role", "role"),
            Column("scope", "scope"),
            Column("leaves", "leaves", justify="right"),
            Column("layers", "layers", wrap=","),
            Column("names", "names"),
            Column("rank", "rank", justify="right"),
            Column("trainable", "trainable", justify="right"),
        ],
        [
            ("role", "scope", "leaves", "layers", "names", "rank", "trainable"),
            ("role", "scope", "layers", "names", "rank", "trainable"),
            ("role", "scope", "names", "rank", "trainable"),
            ("role", "scope", "names", "trainable"),
            ("role", "names", "trainable"),
        ],
    )
    for role in result.by_role():
        by_scope: dict[str, list] = {}
        for target in result.targets:
            if (target.role or "null") == role:
                by_scope.setdefault(target.scope or "unknown", []).append(target)
        for scope, targets in sorted(by_scope.items(), key=lambda item: (item[0] != "language", item[0])):
            ranks = sorted({t.rank for t in targets if t.rank is not None})
            table.add_row(
                None if scope == "language" else "yellow",
                role=role if role != "null" else "-",
                scope=scope,
                leaves=str(len(targets)),
                layers=format_layers(t.layer for t in targets),
                names="\n".join(group_names([t.name for t in targets])),
                rank=",".join(map(str, ranks)) or "-",
                trainable=f"{sum(t.trainable for t in targets):,}",
            )
    table.add_row("bold", role="total", leaves=str(len(result.targets)), trainable=f"{result.lora_parameters:,}")
    base = mm.base_parameters
    cost = f"trainable parameters: {result.trainable_parameters:,}"
    if base:
        cost += f" ({100 * result.share:.3f}% of {base:,})"
    extra = result.trainable_parameters - result.lora_parameters
    if extra:
        cost += f"; LoRA {result.lora_parameters:,} + modules_to_save copies {extra:,}"
    out: list[Any] = [table, Line(cost)] if result.targets else []
    if result.error:
        out.append(Line(f"nothing is adapted: {result.error}", style="red"))
    if result.no_ops:
        no_ops = Grid(
            "entries that match nothing (silent no-ops)",
            [Column("field", "field"), Column("entry", "entry"), Column("why", "why", wrap="words")],
            [("field", "entry", "why")],
        )
        for entry in result.no_ops:
            no_ops.add_row(field=entry.field, entry=str(entry.entry), why=entry.reason or "")
        out.append(no_ops)
    else:
        out.append(Line(f"every entry matches something ({len(result.entries)} checked)"))
    return out
