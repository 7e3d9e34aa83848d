"""Helpers shared by the commands: error handling, the plugin host, inspecting for a command, atomic writes, key=value options."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import ConfigError, LoraRegistryError

if TYPE_CHECKING:  # pragma: no cover
    from ..host import PluginHost
    from ..inspection import ModelMap


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


def handle_errors(command: Callable) -> Callable:
    """Turn lora-registry errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LoraRegistryError as exc:
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def check_output(path: Path | None, force: bool) -> None:
    """Fail before any work if ``path`` cannot be written: missing folder, or an existing file without force."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{path}: output folder {parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a file name")
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
) -> ModelMap:
    """MODEL's map for a command: from the cache or ``config.json`` alone where possible, else the built model.

    With ``verify`` the model is built anyway and the fast path's map checked against it (a note on
    stderr says whether the check ran); the built model's map is returned.
    """
    from .. import inspection

    if not verify:
        return inspection.inspect(
            model, trust_remote_code=trust_remote_code, plugin_manager=host, plugin=plugin, fast=True, cache=cache
        )
    fast = inspection.fast_map(model, host, plugin=plugin, trust_remote_code=trust_remote_code)
    slow = inspection.inspect(model, trust_remote_code=trust_remote_code, plugin_manager=host, plugin=plugin)
    if fast is None:
        typer.echo(
            f"{model}: the fast path does not cover this config; answered from the model transformers builds", err=True
        )
        return slow
    inspection.verify_model_map(fast, slow)
    typer.echo(f"{model}: fast path verified against the model transformers builds", err=True)
    return slow


def no_cache_option() -> Any:
    """``--no-cache``: neither read nor write the on-disk map cache."""
    return typer.Option(False, "--no-cache", help="Do not read or write the on-disk cache of inspected models.")
