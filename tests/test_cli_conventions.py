"""The CLI's conventions, as in click, typer and ``hf`` CLIs: readable help that the README's CLI section
matches, --version, shell completion, --json as --format json, repeated list options merging,
-o FOLDER/, -q/--quiet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from helpers import EXAMPLES, FIXTURES, ROOT, TINY_QWEN3_NEXT, write_config
from lora_registry.cli import app
from lora_registry.cli.resolve_cmd import FILE_NAMES, FORMATS

runner = CliRunner()
LLAMA = str(EXAMPLES / "llama-3.1-8b")
GROUP = get_command(app)
COMMANDS = dict(GROUP.commands)  # type: ignore[attr-defined]


def run(*args: str, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def one_line_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.output


# ----------------------------------------------------------------------------- help and the README


def readme_synopsis() -> dict[str, str]:
    """The README's CLI block: ``{command: its synopsis}`` (``""``: the app itself), comments dropped."""
    section = (ROOT / "README.md").read_text().split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        line = line.split("  #", 1)[0].rstrip()
        words = line.split()
        if line.startswith("lora-registry"):
            current = words[1] if len(words) > 1 and words[1].islower() and not words[1].startswith("[") else ""
            entries[current] = " ".join(words[1:] if current == "" else words[2:])
        elif words and current is not None:
            entries[current] += " " + " ".join(words)
    return entries


def parse_synopsis(text: str) -> tuple[list[str], dict[str, str | None]]:
    """``MODEL [-r ROLES] [--strict]`` -> (``["MODEL"]``, ``{"-r": "ROLES", "--strict": None}``): arguments stand
    outside brackets; inside, each option is followed by its value name, if it takes one."""
    options: dict[str, str | None] = {}
    for group in re.findall(r"\[([^\]]*)\]", text):
        tokens = [t for t in group.split() if t not in ("|", "...")]
        for i, token in enumerate(tokens):
            if token.startswith("-"):
                value = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("-") else None
                options[token] = value
    # an optional argument is a bracketed value name alone, as click shows it: [MODEL]
    rest = re.sub(r"\[([^\]]*)\]", lambda m: f" [{m[1]}] " if re.fullmatch(r"[A-Z_]+", m[1]) else " ", text).split()
    arguments = []
    while rest:  # a required option stands outside brackets: --seq-len L
        token = rest.pop(0)
        if token.startswith("-"):
            options[token] = rest.pop(0) if rest and not rest[0].startswith("-") else None
        else:
            arguments.append(token)
    return arguments, options


def help_of(command) -> tuple[list[str], list[tuple[tuple[str, ...], str | None]]]:
    """A click command's arguments (value names) and options (names, value name or None for a flag), as --help shows them."""
    arguments = [
        p.metavar if p.required else f"[{p.metavar}]" for p in command.params if p.param_type_name == "argument"
    ]
    options = [
        (tuple(p.opts) + tuple(p.secondary_opts), None if p.is_flag else p.metavar)
        for p in command.params
        if p.param_type_name == "option" and p.name != "help"
    ]
    return arguments, options


