"""Tables and text for the table formats, laid out for the width they are printed at.

A module name, a regex or a role is never broken across lines, not even at a dot. ``Grid`` picks
the widest of its layouts that fits (less important columns dropped or shortened first) and falls
back to one record per row when even its narrowest does not; prose wraps between words only;
``whole`` lines (the PEFT targets) are printed whole on lines of their own. The width is the
terminal's, or ``$COLUMNS``; piped output is not wrapped at all.
"""

from __future__ import annotations

import io
import os
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

#: the width piped output and files are laid out for: no wrapping in practice
UNWRAPPED = 100_000


def _layers(indices: Iterable[int | None]) -> str:
    # imported here: roles and plugins print tables too, and need neither resolution nor inspection
    from ..resolution import format_layers

    return format_layers(indices)


def console() -> Console:
    """The stdout console: the terminal's width, or ``$COLUMNS``; piped output is not wrapped."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS", "").isdigit()
    return Console(width=UNWRAPPED if piped else None)


def render_plain(renderables: list[Any]) -> str:
    """Render tables to plain text (for --output), unwrapped."""
    buffer = io.StringIO()
    plain = Console(file=buffer, width=UNWRAPPED, color_system=None, force_terminal=False)
    for renderable in renderables:
        plain.print(renderable, crop=False)
    return buffer.getvalue()


def print_all(renderables: list[Any]) -> None:
    """Print each renderable on its own lines; a line longer than the width is left for the terminal to fold."""
    out = console()
    for renderable in renderables:
        out.print(renderable, crop=False)


# ----------------------------------------------------------------------------- building blocks


@dataclass(frozen=True)
class Line:
    """A line of prose, wrapped between words at the width (``whole``: never wrapped, for a regex or a list of names)."""

    text: str
    style: str | None = None
    whole: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        style = console.get_style(self.style) if self.style else None
        lines = [self.text] if self.whole else _wrap(self.text, options.max_width)
        for line in lines:
            yield Segment(line, style)
            yield Segment.line()


def _wrap(text: str, width: int) -> list[str]:
    # words longer than the width stay whole: the terminal folds them, nothing here breaks them
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


@dataclass(frozen=True)
class Column:
    """A column of a ``Grid``: ``key`` into the rows and its header. ``wrap`` says where a cell may break:
    ``None`` nowhere (module names, regexes, numbers: each line of a cell stays whole), ``"words"`` between
    words (prose, lists with spaces), ``","`` after a comma (``q,v,ffn``, ``0-7,24-31``: still copyable)."""

    key: str
    header: str
    wrap: str | None = None
    justify: str = "left"

    def pieces(self, line: str) -> list[str]:
        """The unbreakable pieces of one line of a cell."""
        if self.wrap == "words":
            return line.split()
        if self.wrap == ",":
            return [piece + "," for piece in line.split(",")[:-1]] + [line.split(",")[-1]]
        return [line]


@dataclass
class Grid:
    """A table laid out when printed: the first of ``layouts`` (tuples of column keys) that fits the width
    with no cell broken, else one record per row. Rows map column keys to text (``\\n`` between lines)."""

    title: str | None
    columns: Sequence[Column]
    layouts: Sequence[tuple[str, ...]]
    rows: list[dict[str, str]] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)

    def add_row(self, style: str | None = None, **cells: str) -> None:
        """Add a row: ``key=text`` for each column (missing ones are empty)."""
        self.rows.append(cells)
        self.styles.append(style)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        if self.title:
            yield Line(self.title, style="bold")
        for keys in self.layouts:
            widths = self._fit(keys, width)
            if widths is not None:
                yield self._table(keys, widths)
                return
        yield from self._records(width)

    def column(self, key: str) -> Column:
        """The column called ``key``."""
        return next(c for c in self.columns if c.key == key)

    def _fit(self, keys: tuple[str, ...], width: int) -> list[int] | None:
        """Column widths (without padding) for ``keys`` within ``width``, or None if some cell would break."""
        natural, least = [], []
        for key in keys:
            column = self.column(key)
            cells = [column.header] + [row.get(key, "") for row in self.rows]
            lines = [line for cell in cells for line in cell.split("\n")]
            natural.append(max(len(line) for line in lines))
            least.append(max(len(piece) for line in lines for piece in column.pieces(line)))
        chrome = 3 * len(keys) + 1  # rich's default box: a border and two padding spaces per column, one more border
        if sum(least) + chrome > width:
            return None
        widths = list(natural)
        excess = sum(widths) + chrome - width
        while excess > 0:  # narrow the widest wrapping column, one character at a time
            i = max((i for i in range(len(keys)) if widths[i] > least[i]), key=lambda i: widths[i])
            widths[i] -= 1
            excess -= 1
        return widths

    def _table(self, keys: tuple[str, ...], widths: list[int]) -> Table:
        table = Table()
        for key, width in zip(keys, widths):
            column = self.column(key)
            no_wrap = column.wrap != "words"
            table.add_column(column.header, justify=column.justify, width=width, no_wrap=no_wrap)  # type: ignore[arg-type]
        for row, style in zip(self.rows, self.styles):
            cells = []
            for key, width in zip(keys, widths):
                column, cell = self.column(key), row.get(key, "")
                if column.wrap == ",":  # rich breaks at spaces only: lay out a comma list here
                    cell = "\n".join(_fill(column.pieces(line), width) for line in cell.split("\n"))
                cells.append(Text(cell))  # Text, not a string: no markup in names
            table.add_row(*cells, style=style)
        return table

    def _records(self, width: int) -> Iterator[Line]:
        """Each row as ``first cell`` then ``  header: value`` lines; names stay whole, prose wraps."""
        first, *rest = self.layouts[0]
        for row, style in zip(self.rows, self.styles):
            yield Line(row.get(first, ""), style=style or "bold", whole=True)
            for key in rest:
                value = row.get(key, "")
                if not value:
                    continue
                column = self.column(key)
                if "\n" in value:
                    yield Line(f"  {column.header}:", whole=True)
                    yield from (Line(f"    {line}", whole=True) for line in value.split("\n"))
                elif column.wrap == "words":
                    for i, line in enumerate(_wrap(f"{column.header}: {value}", max(width - 2, 20))):
                        yield Line(f"  {line}" if i == 0 else f"    {line}", whole=True)
                else:
                    yield Line(f"  {column.header}: {value}", whole=True)


def _fill(pieces: list[str], width: int) -> str:
    """Pieces joined into lines of at most ``width`` (a piece longer than that on a line of its own)."""
    lines: list[str] = []
    for piece in pieces:
        if lines and len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def targets_lines(label: str, value: str | Sequence[str]) -> list[Line]:
    """``label:`` and, whole on the next line, a regex as it is or a list as JSON: each can be copied as it is."""
    import json

    if isinstance(value, str):
        return [Line(f"{label} (a regex):"), Line(value, whole=True)]
    return [Line(f"{label}:"), Line(json.dumps(sorted(value)), whole=True)]


# ----------------------------------------------------------------------------- the commands' tables


def resolution_table(plan: Any) -> list[Any]:
    """Per-role modules, rank and trainable parameters, what else trains, then cost and PEFT targets."""
    result, cost, options = plan.resolution, plan.cost, plan.settings
    doc = plan.to_dict()
    mm = result.model_map
    grid = Grid(
        f"{mm.model} ({mm.model_type}, plugin {mm.plugin})",
        [
            Column("role", "role"),
            Column("leaves", "leaves", justify="right"),
            Column("names", "names"),
            Column("rank", "rank", justify="right"),
            Column("trainable", "trainable", justify="right"),
            Column("short", "trainable", justify="right"),
        ],
        [
            ("role", "leaves", "names", "rank", "trainable"),
            ("role", "names", "rank", "trainable"),
            ("role", "names", "rank", "short"),
            ("role", "names", "short"),
            ("role", "names"),
        ],
    )
    names_by_role = result.names_by_role()
    for role, names in names_by_role.items():
        grid.add_row(
            role=role,
            leaves=str(len(names)),
            names="\n".join(group_names(names)),
            rank=str(plan.rank_of(role)),
            trainable=f"{cost.lora[role]:,}",
            short=fmt_count(cost.lora[role]),
        )
    extras = [("DoRA magnitudes", "", "one per output feature", cost.dora)] if cost.dora else []
    if cost.biases:
        extras.append(("biases", "", f"bias={options.bias}", cost.biases))
    extras.extend(("modules_to_save", "1", name, count) for name, count in cost.modules_to_save.items())
    for role, leaves, names, count in extras:
        grid.add_row(role=role, leaves=leaves, names=names, trainable=f"{count:,}", short=fmt_count(count))
    total = str(sum(len(v) for v in names_by_role.values()))
    grid.add_row("bold", role="total", leaves=total, trainable=f"{cost.total:,}", short=fmt_count(cost.total))
    lines: list[Any] = [grid, Line(f"trainable parameters: {cost.total:,}{_share(cost)}")]
    memory = ", ".join(f"{precision} {fmt_bytes(cost.memory(precision)['total'])}" for precision in ("fp32", "bf16"))
    lines.append(Line(f"memory for weights + gradients + AdamW states: {memory}"))
    lines.append(
        Line(
            "as PEFT allocates them on a bf16 model (LoRA and DoRA fp32, biases and saved copies bf16): "
            + fmt_bytes(cost.adapter_memory()["total"])
        )
    )
    if cost.base_weights:
        weights = cost.base_weights
        lines.append(
            Line(
                f"base model weights: bf16 {fmt_bytes(weights['bf16'])}, 8-bit {fmt_bytes(weights['8bit'])}, "
                f"4-bit NF4 {fmt_bytes(weights['4bit'])}, NF4 + double quantization "
                f"{fmt_bytes(weights['4bit_double_quant'])}"
            )
        )
    lines.extend(targets_lines("target_modules", doc["target_modules"]))
    if doc["target_parameters"]:
        lines.extend(targets_lines("target_parameters", doc["target_parameters"]))
    if plan.layers_to_transform is not None:
        layers_pattern = plan.layers_pattern
        shown = layers_pattern if isinstance(layers_pattern, str) else ", ".join(layers_pattern or [])
        pattern = f", layers_pattern: {shown}" if layers_pattern is not None else ""
        lines.append(Line(f"layers_to_transform: {_layers(plan.layers_to_transform)}{pattern}"))
    if plan.modules_to_save:
        lines.extend(targets_lines("modules_to_save", plan.modules_to_save))
    outside = result.outside_scope()
    if outside:
        counts = ", ".join(f"{n:,} {scope}" for scope, n in outside.items())
        wider = ",".join([*result.scopes, *outside])
        lines.append(
            Line(
                f"note: scope {','.join(result.scopes)} leaves out {counts} leaves of these roles "
                f"(--scope {wider} adapts them too)"
            )
        )
    return lines  # warnings go to stderr (resolve prints them whatever the format)


def compare_table(model_map: Any, rows: list[dict[str, Any]], registry: Any) -> list[Any]:
    """``compare``: one row per choice (``compare_cmd.compare_row``); notes and reasons for n/a below."""
    short = {roles[0]: alias for alias, roles in registry.aliases.items() if len(roles) == 1}
    grid = Grid(
        f"{model_map.model} ({model_map.model_type}, plugin {model_map.plugin}), "
        f"{model_map.base_parameters:,} base parameters",
        [
            Column("choice", "choice"),
            Column("roles", "roles", wrap=","),
            Column("rank", "rank"),
            *(Column(key, key, justify="right") for key in ("trainable", "share", "fp32", "bf16")),
        ],
        [
            ("choice", "roles", "rank", "trainable", "share", "fp32", "bf16"),
            ("choice", "roles", "rank", "trainable", "share", "bf16"),
            ("choice", "roles", "rank", "trainable", "share"),
            ("choice", "roles", "rank", "trainable"),
            ("choice", "roles", "trainable"),
        ],
    )
    notes: list[Any] = []
    for row in rows:
        if "error" in row:
            grid.add_row(choice=row["choice"], roles="n/a", trainable="n/a", share="n/a", fp32="n/a", bf16="n/a")
            notes.append(Line(f"{row['choice']}: n/a: {row['error']}", style="yellow"))
            continue
        memory = row["memory_bytes"]
        grid.add_row(
            choice=row["choice"],
            roles=",".join(short.get(role, role) for role in row["roles"]),
            rank=row["rank"],
            trainable=f"{row['trainable_parameters']:,}",
            share=f"{100 * row['share']:.3f}%" if row["share"] is not None else "-",
            fp32=fmt_bytes(memory["fp32"]),
            bf16=fmt_bytes(memory["bf16"]),
        )
        notes.extend(Line(f"{row['choice']}: {warning}", style="yellow") for warning in row["warnings"])
    caption = Line("fp32 / bf16: adapter weights + gradients + AdamW states (torch keeps them in the parameter dtype)")
    return [grid, caption, *notes]


def inspect_tables(model_map: Any, why: bool = False) -> list[Any]:
    """Leaves grouped across layers (with ``why``: why a leaf has no role), then parameter totals by role."""
    grid = Grid(
        f"{model_map.model} ({model_map.model_type}), answered by plugin {model_map.plugin}",
        [
            Column("name", "name"),
            Column("role", "role"),
            Column("kind", "kind"),
            Column("shape", "shape"),
            Column("layers", "layers", wrap=","),
            Column("scope", "scope"),
            Column("why", "why no role", wrap="words"),
        ],
        _drop_in_turn(("name", "role", "kind", "shape", "layers", "scope"), ("kind", "scope", "shape", "layers"), why),
    )
    groups: dict[tuple[Any, ...], list[int | None]] = {}
    for leaf in model_map.leaves:
        role = model_map.roles.get(leaf.name)
        reason = model_map.null_reasons.get(leaf.name, "") if role is None else ""
        key = (_generalise(leaf.name), role, leaf.kind, tuple(leaf.shape), leaf.scope, reason)
        groups.setdefault(key, []).append(leaf.layer)
    for (name, role, kind, shape, scope, reason), layers in groups.items():
        grid.add_row(
            name=name,
            role=role or "-",
            kind=kind,
            shape="x".join(map(str, shape)),
            layers=_layers(layers),
            scope=scope,
            why=reason,
        )
    totals = Grid(
        "base parameters by role",
        [
            Column("role", "role"),
            Column("parameters", "parameters", justify="right"),
            Column("share", "share", wrap="words", justify="right"),
        ],
        [("role", "parameters", "share")],
    )
    all_params = model_map.base_parameters or 1
    tied = tied_roles(model_map)
    for role, count in model_map.parameter_totals().items():
        share = tied[role] if role in tied else f"{100 * count / all_params:.2f}%"
        totals.add_row(role=role, parameters=f"{count:,}", share=share)
    out: list[Any] = [grid, totals, Line(f"total parameters: {model_map.base_parameters:,}")]
    if not why and model_map.null_reasons:
        out.append(Line("(--why: why a leaf has no role)"))
    from ..limits import lora_limits
    from ..resolution import collapse_names

    blocked: dict[str, list[str]] = {}
    for name, limit in lora_limits(model_map).items():
        if limit.blocking:
            blocked.setdefault(limit.why, []).append(name)
    for reason, names in blocked.items():
        shown = ", ".join(collapse_names(names)[:3])
        out.append(Line(f"note: LoRA cannot train {shown} here (aliases leave it out): {reason}"))
    for warning in model_map.warnings:
        out.append(Line(f"warning: {warning}", style="yellow"))
    return out


def tied_roles(model_map: Any) -> dict[str, str]:
    """``{role: "tied to NAME"}`` for roles whose every leaf holds a weight tied to another (a tied LM head)."""
    tree = model_map.tree
    by_role: dict[str, set[str]] = {}
    for leaf in model_map.leaves:
        weight = leaf.name + ".weight" if leaf.kind == "module" else leaf.name
        role = model_map.roles.get(leaf.name) or "null"
        if weight not in tree.tied:
            by_role[role] = {""}  # one untied leaf: the role holds parameters of its own
        elif by_role.get(role) != {""}:
            by_role.setdefault(role, set()).add(tree.weight_ties.get(weight, "").removesuffix(".weight"))
    return {
        role: "tied" + (f" to {', '.join(sorted(sources))}" if all(sources) else "")
        for role, sources in by_role.items()
        if sources != {""}
    }


def _drop_in_turn(keys: tuple[str, ...], drop: tuple[str, ...], why: bool) -> list[tuple[str, ...]]:
    """Layouts: all of ``keys`` (plus ``why`` at the end when asked), then without each of ``drop`` in turn."""
    tail = ("why",) if why else ()
    layouts = [keys + tail]
    for key in drop:
        keys = tuple(k for k in keys if k != key)
        layouts.append(keys + tail)
    return layouts


# ----------------------------------------------------------------------------- formatting


def group_names(names: list[str], limit: int = 3) -> list[str]:
    """Collapse layer indices: ``model.layers.{0-31}.self_attn.q_proj``."""
    groups: dict[str, list[int]] = {}
    for name in names:
        match = re.search(r"\.(\d+)\.", name)
        key = name if not match else name[: match.start(1)] + "{}" + name[match.end(1) :]
        groups.setdefault(key, []).append(int(match.group(1)) if match else -1)
    out = [key.replace("{}", "{" + _layers(idx) + "}") if "{}" in key else key for key, idx in groups.items()]
    return out if len(out) <= limit else out[:limit] + [f"... {len(out) - limit} more"]


def fmt_bytes(n: int) -> str:
    """``1536`` -> ``1.50 KiB`` (binary units)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{n} B" if i == 0 else f"{value:.2f} {units[i]}"


