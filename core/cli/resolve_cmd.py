"""``lora-registry resolve``: roles -> exact target names, a LoRA config, and its cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from . import adapter_options as opt
from .common import (
    check_output,
    format_option,
    handle_errors,
    json_option,
    note,
    output_option,
    output_path,
    pick_format,
    quiet_option,
    write_atomic,
)

#: peft is adapter_config.json; the trainers' formats are written by lora_registry.exports
FORMATS = ("table", "json", "peft", "axolotl", "llamafactory", "unsloth", "torchtune", "mlx-lm", "ms-swift", "litgpt")
#: the file ``-o FOLDER/`` writes in FOLDER, per format: the name each tool looks for, or a plain one
FILE_NAMES = {
    "table": "lora-registry.txt",
    "json": "lora-registry.json",
    "peft": "adapter_config.json",
    "axolotl": "axolotl.yaml",
    "llamafactory": "llamafactory.yaml",
    "unsloth": "unsloth.py",
    "torchtune": "torchtune.yaml",
    "mlx-lm": "mlx-lm.yaml",
    "ms-swift": "ms-swift.json",
    "litgpt": "litgpt.yaml",
}


@handle_errors
def resolve(
    model: str = opt.MODEL,
    roles: list[str] | None = opt.ROLES,
    rank: int | None = opt.RANK,
    alpha: float | None = opt.ALPHA,
    rank_for: list[str] | None = opt.RANK_FOR,
    alpha_for: list[str] | None = opt.ALPHA_FOR,
    preset: str | None = opt.PRESET,
    presets_file: Path | None = opt.PRESETS_FILE,
    scope: list[str] | None = opt.SCOPE,
    strict: bool = opt.STRICT,
    layers: list[str] | None = opt.LAYERS,
    last_layers: int | None = opt.LAST_LAYERS,
    include: list[str] | None = opt.INCLUDE,
    exclude: list[str] | None = opt.EXCLUDE,
    dropout: float = opt.DROPOUT,
    bias: str = opt.BIAS,
    rslora: bool = opt.RSLORA,
    dora: bool = opt.DORA,
    init: str = opt.INIT,
    modules_to_save: list[str] | None = opt.MODULES_TO_SAVE,
    output_format: str = format_option(
        FORMATS,
        "table, json, peft (adapter_config.json), axolotl, llamafactory, unsloth, torchtune, mlx-lm, ms-swift "
        "or litgpt.",
    ),
    task_type: str | None = typer.Option(
        None,
        "--task-type",
        help="task_type in adapter_config.json: CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS, QUESTION_ANS, "
        "FEATURE_EXTRACTION or none (default: the one for the model class built, e.g. CAUSAL_LM).",
        metavar="TYPE",
    ),
    as_json: bool = json_option(),
    output: str | None = output_option("the format's usual file (adapter_config.json for peft)"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output file."),
    trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
    revision: str | None = opt.REVISION,
    plugin: str | None = opt.PLUGIN,
    verify: bool = opt.VERIFY,
    no_cache: bool = opt.NO_CACHE,
    quiet: bool = quiet_option(),
) -> None:
    """Resolve roles onto MODEL's module names and print the LoRA config that adapts exactly those."""
    output_format = pick_format(output_format, as_json, FORMATS)
    target = output_path(output, FILE_NAMES.get(output_format, f"lora-registry.{output_format}"))
    check_output(target, force)
    plan = opt.adapter_plan_from(locals())  # every option above that chooses targets and settings
    warned = list(plan.warnings)
    text = None
    if output_format == "json":
        text = json.dumps(plan.to_dict(), indent=2) + "\n"
    elif output_format == "peft":
        text = plan.adapter_config()
    elif output_format != "table":
        text, said = export_text(output_format, plan)
        warned += said
    else:
        from .tables import resolution_table

        renderable = resolution_table(plan)  # everything is checked before anything is printed
    if target is not None:
        if text is None:
            from .tables import render_plain

            text = render_plain(renderable)
        write_atomic(target, text)
    elif text is not None:
        typer.echo(text, nl=False)
    else:
        from .tables import print_all

        print_all(renderable)
    for warning in warned:  # whatever the format: a file or a table on stdout must not hide them
        note(f"warning: {warning}")
    if target is not None:
        note(f"wrote {target}")


def export_text(name: str, plan: Any) -> tuple[str, list[str]]:
    """A trainer's export as text, and what the exporter warned about (``ExportWarning``)."""
    import warnings

    from ..exports import EXPORTS, ExportWarning, render

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExportWarning)
        text = render(name, EXPORTS[name](plan))
    said = [str(w.message) for w in caught if issubclass(w.category, ExportWarning)]
    for w in caught:  # anything else is not ours to reword
        if not issubclass(w.category, ExportWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return text, said
