"""``lora-registry plugins``: built-in and installed plugins, what they answer for, and failures."""

from __future__ import annotations

import json
from typing import Any

import typer


def plugins(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List plugins in the order they are asked: source package, version, model types, hooks."""
    from ..hookspecs import HOOKSPEC_VERSION
    from ..host import get_plugin_host

    host = get_plugin_host()
    host.registry  # noqa: B018 - merging the fragments surfaces broken ones as failures
    answers = host.answers()
    types = host.model_types()
    order = host.precedence()
    rows: list[dict[str, Any]] = []
    for name in host.plugin_names():
        package, version = host.sources.get(name, ("?", "?"))
        rows.append(
            {
                "name": name,
                "package": package,
                "version": version,
                "model_types": types.get(name, []),
                "hooks": host.hooks_of(name),
                "precedence": order.index(name) + 1 if name in order else None,
            }
        )
    failures = [{"plugin": f.plugin, "error": f.error} for f in host.failures]
    if as_json:
        typer.echo(
            json.dumps(
                {"hookspec_version": HOOKSPEC_VERSION, "plugins": rows, "answers": answers, "failures": failures},
                indent=2,
            )
        )
        return
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from .tables import print_all

    table = Table(title=f"plugins (hookspec version {HOOKSPEC_VERSION}), in the order they are asked")
    for column in ("#", "plugin", "package", "version", "model types", "hooks"):
        table.add_column(column)
    for row in rows:
        mts = row["model_types"]
        shown = ", ".join(mts[:8]) + (f" (+{len(mts) - 8})" if len(mts) > 8 else "")
        table.add_row(
            str(row["precedence"] or "-"),
            row["name"],
            row["package"],
            row["version"],
            shown,
            ", ".join(h.replace("lora_registry_", "") for h in row["hooks"]),
        )
    who = Table(title="who answers which model type (any other: the generic fallback)")
    for column in ("model type", "answered by", "why", "also named by"):
        who.add_column(column)
    for model_type, answer in answers.items():
        who.add_row(model_type, answer["plugin"], escape(answer["why"]), ", ".join(answer["also"]) or "-")
    out: list[Any] = [table, who]
    for failure in failures:
        out.append(Text(f"failed: {failure['plugin']}: {failure['error']}", style="red"))
    print_all(out)