def fmt_count(n: int) -> str:
    """``3407872`` -> ``3.41M``: a count in a narrow column."""
    for size, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _share(cost: Any) -> str:
    return f" ({100 * cost.share:.3f}% of {cost.base_parameters:,})" if cost.share is not None else ""


def _generalise(name: str) -> str:
    return re.sub(r"\.(\d+)\.", ".N.", name, count=1)


def memory_tables(plan: Any) -> list[Any]:
    """``plan``: the breakdown of the peak, the peaks, the verdict on the GPU, then the assumptions."""
    from ..memory import CATEGORIES

    s = plan.settings
    title = (
        f"{plan.model} ({plan.model_type}): seq {s.seq_len} x batch {s.batch}, {s.dtype}, quant {s.quant}, "
        f"recipe {s.recipe}{', checkpointing' if s.gradient_checkpointing else ''}{', packed' if s.packed else ''}"
    )
    table = Grid(
        title,
        [
            Column("what", f"at the peak (during {plan.phase})", wrap="words"),
            Column("memory", "memory", justify="right"),
            Column("bytes", "bytes", justify="right"),
        ],
        [("what", "memory", "bytes"), ("what", "memory")],
    )
    for key in CATEGORIES:
        value = int(plan.breakdown.get(key, 0))
        table.add_row(what=key.replace("_", " "), memory=fmt_bytes(value), bytes=f"{value:,}")
    table.add_row("bold", what="peak allocated", memory=fmt_bytes(plan.allocated), bytes=f"{plan.allocated:,}")
    table.add_row(what="peak reserved (estimate)", memory=fmt_bytes(plan.reserved), bytes=f"{plan.reserved:,}")
    table.add_row(
        what="CUDA context (allowance)", memory=fmt_bytes(plan.context_bytes), bytes=f"{plan.context_bytes:,}"
    )
    out: list[Any] = [table, Line(f"trainable parameters: {plan.trainable_parameters:,}")]
    if plan.gpu_name is not None:
        need = plan.reserved + plan.context_bytes
        out.append(
            Line(
                f"{plan.gpu_name} ({fmt_bytes(plan.gpu_total or 0)}): {plan.fits} "
                f"(reserved + context {fmt_bytes(need)}); largest seq_len at batch {s.batch}: "
                f"{plan.max_seq_len if plan.max_seq_len is not None else 'none'}; largest batch at seq_len "
                f"{s.seq_len}: {plan.max_batch if plan.max_batch is not None else 'none'}",
                style={"fits": "green", "tight": "yellow"}.get(plan.fits or "", "red"),
            )
        )
    out.append(Line("assumptions:"))
    out.extend(Line(f"- {a}") for a in plan.assumptions)
    return out
