"""``lora-registry scaffold``: a starting declarative entry for an architecture only the generic fallback knows."""

from __future__ import annotations

import typer

from .common import (
    check_output,
    handle_errors,
    inspect_model,
    note,
    output_option,
    output_path,
    plugin_host,
    quiet_option,
    revision_option,
    write_atomic,
)


@handle_errors
def scaffold(
    model: str = typer.Argument(
        ..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."
    ),
    output: str | None = output_option("MODEL_TYPE.toml"),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Write a declarative architectures.<model_type> TOML entry from what the generic fallback found in MODEL.

    Review it, then ship it in registry.toml or as a data-only plugin (lora_registry_registry_fragment).
    """
    from ..scaffold import scaffold as make

    check_output(output_path(output, "scaffold.toml"), force)  # a missing folder fails before any work
    model_map = inspect_model(model, plugin_host(), trust_remote_code=trust_remote_code, revision=revision)
    text = make(model_map)
    target = output_path(output, f"{model_map.model_type}.toml")
    if target is None:
        typer.echo(text, nl=False)
    else:
        check_output(target, force)
        write_atomic(target, text)
        note(f"wrote {target}")
