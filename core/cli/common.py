"""Helpers shared by the commands: typer conventions and shared options, error handling, the plugin host,
inspecting for a command, output paths and atomic writes, key=value options."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

from ..errors import ConfigError, LoraRegistryError

if TYPE_CHECKING:  # pragma: no cover
    from ..host import PluginHost
    from ..inspection import ModelMap

# ----------------------------------------------------------------------------- typer conventions


class Command(TyperCommand):
    """A command whose help reads as click's and ``hf``'s: ``MODEL`` and ``--rank N``, not ``{model} <str>`` and ``<int>``.

    Every argument shows its upper-case name; an option that takes a value shows its ``metavar``, else
    one made from its type (``N`` for whole numbers, ``X`` for numbers, ``FILE`` for paths) or its name
    (``--scope SCOPE``); flags show none. The app prints help without rich markup, so bracketed text
    such as ``[default: 8, or the preset's]`` shows as written.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument":
                param.metavar = param.metavar or (param.name or "").upper()
            elif not getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = _value_name(param)

    def get_short_help_str(self, limit: int = 45) -> str:
        """The command's first sentence, whole, for the app's command list (click would cut it at ``limit``)."""
        return super().get_short_help_str(limit=1000)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line, with arguments as ``MODEL`` (typer writes ``{MODEL}``)."""
        return [re.sub(r"^\{(.*)\}$", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The Arguments and Options sections, arguments without typer's ``<str>``."""
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((param.metavar or record[0], record[1]))
            else:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


class App(typer.Typer):
    """The ``lora-registry`` app: every command it registers is a ``Command``, including ones added later."""

    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Any:
        """Register a command, as ``typer.Typer.command`` does, with ``Command`` as its class."""
        return super().command(*args, cls=cls or Command, **kwargs)


def _value_name(param: Any) -> str:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for kind, name in ((int, "N"), (float, "X"), (Path, "FILE")):
        if annotation in (kind, list[kind]):  # type: ignore[valid-type]
            return name
    return max(param.opts, key=len).lstrip("-").upper().replace("-", "_")


# ----------------------------------------------------------------------------- options every command shares


def list_option(*names: str, help: str, metavar: str, default: list[str] | None = None) -> Any:
    """A comma-list option that may be repeated: ``-r q -r v`` is ``-r q,v`` (read it with ``joined``)."""
    return typer.Option(default, *names, help=f"{help} Repeat it to add more.", metavar=metavar)


def joined(values: Sequence[str] | None) -> str | None:
    """A repeated comma-list option's values as one comma list (``["q", "v,ffn"]`` -> ``"q,v,ffn"``), or None."""
    if not values:
        return None
    return ",".join(values)


def format_option(formats: Sequence[str], help: str | None = None) -> Any:
    """``-f/--format``, its choices as the metavar (``table|json``)."""
    return typer.Option(
        "table",
        "--format",
        "-f",
        help=help or "Output format. --json is the same as --format json.",
        metavar="|".join(formats),
    )


def json_option() -> Any:
    """``--json``: the same as ``--format json``."""
    return typer.Option(False, "--json", help="JSON output: the same as --format json.")


def pick_format(chosen: str, as_json: bool, formats: Sequence[str]) -> str:
    """The format a command writes: ``--json`` means ``--format json``; both, disagreeing, is an error."""
    if as_json and chosen not in ("table", "json"):  # "table" is --format's default: --json overrides it
        raise ConfigError(f"--json and --format {chosen} disagree; give one of them")
    chosen = "json" if as_json else chosen
    if chosen not in formats:
        raise ConfigError(f"unknown format {chosen!r}; choose from {', '.join(formats)}")
    return chosen


def output_option(what: str) -> Any:
    """``-o/--output FILE``; ``FOLDER/`` writes ``what`` inside it."""
    return typer.Option(
        None,
        "--output",
        "-o",
        help=f"Write to FILE instead of stdout, only once the whole run succeeded. A FOLDER/ gets {what} inside it.",
        metavar="FILE",
    )


def plugin_option() -> Any:
    """``--plugin NAME``: ask only that plugin."""
    return typer.Option(None, "--plugin", help="Ask only this plugin.", metavar="NAME")


def quiet_option() -> Any:
    """``-q/--quiet``: nothing on stderr but errors."""
    return typer.Option(False, "--quiet", "-q", help="Print nothing on stderr but errors (no notes, no warnings).")


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep other libraries' log lines off stderr while a command runs: the CLI speaks in its own lines.

    With bitsandbytes, torchao or hqq installed, importing PEFT or transformers' models logs their
    load-time warnings (a kernel that failed to load, a deprecated registration) through Python
    logging: five lines before any error, which must be one line.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("lora_registry_quiet", default=False)


def note(message: str) -> None:
    """A note for the user on stderr (``wrote FILE``, ``--verify``'s verdict), unless ``--quiet``."""
    if not _QUIET.get():
        typer.echo(message, err=True)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command: lora-registry errors become one line on stderr and exit status 2; warnings one line
    each (``warning: ...``), none with ``--quiet``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet = bool(kwargs.get("quiet", False))
        token = _QUIET.set(quiet)
        try:
            with warnings.catch_warnings():
                if quiet:
                    warnings.simplefilter("ignore")
                else:
                    warnings.showwarning = _one_line_warning
                return command(*args, **kwargs)
        except LoraRegistryError as exc:
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(2) from None
        finally:
            _QUIET.reset(token)

    return wrapper


def _one_line_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    typer.echo(f"warning: {' '.join(str(message).split())}", err=True)


def output_path(output: str | None, file_name: str) -> Path | None:
    """Where ``-o`` writes: the path given, or ``file_name`` inside a folder given with a trailing slash (``out/``).

    The folder must exist: ``-o out/`` never writes a file called ``out``.
    """
    if output is None:
        return None
    path = Path(output)
    if output.endswith(("/", os.sep)):
        if not path.is_dir():
            raise ConfigError(f"{output}: no such folder (a trailing / means a folder; create it first)")
        return path / file_name
    return path


def check_output(path: Path | None, force: bool) -> None:
    """Fail before any work if ``path`` cannot be written: missing folder, or an existing file without force."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{path}: output folder {parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a file name, or {path}/ to write the usual file in it")
    if path.exists() and not force:
        raise ConfigError(f"{path}: exists; pass --force to overwrite")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: output folder {parent} is not writable")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and a rename: an interrupted run leaves the old file or none.

    The file gets the permissions a plain ``open(path, "w")`` would give it (an overwritten file
    keeps its own), not ``mkstemp``'s owner-only 0600.
    """
    parent = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it visible
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):  # disk full, folder gone: bad circumstances, not a bug
            raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise


def parse_pairs(values: list[str] | None, what: str, kind: type) -> dict:
    """``["ffn=4", "q=16"]`` -> ``{"ffn": 4, "q": 16}`` with a one-line error on anything else."""
    out = {}
    for value in values or []:
        key, sep, number = value.partition("=")
        if not sep or not key.strip() or not number.strip():
            raise ConfigError(f"{what} takes ROLE=VALUE, got {value!r}")
        try:
            parsed = kind(number.strip())
        except ValueError:
            raise ConfigError(
                f"{what} {value!r}: {number.strip()!r} is not a {'whole number' if kind is int else 'number'}"
            ) from None
        out[key.strip().lower()] = parsed
    return out


def plugin_host(presets_file: Path | None = None) -> PluginHost:
    """The plugin host a command uses: every plugin, and the user's presets file (``--presets`` or the env var)."""
    from ..host import get_plugin_host

    return get_plugin_host(presets=presets_file)


def inspect_model(
    model: str,
    host: PluginHost,
    *,
    trust_remote_code: bool = False,
    plugin: str | None = None,
    verify: bool = False,
    cache: bool = True,
    revision: str | None = None,
) -> ModelMap:
    """MODEL's map for a command: from the cache or ``config.json`` alone where possible, else the built model.

    With ``verify`` the model is built anyway and the fast path's map checked against it (a note on
    stderr says whether the check ran); the built model's map is returned. ``revision`` applies to a
    hub id (``owner/name`` -> ``owner/name@REV``).
    """
    from .. import inspection
    from ..hub import with_revision

    model = with_revision(model, revision)

    if not verify:
        return inspection.inspect(
            model, trust_remote_code=trust_remote_code, plugin_manager=host, plugin=plugin, fast=True, cache=cache
        )
    fast = inspection.fast_map(model, host, plugin=plugin, trust_remote_code=trust_remote_code)
    slow = inspection.inspect(model, trust_remote_code=trust_remote_code, plugin_manager=host, plugin=plugin)
    if fast is None:
        note(f"{model}: the fast path does not cover this config; answered from the model transformers builds")
        return slow
    inspection.verify_model_map(fast, slow)
    note(f"{model}: fast path verified against the model transformers builds")
    return slow


def revision_option() -> Any:
    """``--revision REV``: a branch, tag or commit of a hub id."""
    return typer.Option(None, "--revision", help="Branch, tag or commit of a hub id (default: main).", metavar="REV")


def no_cache_option() -> Any:
    """``--no-cache``: neither read nor write the on-disk map cache."""
    return typer.Option(False, "--no-cache", help="Do not read or write the on-disk cache of inspected models.")
