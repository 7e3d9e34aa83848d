"""``lora-registry plugins``: built-in and installed plugins, what they answer for, and failures."""

from __future__ import annotations

import json
from typing import Any

import typer

from .common import format_option, handle_errors, json_option, pick_format, quiet_option

FORMATS = ("table", "json")


@handle_errors
def plugins(
    as_json: bool = json_option(),
    output_format: str = format_option(FORMATS),
    quiet: bool = quiet_option(),
) -> None:
    """List plugins in the order they are asked: source package, version, model types, hooks."""
    from ..hookspecs import HOOKSPEC_VERSION

    as_json = pick_format(output_format, as_json, FORMATS) == "json"
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
    from .tables import Column, Grid, Line, print_all

    table = Grid(
        f"plugins (hookspec version {HOOKSPEC_VERSION}), in the order they are asked",
        [
            Column("#", "#", justify="right"),
            Column("plugin", "plugin"),
            Column("package", "package"),
            Column("version", "version"),
            Column("types", "model types", wrap="words"),
            Column("hooks", "hooks", wrap="words"),
        ],
        [("#", "plugin", "package", "version", "types", "hooks"), ("#", "plugin", "package", "types", "hooks")],
    )
    for row in rows:
        mts = row["model_types"]
        shown = ", ".join(mts[:8]) + (f" (+{len(mts) - 8})" if len(mts) > 8 else "")
        table.add_row(
            **{"#": str(row["precedence"] or "-")},
            plugin=row["name"],
            package=row["package"],
            version=row["version"],
            types=shown,
            hooks=", ".join(h.replace("lora_registry_", "") for h in row["hooks"]),
        )
    who = Grid(
        "who answers which model type (any other: the generic fallback)",
        [
            Column("type", "model type"),
            Column("plugin", "answered by"),
            Column("why", "why", wrap="words"),
            Column("also", "also named by", wrap="words"),
        ],
        [("type", "plugin", "why", "also"), ("type", "plugin", "why")],
    )
    for model_type, answer in answers.items():
        who.add_row(type=model_type, plugin=answer["plugin"], why=answer["why"], also=", ".join(answer["also"]) or "-")
    out: list[Any] = [table, who]
    for failure in failures:
        out.append(Line(f"failed: {failure['plugin']}: {failure['error']}", style="red"))
    print_all(out)
