"""``lora-registry roles``: the role vocabulary, aliases and presets."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import handle_errors


@handle_errors
def roles(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    presets_file: Path | None = typer.Option(
        None, "--presets", help="A TOML file of your own [presets.NAME] tables (default: $LORA_REGISTRY_PRESETS)."
    ),
) -> None:
    """List the roles, the aliases that expand to them, and the presets."""
    from .common import plugin_host

    registry = plugin_host(presets_file).registry  # plugins' fragments and the user's file too
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "roles": dict(registry.roles),
                    "aliases": {k: list(v) for k, v in registry.aliases.items()},
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
    from rich.table import Table

    from .tables import print_all

    table = Table(title="roles")
    table.add_column("role")
    table.add_column("meaning")
    for role, text in registry.roles.items():
        table.add_row(role, text)
    aliases = Table(title="aliases")
    aliases.add_column("alias")
    aliases.add_column("roles")
    for alias, targets in registry.aliases.items():
        aliases.add_row(alias, ", ".join(targets))
    presets = Table(title="presets")
    for column in ("preset", "roles", "rank", "alpha", "overrides", "description"):
        presets.add_column(column)
    for name, p in registry.presets.items():
        over = ", ".join(
            [f"{k} r{v}" for k, v in p.rank_for.items()] + [f"{k} alpha {v:g}" for k, v in p.alpha_for.items()]
        )
        presets.add_row(name, p.roles, str(p.rank), f"{p.alpha:g}", over, p.description)
    print_all([table, aliases, presets])
