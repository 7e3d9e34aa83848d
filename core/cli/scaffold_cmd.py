"""``lora-registry scaffold``: a starting declarative entry for an architecture only the generic fallback knows."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import check_output, handle_errors, inspect_model, plugin_host, revision_option, write_atomic


@handle_errors
def scaffold(
    model: str = typer.Argument(
        ..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the TOML here instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
) -> None:
    """Write a declarative architectures.<model_type> TOML entry from what the generic fallback found in MODEL.

    Review it, then ship it in registry.toml or as a data-only plugin (lora_registry_registry_fragment).
    """
    from ..scaffold import scaffold as make

    check_output(output, force)
    text = make(inspect_model(model, plugin_host(), trust_remote_code=trust_remote_code, revision=revision))
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text)
        typer.echo(f"wrote {output}", err=True)
