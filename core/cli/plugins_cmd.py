"""``lora-registry plugins``: built-in and installed plugins, what they answer for, and failures."""

from __future__ import annotations

import json

import typer


def plugins(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List plugins in the order they are asked: source package, version, model types, hooks."""
    from ..hookspecs import HOOKSPEC_VERSION
    from ..manager import answering_plugins, get_plugin_manager, model_types_by_plugin, plugin_registry, precedence

    pm = get_plugin_manager()
    registry, _ = plugin_registry(pm)  # also surfaces broken registry fragments as failures
    answers = answering_plugins(pm, registry)
    types = model_types_by_plugin(pm)
    order = precedence(pm)
    names = order + [name for name, _ in pm.list_name_plugin() if name not in order]
    rows = []
    for name in names:
        plugin = pm.get_plugin(name)
        package, version = pm.lora_registry_sources.get(name, ("?", "?"))
        hooks = sorted(h.name for h in (pm.get_hookcallers(plugin) or []))
        rows.append({"name": name, "package": package, "version": version, "model_types": types.get(name, []),
                     "hooks": hooks, "precedence": order.index(name) + 1 if name in order else None})
    failures = [{"plugin": f.plugin, "error": f.error} for f in pm.lora_registry_failures]
    if as_json:
        typer.echo(json.dumps({"hookspec_version": HOOKSPEC_VERSION, "plugins": rows, "answers": answers,
                               "failures": failures}, indent=2))
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
        table.add_row(str(row["precedence"] or "-"), row["name"], row["package"], row["version"], shown,
                      ", ".join(h.replace("lora_registry_", "") for h in row["hooks"]))
    who = Table(title="who answers which model type (any other: the generic fallback)")
    for column in ("model type", "answered by", "why", "also named by"):
        who.add_column(column)
    for model_type, answer in answers.items():
        who.add_row(model_type, answer["plugin"], escape(answer["why"]), ", ".join(answer["also"]) or "-")
    out = [table, who]
    for failure in failures:
        out.append(Text(f"failed: {failure['plugin']}: {failure['error']}", style="red"))
    print_all(out)
