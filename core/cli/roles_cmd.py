"""``lora-registry roles``: the role vocabulary, aliases and presets."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import format_option, handle_errors, json_option, pick_format, quiet_option

FORMATS = ("table", "json")


@handle_errors
def roles(
    as_json: bool = json_option(),
    presets_file: Path | None = typer.Option(
        None, "--presets", help="A TOML file of your own [presets.NAME] tables (default: $LORA_REGISTRY_PRESETS)."
    ),
    output_format: str = format_option(FORMATS),
    quiet: bool = quiet_option(),
) -> None:
    """List the roles, the aliases that expand to them, and the presets."""
    from .common import plugin_host

    as_json = pick_format(output_format, as_json, FORMATS) == "json"
    registry = plugin_host(presets_file).registry  # plugins' fragments and the user's file too
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "roles": dict(registry.roles),
                    "aliases": {k: list(v) for k, v in registry.aliases.items()},
                    "served_by": {k: list(v) for k, v in registry.served_by.items()},
                    "presets": {
                        name: {
                            "roles": p.roles,
                            "rank": p.rank,
                            "alpha": p.alpha,
                            "rank_for": dict(p.rank_for),
                            "alpha_for": dict(p.alpha_for),
                            "description": p.description,
                        }
                        for name, p in registry.presets.items()
                    },
                },
                indent=2,
            )
        )
        return
    from .tables import Column, Grid, print_all

    table = Grid("roles", [Column("role", "role"), Column("meaning", "meaning", wrap="words")], [("role", "meaning")])
    for role, text in registry.roles.items():
        table.add_row(role=role, meaning=text)
    aliases = Grid(
        "aliases",
        [
            Column("alias", "alias"),
            Column("roles", "roles", wrap="words"),
            Column("served", "where the model lacks the role", wrap="words"),
        ],
        [("alias", "roles", "served"), ("alias", "roles")],
    )
    for alias, targets in registry.aliases.items():
        served = registry.served_by.get(alias)
        aliases.add_row(
            alias=alias, roles=", ".join(targets), served=f"served by {', '.join(served)}" if served else ""
        )
    aliases.add_row(
        alias="all-linear", roles="what PEFT's all-linear keyword adapts (every Linear but the output head)"
    )
    presets = Grid(
        "presets",
        [
            Column("preset", "preset"),
            Column("roles", "roles", wrap=","),
            Column("rank", "rank", justify="right"),
            Column("alpha", "alpha", justify="right"),
            Column("overrides", "overrides", wrap="words"),
            Column("description", "description", wrap="words"),
        ],
        [
            ("preset", "roles", "rank", "alpha", "overrides", "description"),
            ("preset", "roles", "rank", "alpha", "overrides"),
        ],
    )
    for name, p in registry.presets.items():
        over = ", ".join(
            [f"{k} r{v}" for k, v in p.rank_for.items()] + [f"{k} alpha {v:g}" for k, v in p.alpha_for.items()]
        )
        presets.add_row(
            preset=name,
            roles=p.roles,
            rank=str(p.rank),
            alpha=f"{p.alpha:g}",
            overrides=over,
            description=p.description,
        )
    print_all([table, aliases, presets])
