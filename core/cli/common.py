"""Helpers shared by the commands: error handling, atomic writes, key=value options."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Callable

import typer

from ..errors import ConfigError, LoraRegistryError


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


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and a rename: an interrupted run leaves the old file or none."""
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
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
            raise ConfigError(f"{what} {value!r}: {number.strip()!r} is not a {'whole number' if kind is int else 'number'}") from None
        out[key.strip().lower()] = parsed
    return out
