"""The ``lora-registry`` command line: one small module per command."""

from __future__ import annotations

import errno
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ..errors import LoraRegistryError
from . import compare_cmd, explain_cmd, inspect_cmd, plan_cmd, plugins_cmd, resolve_cmd, roles_cmd, scaffold_cmd
from .common import App, quiet_libraries

# bitsandbytes (imported by PEFT where installed: the qlora extra) logs a line about an optional CPU kernel on
# import; the command line owes its user one line per error, not someone else's notices.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

app = App(
    name="lora-registry",
    help="Which modules of a model to adapt with LoRA, and what it will cost.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion, as typer apps and `hf` offer
    rich_markup_mode=None,  # plain help, as click and `hf` print it: bracketed text shows as written
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"lora-registry {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Which modules of a model to adapt with LoRA, and what it will cost."""


app.command("resolve")(resolve_cmd.resolve)
app.command("plan")(plan_cmd.plan)
app.command("compare")(compare_cmd.compare)
app.command("explain")(explain_cmd.explain)
app.command("inspect")(inspect_cmd.inspect_command)
app.command("plugins")(plugins_cmd.plugins)
app.command("roles")(roles_cmd.roles)
app.command("scaffold")(scaffold_cmd.scaffold)


def main() -> None:
    """Console entry point: usage errors become one line and exit status 2, never a traceback."""
    _show_warnings_as_lines()
    try:
        with quiet_libraries():
            plain = plain_call(sys.argv[1:])
            code = _run_plain(*plain) if plain else app(standalone_mode=False, prog_name="lora-registry")
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
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `lora-registry`: the help, as click shows it
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            message = " ".join(exc.format_message().split())
            if message:
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


def _show_warnings_as_lines() -> None:
    """lora-registry's own warnings (a plugin that failed to load) as one ``warning:`` line each on stderr."""
    import warnings

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("lora_registry"):
            typer.echo(f"warning: {' '.join(str(message).split())}", err=True)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show


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
    function = roles_cmd.roles if command == "roles" else plugins_cmd.plugins
    kwargs = option_defaults(function)
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
    return function, kwargs


def option_defaults(command: Callable[..., Any]) -> dict[str, Any]:
    """A command's keyword arguments as typer passes them when no option is given: each option's default."""
    return {
        name: param.default.default if isinstance(param.default, typer.models.OptionInfo) else param.default
        for name, param in inspect.signature(command).parameters.items()
    }


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
