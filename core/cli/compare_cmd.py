"""``lora-registry compare``: the standard LoRA choices side by side, with what each costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError, LoraRegistryError
from .common import (
    format_option,
    handle_errors,
    inspect_model,
    joined,
    json_option,
    list_option,
    no_cache_option,
    pick_format,
    plugin_host,
    plugin_option,
    quiet_option,
    revision_option,
)

FORMATS = ("table", "json")
#: the standard choices every comparison shows: (label, roles, rank, per-role ranks), or a preset's name
STANDARD: tuple[Any, ...] = (
    ("q,v r8", "q,v", 8, {}),
    ("q,k,v,o r8", "q,k,v,o", 8, {}),
    "qv8-ffn4",
    ("all r16", "all", 16, {}),
)


@handle_errors
def compare(
    model: str = typer.Argument(
        ..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."
    ),
    preset: list[str] | None = typer.Option(
        None, "--preset", help="Also compare this preset (repeatable).", metavar="NAME"
    ),
    presets_file: Path | None = typer.Option(
        None, "--presets", help="A TOML file of your own [presets.NAME] tables (default: $LORA_REGISTRY_PRESETS)."
    ),
    scope: list[str] | None = list_option(
        "--scope",
        help="language, vision, audio, projector (comma list) [default: language; a speech encoder-decoder's "
        "audio encoder too].",
        metavar="SCOPES",
    ),
    output_format: str = format_option(FORMATS),
    as_json: bool = json_option(),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
    plugin: str | None = plugin_option(),
    no_cache: bool = no_cache_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Show q,v r8; q,k,v,o r8; qv8-ffn4; all r16 (and any --preset) side by side: trainable parameters, share, memory."""
    from ..resolution import parse_scopes

    output_format = pick_format(output_format, as_json, FORMATS)
    scope_spec = joined(scope) or None  # None: the model's default scopes
    if scope_spec is not None:
        parse_scopes(scope_spec)
    host = plugin_host(presets_file)  # plugins' fragments and the user's file add presets
    registry = host.registry
    unknown = [name for name in preset or [] if name not in registry.presets]
    if unknown:
        raise ConfigError(f"unknown preset {unknown[0]!r}; known: {', '.join(registry.presets)}")
    choices = list(STANDARD) + [name for name in dict.fromkeys(preset or []) if name not in STANDARD]
    model_map = inspect_model(
        model, host, trust_remote_code=trust_remote_code, plugin=plugin, cache=not no_cache, revision=revision
    )
    rows = [compare_row(model_map, choice, registry, scope_spec) for choice in choices]
    if output_format == "json":
        doc = {
            "model": model_map.model,
            "model_type": model_map.model_type,
            "plugin": model_map.plugin,
            "base_parameters": model_map.base_parameters,
            "choices": rows,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    from .tables import compare_table, print_all

    print_all(compare_table(model_map, rows, registry))


def compare_row(model_map: Any, choice: Any, registry: Any, scope: str | None) -> dict[str, Any]:
    """One choice resolved against an inspected model: its roles, ranks and cost, or why it does not apply."""
    from ..resolution import resolve
    from ..settings import LoraSettings

    if isinstance(choice, str):  # a preset: its per-role overrides apply where their roles were resolved
        p = registry.presets[choice]
        label, roles, settings = choice, p.roles, LoraSettings.from_preset(p)
    else:
        label, roles, rank, rank_for = choice
        settings = LoraSettings(r=rank, default_ranks=rank_for)
    try:
        result = resolve(model_map, roles, scope=scope)
        plan = result.plan(settings)
    except LoraRegistryError as exc:
        return {"choice": label, "error": " ".join(str(exc).split())}
    cost = plan.cost
    ranks = {key: value for key, value in settings.default_ranks.items() if result.covers(key)}
    rank = settings.r
    return {
        "choice": label,
        "roles": result.roles,
        "rank": ", ".join([str(rank)] + [f"{key}={value}" for key, value in ranks.items()]),
        "ranks": {role: plan.rank_of(role) for role in result.roles},
        "trainable_parameters": cost.total,
        "share": cost.share,
        "memory_bytes": {precision: cost.memory(precision)["total"] for precision in ("fp32", "bf16")},
        "warnings": [w for w in result.warnings if w not in model_map.warnings],
    }
