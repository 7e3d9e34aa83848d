"""The ``lora-registry`` command line: one small module per command."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import typer

from ..errors import LoraRegistryError
from . import compare_cmd, explain_cmd, inspect_cmd, plugins_cmd, resolve_cmd, roles_cmd, scaffold_cmd
from .common import quiet_libraries

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
app.command("inspect")(inspect_cmd.inspect_command)
app.command("plugins")(plugins_cmd.plugins)
app.command("roles")(roles_cmd.roles)
app.command("scaffold")(scaffold_cmd.scaffold)


def main() -> None:
    """Console entry point: usage errors become one line and exit status 2, never a traceback."""
    try:
        with quiet_libraries():
            plain = plain_call(sys.argv[1:])
            code = _run_plain(*plain) if plain else app(standalone_mode=False)
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
        typer.echo(
            f"internal error: {exc.__class__.__name__}: {exc} (set LORA_REGISTRY_DEBUG=1 for a traceback)", err=True
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def plain_call(args: list[str]) -> tuple | None:
    """``(command, keyword arguments)`` for a plain ``roles`` or ``plugins`` command line, else None.

    typer parses any command's options through pydantic validators, a third of the start-up of
    these two look-around commands. So their plain forms (each of their own options at most once,
    ``--presets FILE`` or ``--presets=FILE``) skip the parser; anything else, help, errors and odd
    values included, goes to typer, which owns those messages. tests/test_startup.py holds both
    routes to the same output.
    """
    if not args or args[0] not in ("roles", "plugins") or any(name.endswith("_COMPLETE") for name in os.environ):
        return None  # shell completion (click's _PROG_COMPLETE variable) is typer's too
    command = args[0]
    kwargs: dict = {"as_json": False}
    if command == "roles":
        kwargs["presets_file"] = None
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if arg == "--json" and not kwargs["as_json"]:
            kwargs["as_json"] = True
        elif command == "roles" and name == "--presets" and kwargs["presets_file"] is None:
            if not eq:
                value = rest.pop(0) if rest else ""
            # typer's own handling for a value that is empty or looks like an option, and its own
            # message for an existing file it cannot read
            if not value or value.startswith("-") or (os.path.exists(value) and not os.access(value, os.R_OK)):
                return None
            kwargs["presets_file"] = Path(value)
        else:
            return None
    return (roles_cmd.roles if command == "roles" else plugins_cmd.plugins), kwargs


def _run_plain(command, kwargs: dict) -> int | None:
    """Call a command as typer's runner does: ``typer.Exit`` gives the status, a closed stdout exits 1 quietly."""
    try:
        return command(**kwargs)
    except typer.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # the reader went away (``| head``): exit 1 quietly, as typer does, with no "Exception ignored" at shutdown
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
