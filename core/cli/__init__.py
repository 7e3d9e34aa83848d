"""The ``lora-registry`` command line: one small module per command."""

from __future__ import annotations

import os
import sys

import typer

from ..errors import LoraRegistryError
from . import compare_cmd, explain_cmd, inspect_cmd, plugins_cmd, resolve_cmd, roles_cmd, scaffold_cmd

app = typer.Typer(
    name="lora-registry",
    help="Which modules of a model to adapt with LoRA, and what it will cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("resolve")(resolve_cmd.resolve)
app.command("compare")(compare_cmd.compare)
app.command("explain")(explain_cmd.explain)
app.command("inspect")(inspect_cmd.inspect)
app.command("plugins")(plugins_cmd.plugins)
app.command("roles")(roles_cmd.roles)
app.command("scaffold")(scaffold_cmd.scaffold)


def main() -> None:
    """Console entry point: usage errors become one line and exit status 2, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except LoraRegistryError as exc:
        # commands without handle_errors (roles, plugins) still fail in one line: a broken registry
        # fragment under LORA_REGISTRY_STRICT_PLUGINS is bad input, not a bug
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except Exception as exc:
        # typer vendors its own click, so match click's exception interface rather than its classes.
        if type(exc).__name__ == "Abort":
            typer.echo("aborted", err=True)
            sys.exit(130)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            message = " ".join(exc.format_message().split())
            if message:  # a bare `lora-registry` has already printed its help
                typer.echo(f"error: {message}", err=True)
            sys.exit(exc.exit_code)
        # a bug, not bad input: still one line unless debugging
        if os.environ.get("LORA_REGISTRY_DEBUG"):
            raise
        typer.echo(f"internal error: {exc.__class__.__name__}: {exc} (set LORA_REGISTRY_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