def test_readme_cli_section_matches_help():
    readme = readme_synopsis()
    assert set(readme) == {"", *COMMANDS}, "the README's CLI block lists other commands than the app has"
    for name, command in [("", GROUP), *COMMANDS.items()]:
        arguments, options = help_of(command)
        shown_arguments, shown = parse_synopsis(readme[name])
        where = f"README CLI block, `lora-registry {name}`".replace("  ", " ")
        assert shown_arguments == (arguments if name else ["COMMAND"]), where
        for names, value in options:
            spelt = [n for n in names if n in shown]
            assert spelt, f"{where}: lacks {names[-1]}" + (f" {value}" if value else "")
            assert all(shown[n] == value for n in spelt), f"{where}: {spelt[0]} {shown[spelt[0]]}, --help: {value}"
        known = {n for names, _ in options for n in names} | {"-h", "--help"}
        assert not set(shown) - known, f"{where}: options --help does not show: {sorted(set(shown) - known)}"
    assert {"-h", "--help"} & set(parse_synopsis(readme[""])[1])


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_shows_bracketed_text_and_readable_value_names(name):
    result = run(*([name] if name else []), "--help")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for typer_spelling in ("<str>", "<int>", "<float>", "<bool>", "<path>", "<list", "{model}", "{MODEL}"):
        assert typer_spelling not in text, f"{name} --help shows {typer_spelling}"
    for argument in help_of(COMMANDS[name])[0] if name else []:
        assert argument in text.splitlines()[0]  # Usage: lora-registry resolve [OPTIONS] MODEL
    flat = " ".join(text.split())
    if name == "resolve":
        assert "LoRA rank for every role [default: 8, or the preset's]." in flat
        assert "-r, --roles ROLES" in text and "--rank N" in text and "--rank-for ROLE=N" in text
        assert "-o, --output FILE" in text and "-f, --format table|json|peft|" in text
    if name == "roles":
        assert "[presets.NAME]" in flat


