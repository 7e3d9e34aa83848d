"""rich renderings for the table formats."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _layers(indices) -> str:
    # imported here: roles and plugins print tables too, and need neither resolution nor inspection
    from ..resolution import format_layers

    return format_layers(indices)


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


def resolution_table(plan: Any) -> list[Any]:
    """Per-role modules, rank and trainable parameters, what else trains, then cost, PEFT targets and warnings."""
    result, cost, options = plan.resolution, plan.cost, plan.settings
    doc = plan.to_dict()
    table = Table(title=f"{result.model_map.model} ({result.model_map.model_type}, plugin {result.model_map.plugin})")
    table.add_column("role")
    table.add_column("leaves", justify="right")
    table.add_column("names", overflow="fold")
    table.add_column("rank", justify="right")
    table.add_column("trainable", justify="right")
    for role, names in result.names_by_role().items():
        table.add_row(
            role, str(len(names)), ", ".join(group_names(names)), str(plan.rank_of(role)), f"{cost.lora[role]:,}"
        )
    if cost.dora:
        table.add_row("DoRA magnitudes", "", "one per output feature of each adapted module", "", f"{cost.dora:,}")
    if cost.biases:
        table.add_row("biases", "", f"bias={options.bias}", "", f"{cost.biases:,}")
    for name, count in cost.modules_to_save.items():
        table.add_row("modules_to_save", "1", name, "", f"{count:,}")
    table.add_row(
        "total", str(sum(len(v) for v in result.names_by_role().values())), "", "", f"{cost.total:,}", style="bold"
    )
    lines: list[Any] = [table, Text(f"trainable parameters: {cost.total:,}{_share(cost)}")]
    memory = ", ".join(f"{precision} {fmt_bytes(cost.memory(precision)['total'])}" for precision in ("fp32", "bf16"))
    lines.append(Text(f"memory for weights + gradients + AdamW states: {memory}"))
    lines.append(
        Text(
            "as PEFT allocates them on a bf16 model (LoRA and DoRA fp32, biases and saved copies bf16): "
            + fmt_bytes(cost.adapter_memory()["total"])
        )
    )
    if cost.base_weights:
        weights = cost.base_weights
        lines.append(
            Text(
                f"base model weights: bf16 {fmt_bytes(weights['bf16'])}, 8-bit {fmt_bytes(weights['8bit'])}, "
                f"4-bit NF4 {fmt_bytes(weights['4bit'])}, NF4 + double quantization "
                f"{fmt_bytes(weights['4bit_double_quant'])}"
            )
        )
    lines.append(Text(f"target_modules: {_fmt(doc['target_modules'])}"))
    if doc["target_parameters"]:
        lines.append(Text(f"target_parameters: {_fmt(doc['target_parameters'])}"))
    if plan.modules_to_save:
        lines.append(Text(f"modules_to_save: {_fmt(plan.modules_to_save)}"))
    for warning in result.warnings:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    return lines


def compare_table(model_map, rows: list[dict], registry) -> list[Any]:
    """``compare``: one row per choice (``compare_cmd.compare_row``); notes and reasons for n/a below."""
    short = {roles[0]: alias for alias, roles in registry.aliases.items() if len(roles) == 1}
    table = Table(
        title=f"{model_map.model} ({model_map.model_type}, plugin {model_map.plugin}), "
        f"{model_map.base_parameters:,} base parameters"
    )
    table.add_column("choice", no_wrap=True)
    table.add_column("roles", overflow="fold")
    table.add_column("rank", overflow="fold")
    for column in ("trainable", "share", "fp32", "bf16"):
        table.add_column(column, justify="right", no_wrap=True)
    notes: list[Any] = []
    for row in rows:
        if "error" in row:
            table.add_row(row["choice"], "n/a", "", "n/a", "n/a", "n/a", "n/a")
            notes.append(Text(f"{row['choice']}: n/a: {row['error']}", style="yellow"))
            continue
        memory = row["memory_bytes"]
        table.add_row(
            row["choice"],
            ",".join(short.get(role, role) for role in row["roles"]),
            row["rank"],
            f"{row['trainable_parameters']:,}",
            f"{100 * row['share']:.3f}%" if row["share"] is not None else "-",
            fmt_bytes(memory["fp32"]),
            fmt_bytes(memory["bf16"]),
        )
        notes.extend(Text(f"{row['choice']}: {warning}", style="yellow") for warning in row["warnings"])
    caption = Text("fp32 / bf16: adapter weights + gradients + AdamW states (torch keeps them in the parameter dtype)")
    return [table, caption, *notes]


def fmt_bytes(n: int) -> str:
    """``1536`` -> ``1.50 KiB`` (binary units)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{n} B" if i == 0 else f"{value:.2f} {units[i]}"


def _share(cost) -> str:
    return f" ({100 * cost.share:.3f}% of {cost.base_parameters:,})" if cost.share is not None else ""


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
        table.add_row(name, role or "-", kind, "x".join(map(str, shape)), _layers(layers), scope)
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
        key = name if not match else name[: match.start(1)] + "{}" + name[match.end(1) :]
        groups.setdefault(key, []).append(int(match.group(1)) if match else -1)
    out = [key.replace("{}", "{" + _layers(idx) + "}") if "{}" in key else key for key, idx in groups.items()]
    return out if len(out) <= limit else out[:limit] + [f"... {len(out) - limit} more"]


def _generalise(name: str) -> str:
    return re.sub(r"\.(\d+)\.", ".N.", name, count=1)


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    return ", ".join(sorted(value))


def memory_tables(plan) -> list[Any]:
    """``plan``: the breakdown of the peak, the peaks, the verdict on the GPU, then the assumptions."""
    from ..memory import CATEGORIES

    s = plan.settings
    title = (
        f"{plan.model} ({plan.model_type}): seq {s.seq_len} x batch {s.batch}, {s.dtype}, quant {s.quant}, "
        f"recipe {s.recipe}{', checkpointing' if s.gradient_checkpointing else ''}{', packed' if s.packed else ''}"
    )
    table = Table(title=title)
    table.add_column("at the peak (during " + plan.phase + ")")
    table.add_column("memory", justify="right")
    table.add_column("bytes", justify="right")
    for key in CATEGORIES:
        value = int(plan.breakdown.get(key, 0))
        table.add_row(key.replace("_", " "), fmt_bytes(value), f"{value:,}")
    table.add_row("peak allocated", fmt_bytes(plan.allocated), f"{plan.allocated:,}", style="bold")
    table.add_row("peak reserved (estimate)", fmt_bytes(plan.reserved), f"{plan.reserved:,}")
    table.add_row("CUDA context (allowance)", fmt_bytes(plan.context_bytes), f"{plan.context_bytes:,}")
    out: list[Any] = [table, Text(f"trainable parameters: {plan.trainable_parameters:,}")]
    if plan.gpu_name is not None:
        need = plan.reserved + plan.context_bytes
        out.append(
            Text(
                f"{plan.gpu_name} ({fmt_bytes(plan.gpu_total or 0)}): {plan.fits} "
                f"(reserved + context {fmt_bytes(need)}); largest seq_len at batch {s.batch}: "
                f"{plan.max_seq_len if plan.max_seq_len is not None else 'none'}; largest batch at seq_len "
                f"{s.seq_len}: {plan.max_batch if plan.max_batch is not None else 'none'}",
                style={"fits": "green", "tight": "yellow"}.get(plan.fits or "", "red"),
            )
        )
    out.append(Text("assumptions:\n" + "\n".join(f"- {a}" for a in plan.assumptions)))
    return out
