"""Tables at widths 60, 80, 120 and piped: no module name, regex or role is ever broken across lines, less
important columns go first, the PEFT targets print whole on their own lines; inspect says why a leaf has
no role; shares count a tied LM head once."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

import lora_registry as lr
from helpers import EXAMPLES, FIXTURES, TINY_LLAVA, TINY_QWEN3_NEXT, write_config
from lora_registry.cli import app
from lora_registry.cli.compare_cmd import STANDARD, compare_row
from lora_registry.cli.tables import UNWRAPPED, compare_table, group_names, inspect_tables, resolution_table
from lora_registry.settings import LoraSettings

WIDTHS = [60, 80, 120, None]  # None: piped, or written to a file
BOX = set("│┃┏┓┗┛└┘┡┩┳┻╇╈━─")
LLAMA = str(EXAMPLES / "llama-3.1-8b")


def render(renderables: list, width: int | None) -> str:
    """What ``print_all`` writes at ``width`` columns (``None``: unwrapped, as when piped)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or UNWRAPPED, color_system=None)
    for renderable in renderables:
        console.print(renderable, crop=False)
    return buffer.getvalue()


def assert_whole(text: str, tokens, width: int | None) -> None:
    """Every token on one line of ``text``, and every table line within ``width``."""
    lines = text.splitlines()
    for token in tokens:
        assert any(token in line for line in lines), f"{token!r} is broken or missing:\n{text}"
    if width is not None:
        for line in lines:
            if BOX & set(line):
                assert len(line) <= width, f"table line of {len(line)} columns at {width}:\n{text}"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    llava = lr.inspect(write_config(folder, TINY_LLAVA, "llava"))
    hybrid = lr.inspect(write_config(folder, TINY_QWEN3_NEXT, "qwen3-next"))
    return {"llava": llava, "hybrid": hybrid, "llama": lr.inspect(LLAMA, fast=True)}


def _tokens(plan) -> list[str]:
    result = plan.resolution
    names = [name for group in result.names_by_role().values() for name in group_names(group)]
    targets = plan.to_dict()["target_modules"]
    return [*names, *result.roles, targets if isinstance(targets, str) else json.dumps(sorted(targets))]


@pytest.mark.parametrize("width", WIDTHS)
def test_resolve_never_breaks_a_name_or_the_regex(models, width):
    language = lr.resolve(models["llava"], "q,v,o").plan()  # language scope only: a regex
    everything = lr.resolve(models["llava"], "attention,ffn", scope="language,vision").plan()
    for plan in (language, everything):
        text = render(resolution_table(plan), width)
        assert_whole(text, _tokens(plan), width)
    # the regex is a line of its own, exactly: a triple-click copies it
    regex = language.to_dict()["target_modules"]
    assert isinstance(regex, str) and regex in render(resolution_table(language), width).splitlines()


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_and_compare_never_break_a_name_a_role_or_a_reason(models, width):
    hybrid = models["hybrid"]
    text = render(inspect_tables(hybrid, why=True), width)
    names = {re.sub(r"\.\d+\.", ".N.", leaf.name, count=1) for leaf in hybrid.leaves}
    words = {word for reason in hybrid.null_reasons.values() for word in reason.split()}
    assert_whole(text, [*names, *filter(None, hybrid.roles.values()), *words], width)
    registry = hybrid.vocabulary
    rows = [compare_row(hybrid, choice, registry, "language") for choice in STANDARD]
    text = render(compare_table(hybrid, rows, registry), width)
    short = {roles[0]: alias for alias, roles in registry.aliases.items() if len(roles) == 1}  # as compare shows them
    assert_whole(text, [short.get(role, role) for row in rows for role in row.get("roles", [])], width)


def _headers(text: str) -> list[str]:
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in header.strip("┃").split("┃")]


def test_less_important_columns_go_first(models):
    plan = lr.resolve(models["llama"], "q,v,ffn").plan(LoraSettings(r=8, default_ranks={"ffn": 4}))
    assert _headers(render(resolution_table(plan), None)) == ["role", "leaves", "names", "rank", "trainable"]
    assert _headers(render(resolution_table(plan), 80)) == ["role", "names", "rank", "trainable"]
    narrow = render(resolution_table(plan), 70)  # trainable counts shortened before they go
    assert _headers(narrow) == ["role", "names", "trainable"] and "10.5M" in narrow
    assert _headers(render(resolution_table(plan), 60)) == ["role", "names"]
    # too narrow for any table: one record per row, names whole
    text = render(resolution_table(plan), 40)
    assert "  names: model.layers.{0-31}.self_attn.q_proj" in text.splitlines() and not BOX & set(text)


def test_the_cli_is_unwrapped_when_piped_and_fits_columns_otherwise(tmp_path):
    folder = write_config(tmp_path, TINY_QWEN3_NEXT, "qwen3-next")
    runner = CliRunner()
    piped = runner.invoke(app, ["inspect", folder, "--why"], env={"COLUMNS": None})
    assert piped.exit_code == 0, piped.output
    assert max(len(line) for line in piped.stdout.splitlines()) > 120  # not capped at 80, nor at any width
    for width in (60, 80, 120):
        narrow = runner.invoke(app, ["inspect", folder, "--why"], env={"COLUMNS": str(width)})
        assert narrow.exit_code == 0
        assert all(len(line) <= width for line in narrow.stdout.splitlines() if BOX & set(line))
        assert "model.layers.N.linear_attn.in_proj_qkvz" in narrow.stdout


def test_inspect_says_why_a_leaf_has_no_role(models, tmp_path):
    folder = write_config(tmp_path, TINY_QWEN3_NEXT, "qwen3-next")
    doc = json.loads(CliRunner().invoke(app, ["inspect", folder, "--json"]).stdout)
    by_name = {module["name"]: module for module in doc["modules"]}
    conv = by_name["model.layers.0.linear_attn.conv1d"]
    assert conv["role"] is None and "convolution inside a token mixer" in conv["null_reason"]
    assert by_name["model.layers.3.self_attn.q_proj"]["null_reason"] is None
    table = CliRunner().invoke(app, ["inspect", folder, "--why"]).stdout
    assert "why no role" in table and "inside a token mixer" in " ".join(table.split())
    assert "why no role" not in CliRunner().invoke(app, ["inspect", folder]).stdout


def test_shares_count_a_tied_lm_head_once():
    tied = lr.inspect(str(FIXTURES / "gpt2"), fast=True)
    totals = tied.parameter_totals()
    assert totals["lm-head"] == 0 and sum(totals.values()) <= tied.base_parameters
    text = render(inspect_tables(tied), None)
    assert "tied to transformer.wte" in text
    shares = [float(share) for share in re.findall(r"(\d+\.\d+)%", text.split("base parameters by role")[1])]
    assert sum(shares) <= 100.0 + 0.01 * len(shares)
    untied = lr.inspect(LLAMA, fast=True)  # Llama-3.1-8B has its own head
    assert untied.parameter_totals()["lm-head"] == 128256 * 4096
