"""``lora-registry resolve``: roles -> exact target names, a LoRA config, and its cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from ..settings import LoraSettings
from .common import (
    check_output,
    format_option,
    handle_errors,
    inspect_model,
    joined,
    json_option,
    list_option,
    no_cache_option,
    note,
    output_option,
    output_path,
    parse_pairs,
    pick_format,
    plugin_host,
    plugin_option,
    quiet_option,
    revision_option,
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
    model: str = typer.Argument(
        ..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."
    ),
    roles: list[str] | None = list_option(
        "--roles", "-r", help="Comma list of roles and aliases, e.g. q,v,ffn.", metavar="ROLES"
    ),
    rank: int | None = typer.Option(None, "--rank", help="LoRA rank for every role [default: 8, or the preset's]."),
    alpha: float | None = typer.Option(None, "--alpha", help="lora_alpha [default: 2 x rank, or the preset's]."),
    rank_for: list[str] | None = typer.Option(
        None, "--rank-for", help="Per-role rank, ROLE=N (repeatable).", metavar="ROLE=N"
    ),
    alpha_for: list[str] | None = typer.Option(
        None, "--alpha-for", help="Per-role alpha, ROLE=X (repeatable).", metavar="ROLE=X"
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="A preset from registry.toml, e.g. qv8-ffn4.", metavar="NAME"
    ),
    presets_file: Path | None = typer.Option(
        None, "--presets", help="A TOML file of your own [presets.NAME] tables (default: $LORA_REGISTRY_PRESETS)."
    ),
    scope: list[str] | None = list_option(
        "--scope", help="language, vision, audio, projector (comma list) [default: language].", metavar="SCOPES"
    ),
    strict: bool = typer.Option(False, "--strict", help="Refuse to widen q/k/v or gate/up onto a fused module."),
    layers: list[str] | None = list_option(
        "--layers", help="Only these layers of each stack, e.g. 0-7,24-31.", metavar="LAYERS"
    ),
    last_layers: int | None = typer.Option(None, "--last-layers", help="Only the last N layers of each stack."),
    dropout: float = typer.Option(0.0, "--dropout", help="lora_dropout, at least 0 and below 1."),
    bias: str = typer.Option("none", "--bias", help="none, all or lora_only: which biases train too."),
    rslora: bool = typer.Option(False, "--rslora", help="Rank-stabilised scaling (use_rslora)."),
    dora: bool = typer.Option(False, "--dora", help="DoRA (use_dora): adds a trainable magnitude per output feature."),
    init: str = typer.Option(
        "true",
        "--init",
        help="init_lora_weights: true, false, gaussian, pissa, pissa_niter_N, olora, eva, corda, orthogonal, mica, lora_ga.",
    ),
    modules_to_save: list[str] | None = list_option(
        "--modules-to-save", help="Comma list of roles or module names to train whole, e.g. lm-head.", metavar="MODULES"
    ),
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
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow a config's own Python code to run."
    ),
    revision: str | None = revision_option(),
    plugin: str | None = plugin_option(),
    verify: bool = typer.Option(
        False, "--verify", help="Build the model anyway and check the config-only fast path against it."
    ),
    no_cache: bool = no_cache_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Resolve roles onto MODEL's module names and print the LoRA config that adapts exactly those."""
    from ..resolution import parse_layer_selection, parse_scopes, resolve_map
    from ..roles import parse_roles

    output_format = pick_format(output_format, as_json, FORMATS)
    target = output_path(output, FILE_NAMES.get(output_format, f"lora-registry.{output_format}"))
    check_output(target, force)
    host = plugin_host(presets_file)  # plugins' fragments and the user's file add presets and architectures
    registry = host.registry
    found = registry.presets.get(preset) if preset is not None else None
    settings = LoraSettings.from_preset(  # every option value is checked here, once, before a model is read
        found,
        r=rank,
        lora_alpha=alpha,
        ranks=parse_pairs(rank_for, "--rank-for", int),
        alphas=parse_pairs(alpha_for, "--alpha-for", float),
        modules_to_save=joined(modules_to_save),
        task_type=task_type,
        **peft_options(dropout, bias, rslora, dora, init),
    )
    if preset is not None and found is None:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(registry.presets)}")
    role_spec = joined(roles) or (found.roles if found is not None else None)
    if not role_spec:
        raise ConfigError("give --roles (e.g. --roles q,v,ffn) or --preset (see `lora-registry roles`)")
    # Bad roles, scopes and layer ranges fail before any model is read or built.
    requests = parse_roles(role_spec, registry)
    scopes = parse_scopes(joined(scope) or "language")
    selection = parse_layer_selection(joined(layers), last_layers)
    model_map = inspect_model(
        model,
        host,
        trust_remote_code=trust_remote_code,
        plugin=plugin,
        verify=verify,
        cache=not no_cache,
        revision=revision,
    )
    plan = resolve_map(model_map, requests, scopes, strict=strict, layers=selection).plan(settings)
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


def peft_options(dropout: float, bias: str, rslora: bool, dora: bool, init: str) -> dict[str, Any]:
    """The command line's PEFT options as ``lora_config`` keyword arguments (``--init true`` -> ``True``)."""
    flag = init.strip().lower()
    init_value = {"true": True, "false": False}.get(flag, init.strip())
    return dict(
        lora_dropout=dropout, bias=bias.strip().lower(), use_rslora=rslora, use_dora=dora, init_lora_weights=init_value
    )
