"""``lora-registry scaffold``: a starting declarative entry for an architecture only the generic fallback knows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_output, handle_errors, write_atomic


@handle_errors
def scaffold(
    model: str = typer.Argument(..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the TOML here instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a config's own Python code to run."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit of a hub id (default: main)."),
) -> None:
    """Write a declarative architectures.<model_type> TOML entry from what the generic fallback found in MODEL.

    Review it, then ship it in registry.toml or as a data-only plugin (lora_registry_registry_fragment).
    """
    from ..hub import with_revision

    model = with_revision(model, revision)  # owner/name -> owner/name@REV: every step below reads it from the id
    from ..inspection import inspect as do_inspect
    from ..scaffold import scaffold as make

    check_output(output, force)
    text = make(do_inspect(model, trust_remote_code=trust_remote_code))
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text)
        typer.echo(f"wrote {output}", err=True)
