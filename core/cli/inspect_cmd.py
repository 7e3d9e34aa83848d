"""``lora-registry inspect``: every targetable leaf with its role, shape, layer and scope."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import handle_errors, inspect_model, no_cache_option, plugin_host, revision_option


@handle_errors
def inspect_command(
    model: str = typer.Argument(
        ..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the ModelMap as JSON (every leaf, not grouped)."),
    presets_file: Path | None = typer.Option(
        None,
        "--presets",
        help="A TOML file of your own [presets.NAME] and [architectures.TYPE] tables (default: $LORA_REGISTRY_PRESETS).",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
    plugin: str | None = typer.Option(None, "--plugin", help="Ask only this plugin."),
    verify: bool = typer.Option(
        False, "--verify", help="Build the model anyway and check the config-only fast path against it."
    ),
    no_cache: bool = no_cache_option(),
) -> None:
    """Show every LoRA-targetable leaf of MODEL: role, shape, layer, scope; parameter totals by role."""
    host = plugin_host(presets_file)
    model_map = inspect_model(
        model,
        host,
        trust_remote_code=trust_remote_code,
        plugin=plugin,
        verify=verify,
        cache=not no_cache,
        revision=revision,
    )
    if as_json:
        data = model_map.to_dict()
        data["parameters_by_role"] = model_map.parameter_totals()
        data["total_parameters"] = model_map.base_parameters
        data["warnings"] = list(model_map.warnings)
        typer.echo(json.dumps(data, indent=2))
        return
    from .tables import inspect_tables, print_all

    print_all(inspect_tables(model_map))
