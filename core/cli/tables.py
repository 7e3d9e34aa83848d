"""rich renderings for the table formats."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def console() -> Console:
    """The stdout console (wide enough that long module names do not wrap into nonsense)."""
    return Console(soft_wrap=False)


def render_plain(renderables: list[Any]) -> str:
    """Render tables to plain text (for --output)."""
    buffer = io.StringIO()
    plain = Console(file=buffer, width=200, color_system=None, force_terminal=False)
    for renderable in renderables:
        plain.print(renderable)
    return buffer.getvalue()


def print_all(renderables: list[Any]) -> None:
    """Print each renderable on its own lines (rich would join consecutive Text objects)."""
    out = console()
    for renderable in renderables:
        out.print(renderable)


def resolution_table(result, rank: int, alpha: float | None, ranks: dict) -> list[Any]:
    """Per-role modules, rank and trainable parameters, then the PEFT targets and warnings."""
    by_role = result.trainable_by_role(rank, ranks)
    table = Table(title=f"{result.model_map.model} ({result.model_map.model_type}, plugin {result.model_map.plugin})")
    table.add_column("role")
    table.add_column("leaves", justify="right")
    table.add_column("names", overflow="fold")
    table.add_column("rank", justify="right")
    table.add_column("trainable", justify="right")
    for role, names in result.names_by_role().items():
        table.add_row(role, str(len(names)), ", ".join(group_names(names)), str(result.rank_of(role, rank, ranks)), f"{by_role[role]:,}")
    total = sum(by_role.values())
    base = result.model_map.base_parameters
    share = f" ({100 * total / base:.3f}% of {base:,})" if base else ""
    table.add_row("total", str(sum(len(v) for v in result.names_by_role().values())), "", "", f"{total:,}", style="bold")
    config = result.lora_config(r=rank, lora_alpha=alpha, ranks=ranks)
    lines = [table, Text(f"trainable parameters: {total:,}{share}")]
    lines.append(Text(f"target_modules: {_fmt(config.target_modules)}"))
    if config.target_parameters:
        lines.append(Text(f"target_parameters: {_fmt(config.target_parameters)}"))
    for warning in result.warnings:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    return lines


def inspect_tables(model_map) -> list[Any]:
    """Leaves grouped across layers, then parameter totals by role."""
    title = f"{model_map.model} ({model_map.model_type}), answered by plugin {model_map.plugin}"
    table = Table(title=title)
    for column in ("name", "role", "kind", "shape", "layers", "scope"):
        table.add_column(column, overflow="fold")
    groups: dict[tuple, list] = {}
    for leaf in model_map.leaves:
        key = (_generalise(leaf.name), model_map.roles.get(leaf.name), leaf.kind, tuple(leaf.shape), leaf.scope)
        groups.setdefault(key, []).append(leaf.layer)
    for (name, role, kind, shape, scope), layers in groups.items():
        table.add_row(name, role or "-", kind, "x".join(map(str, shape)), _ranges(layers), scope)
    totals = Table(title="base parameters by role")
    totals.add_column("role")
    totals.add_column("parameters", justify="right")
    totals.add_column("share", justify="right")
    all_params = model_map.base_parameters or 1
    for role, count in model_map.parameter_totals().items():
        totals.add_row(role, f"{count:,}", f"{100 * count / all_params:.2f}%")
    out: list[Any] = [table, totals, Text(f"total parameters: {model_map.base_parameters:,}")]
    for warning in model_map.warnings:
        out.append(Text(f"warning: {warning}", style="yellow"))
    return out


def group_names(names: list[str], limit: int = 3) -> list[str]:
    """Collapse layer indices: ``model.layers.{0-31}.self_attn.q_proj``."""
    groups: dict[str, list[int]] = {}
    for name in names:
        match = re.search(r"\.(\d+)\.", name)
        key = name if not match else name[: match.start(1)] + "{}" + name[match.end(1):]
        groups.setdefault(key, []).append(int(match.group(1)) if match else -1)
    out = [key.replace("{}", "{" + _ranges(idx) + "}") if "{}" in key else key for key, idx in groups.items()]
    return out if len(out) <= limit else out[:limit] + [f"... {len(out) - limit} more"]


def _generalise(name: str) -> str:
    return re.sub(r"\.(\d+)\.", ".N.", name, count=1)


def _ranges(values) -> str:
    nums = sorted({v for v in values if v is not None and v >= 0})
    if not nums:
        return "-"
    parts, start, prev = [], nums[0], nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    return ", ".join(sorted(value))
