"""``lora-registry inspect``: every targetable leaf with its role, shape, layer and scope."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .common import handle_errors


@handle_errors
def inspect(
    model: str = typer.Argument(..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."),
    as_json: bool = typer.Option(False, "--json", help="Print the ModelMap as JSON (every leaf, not grouped)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a config's own Python code to run."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit of a hub id (default: main)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", help="Ask only this plugin."),
    verify: bool = typer.Option(False, "--verify", help="Build the model anyway and check the config-only fast path against it."),
) -> None:
    """Show every LoRA-targetable leaf of MODEL: role, shape, layer, scope; parameter totals by role."""
    from ..hub import with_revision

    model = with_revision(model, revision)  # owner/name -> owner/name@REV: every step below reads it from the id
    from ..fastpath import model_map_for_cli
    from ..inspection import ModelMap
    from ..inspection import inspect as do_inspect

    found = model_map_for_cli(model, verify=verify, trust_remote_code=trust_remote_code, plugin=plugin)
    model_map = found if isinstance(found, ModelMap) else do_inspect(model, trust_remote_code=trust_remote_code, plugin=plugin)
    if as_json:
        data = model_map.to_dict()
        data["parameters_by_role"] = model_map.parameter_totals()
        data["total_parameters"] = model_map.base_parameters
        data["warnings"] = model_map.warnings
        typer.echo(json.dumps(data, indent=2))
        return
    from .tables import inspect_tables, print_all

    print_all(inspect_tables(model_map))
