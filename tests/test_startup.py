"""``roles`` and ``plugins`` skip typer's option parser on their plain forms, and say exactly what typer's route says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PROBE as _PROBE
from lora_registry.cli import plain_call, plugins_cmd, roles_cmd

# The console entry point, as the installed script runs it; the second forces the typer route.
FAST = "from lora_registry.cli import main\nmain()\n"
TYPER = "import lora_registry.cli as cli\ncli.plain_call = lambda args: None\ncli.main()\n"


def _both(*args, stdout=subprocess.PIPE):
    """(fast route, typer route) of ``lora-registry ARGS``: exit status and both streams, as bytes."""
    return [
        subprocess.run(
            [sys.executable, "-c", code, *map(str, args)], stdout=stdout, stderr=subprocess.PIPE, timeout=300
        )
        for code in (FAST, TYPER)
    ]


@pytest.fixture
def presets(tmp_path):
    """A good presets file, a file that is not TOML, and a path with nothing at it; spelt with ``//`` and ``./``
    so that both routes have to turn them into the same ``Path``."""
    (tmp_path / "mine.toml").write_text('[presets.mine]\nroles = "q,v"\nrank = 4\nalpha = 8\nrank_for = { v = 2 }\n')
    (tmp_path / "broken.toml").write_text("[presets.mine\n")
    return {"good": f"{tmp_path}//./mine.toml", "bad": f"{tmp_path}//broken.toml", "missing": f"{tmp_path}/none/x.toml"}


PLAIN = [  # arguments, exit status, what stderr holds (one line) or None for a clean run
    (("roles",), 0, None),
    (("roles", "--json"), 0, None),
    (("plugins",), 0, None),
    (("plugins", "--json"), 0, None),
    (("roles", "--presets", "{good}"), 0, None),
    (("roles", "--json", "--presets", "{good}"), 0, None),
    (("roles", "--presets={good}", "--json"), 0, None),
    (("roles", "--presets", "{bad}"), 2, b"invalid TOML"),
    (("roles", "--json", "--presets={missing}"), 2, b"cannot read presets file (No such file or directory)"),
]


@pytest.mark.parametrize("args,code,error", PLAIN)
def test_plain_forms_skip_typer_and_match_it_byte_for_byte(args, code, error, presets):
    args = [a.format(**presets) for a in args]
    assert plain_call(args) is not None  # else both runs below would be typer's, and prove nothing
    fast, slow = _both(*args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert fast.returncode == code, fast.stderr
    if error is None:
        assert fast.stdout and not fast.stderr
        assert (b"mine" in fast.stdout) == any("mine.toml" in a for a in args)  # the user's preset is listed
    else:  # bad input: one line, exit 2, no traceback
        assert not fast.stdout and fast.stderr.startswith(b"error: ") and len(fast.stderr.splitlines()) == 1
        assert error in fast.stderr


@pytest.mark.parametrize("args", [("roles",), ("roles", "--json"), ("plugins", "--json")])
def test_a_closed_stdout_exits_1_quietly_on_both_routes(args):
    # rich handles a broken pipe itself; typer.echo (the --json forms) leaves it to typer's runner
    read, write = os.pipe()
    os.close(read)  # every write to stdout now fails with EPIPE, as under `lora-registry roles --json | head -0`
    try:
        fast, slow = _both(*args, stdout=write)
    finally:
        os.close(write)
    assert (fast.returncode, fast.stderr) == (slow.returncode, slow.stderr) == (1, b"")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["roles", "-h"],
        ["roles", "--help"],
        ["plugins", "--help"],
        ["resolve", "x"],
        ["roles", "--json", "--json"],
        ["roles", "--jso"],
        ["roles", "--json=1"],
        ["roles", "extra"],
        ["roles", "--presets"],
        ["roles", "--presets="],
        ["roles", "--presets", ""],
        ["roles", "--presets", "--json"],
        ["roles", "--presets", "a", "--presets", "b"],
        ["plugins", "--presets", "a"],
        ["--json", "roles"],
    ],
)
def test_everything_else_goes_to_typer(args):
    assert plain_call(args) is None


def test_plain_call_passes_what_typer_passes():
    defaults = {"as_json": False, "output_format": "table", "quiet": False}  # every option's default
    assert plain_call(["roles"]) == (roles_cmd.roles, {**defaults, "presets_file": None})
    command, kwargs = plain_call(["roles", "--presets=a//b/./c.toml", "--json"])
    assert command is roles_cmd.roles and kwargs == {**defaults, "as_json": True, "presets_file": Path("a/b/c.toml")}
    assert plain_call(["plugins", "--json"]) == (plugins_cmd.plugins, {**defaults, "as_json": True})


def test_shell_completion_stays_with_typer(monkeypatch):
    monkeypatch.setenv("_LORA_REGISTRY_COMPLETE", "bash_complete")
    assert plain_call(["roles"]) is None


@pytest.mark.parametrize("args", [("roles", "--json"), ("roles", "--presets", "{good}"), ("plugins", "--json")])
def test_plain_forms_import_no_torch(args, presets):
    # test_fastpath covers bare `roles`, `plugins` and `--help`
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *[a.format(**presets) for a in args]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED=\n" in done.stderr, done.stderr