def test_bare_command_prints_the_help():
    done = subprocess.run([sys.executable, "-m", "lora_registry"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("Usage: lora-registry [OPTIONS] COMMAND")
    assert "error:" not in done.stderr and "--version" in done.stderr


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"lora-registry {version('lora-registry')}\n"
    done = subprocess.run([sys.executable, "-m", "lora_registry", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == result.stdout and not done.stderr


def test_shell_completion():
    script = run("--show-completion", "bash")
    assert script.exit_code == 0 and "_LORA_REGISTRY_COMPLETE=complete_bash" in script.stdout
    console_script = Path(sys.executable).with_name("lora-registry")
    env = {
        **os.environ,
        "_LORA_REGISTRY_COMPLETE": "complete_bash",
        "COMP_WORDS": "lora-registry res",
        "COMP_CWORD": "1",
    }
    done = subprocess.run([str(console_script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.split() == ["resolve"], done.stderr
    env.update(COMP_WORDS="lora-registry resolve x --for", COMP_CWORD="3")
    done = subprocess.run([str(console_script)], capture_output=True, text=True, env=env, timeout=300)
    assert set(done.stdout.split()) == {"--format", "--force"}, done.stderr


# ----------------------------------------------------------------------------- options


@pytest.fixture(scope="module")
def adapter_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("adapter") / "adapter_config.json"
    result = run("resolve", str(FIXTURES / "gpt2"), "-r", "qkv", "-f", "peft", "-o", str(path))
    assert result.exit_code == 0, result.output
    return str(path)


@pytest.mark.parametrize("command", ["resolve", "inspect", "compare", "explain", "roles", "plugins"])
def test_json_and_format_json_are_the_same(command, adapter_config):
    args = {
        "resolve": [LLAMA, "-r", "q,v"],
        "inspect": [LLAMA],
        "compare": [LLAMA],
        "explain": [adapter_config, str(FIXTURES / "gpt2")],
    }.get(command, [])
    as_json, as_format = run(command, *args, "--json"), run(command, *args, "-f", "json")
    assert as_json.exit_code == 0, as_json.output
    assert as_json.stdout == as_format.stdout and json.loads(as_json.stdout)
    assert run(command, *args, "--json", "--format", "json").stdout == as_json.stdout
    one_line_error(run(command, *args, "--json", "-f", "yaml"), "--json and --format yaml disagree")


def test_repeated_list_options_merge():
    merged = run(
        "resolve", LLAMA, "-r", "q", "-r", "v", "--roles", "ffn", "--layers", "0-3", "--layers", "30-31",
        "--scope", "language", "--scope", "vision", "--modules-to-save", "lm-head", "--modules-to-save", "embed",
        "-f", "json",
    )  # fmt: skip
    single = run(
        "resolve", LLAMA, "-r", "q,v,ffn", "--layers", "0-3,30-31", "--scope", "language,vision",
        "--modules-to-save", "lm-head,embed", "-f", "json",
    )  # fmt: skip
    assert merged.exit_code == 0, merged.output
    doc = json.loads(merged.stdout)
    assert doc == json.loads(single.stdout)
    assert set(doc["roles"]) == {"attention-q", "attention-v", "ffn-gate", "ffn-up", "ffn-down"}
    assert doc["layers"] == {"model.layers": [0, 1, 2, 3, 30, 31]}
    assert set(doc["cost"]["modules_to_save"]) == {"lm_head", "model.embed_tokens"}
    compared = run("compare", LLAMA, "--scope", "language", "--scope", "vision", "--json")
    assert (
        compared.exit_code == 0
        and compared.stdout == run("compare", LLAMA, "--scope", "language,vision", "--json").stdout
    )


def test_output_into_a_folder(tmp_path):
    assert set(FILE_NAMES) == set(FORMATS)  # every format has its usual file name
    folder = tmp_path / "out"
    folder.mkdir()
    result = run("resolve", LLAMA, "-r", "q,v", "-f", "peft", "-o", f"{folder}/")
    assert result.exit_code == 0, result.output
    assert json.loads((folder / "adapter_config.json").read_text())["target_modules"] == ["q_proj", "v_proj"]
    assert result.stderr == f"wrote {folder / 'adapter_config.json'}\n"
    # the usual --force rule holds inside the folder; without the slash a folder is refused, with a hint
    one_line_error(run("resolve", LLAMA, "-r", "q", "-f", "peft", "-o", f"{folder}/"), "pass --force")
    one_line_error(run("resolve", LLAMA, "-r", "q", "-f", "peft", "-o", str(folder)), f"or {folder}/ to write")
    assert run("resolve", LLAMA, "-r", "q", "--json", "-o", f"{folder}/").exit_code == 0
    assert json.loads((folder / "lora-registry.json").read_text())["target_modules"] == ["q_proj"]
    # a trailing slash on a folder that does not exist: exit 2, and no file called "missing"
    missing = tmp_path / "missing"
    one_line_error(run("resolve", LLAMA, "-r", "q", "-f", "peft", "-o", f"{missing}/"), "no such folder")
    assert not missing.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # scaffold names its file after the model type
    model = write_config(tmp_path / "models", TINY_QWEN3_NEXT, "qwen3-next")
    scaffolded = run("scaffold", model, "-o", f"{folder}/")
    assert scaffolded.exit_code == 0, scaffolded.output
    assert "[architectures.qwen3_next]" in (folder / "qwen3_next.toml").read_text()


def test_quiet_leaves_only_errors_on_stderr(tmp_path):
    out = tmp_path / "adapter_config.json"
    loud = run("resolve", LLAMA, "-r", "q", "-f", "peft", "-o", str(out), "--verify")
    assert loud.exit_code == 0 and "fast path verified" in loud.stderr and "wrote" in loud.stderr
    quiet = run("resolve", LLAMA, "-r", "q", "-f", "peft", "-o", str(out), "--force", "--verify", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "" and out.exists()
    one_line_error(run("resolve", LLAMA, "-r", "zz", "-q"), "unknown role")
    # a third-party plugin that fails to load: one warning line, none with -q; the run goes on
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lora_registry]\nbroken = broken_plugin_module_that_does_not_exist\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    for args, lines in ((["roles"], 1), (["roles", "-q"], 0), (["plugins", "--json", "--quiet"], 0)):
        done = subprocess.run(
            [sys.executable, "-m", "lora_registry", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0 and done.stdout, done.stderr
        assert len(done.stderr.splitlines()) == lines, done.stderr
        assert all(line.startswith("warning: plugin 'broken'") for line in done.stderr.splitlines())
