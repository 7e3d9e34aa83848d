"""``lora-registry resolve``: roles -> exact target names, a LoRA config, and its cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ConfigError
from .common import check_output, handle_errors, parse_pairs, write_atomic

#: peft is adapter_config.json; the trainers' formats are written by lora_registry.exports
FORMATS = ("table", "json", "peft", "axolotl", "llamafactory", "unsloth", "torchtune")


@handle_errors
def resolve(
    model: str = typer.Argument(..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision])."),
    roles: Optional[str] = typer.Option(None, "--roles", "-r", help="Comma list of roles and aliases, e.g. q,v,ffn."),
    rank: Optional[int] = typer.Option(None, "--rank", help="LoRA rank for every role [default: 8, or the preset's]."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="lora_alpha [default: 2 x rank, or the preset's]."),
    rank_for: Optional[List[str]] = typer.Option(None, "--rank-for", help="Per-role rank, ROLE=N (repeatable)."),
    alpha_for: Optional[List[str]] = typer.Option(None, "--alpha-for", help="Per-role alpha, ROLE=X (repeatable)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A preset from registry.toml, e.g. qv8-ffn4."),
    presets_file: Optional[Path] = typer.Option(None, "--presets", help="A TOML file of your own [presets.NAME] tables (default: $LORA_REGISTRY_PRESETS)."),
    scope: str = typer.Option("language", "--scope", help="language, vision, audio, projector (comma list)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse to widen q/k/v or gate/up onto a fused module."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Only these layers of each stack, e.g. 0-7,24-31."),
    last_layers: Optional[int] = typer.Option(None, "--last-layers", help="Only the last N layers of each stack."),
    dropout: float = typer.Option(0.0, "--dropout", help="lora_dropout, at least 0 and below 1."),
    bias: str = typer.Option("none", "--bias", help="none, all or lora_only: which biases train too."),
    rslora: bool = typer.Option(False, "--rslora", help="Rank-stabilised scaling (use_rslora)."),
    dora: bool = typer.Option(False, "--dora", help="DoRA (use_dora): adds a trainable magnitude per output feature."),
    init: str = typer.Option("true", "--init", help="init_lora_weights: true, false, gaussian, pissa, pissa_niter_N, olora, eva, corda, orthogonal, mica, lora_ga."),
    modules_to_save: Optional[str] = typer.Option(None, "--modules-to-save", help="Comma list of roles or module names to train whole, e.g. lm-head."),
    output_format: str = typer.Option("table", "--format", "-f", help="table, json, peft (adapter_config.json), axolotl, llamafactory, unsloth or torchtune."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to FILE (only when the whole run succeeds)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output file."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a config's own Python code to run."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit of a hub id (default: main)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", help="Ask only this plugin."),
    verify: bool = typer.Option(False, "--verify", help="Build the model anyway and check the config-only fast path against it."),
) -> None:
    """Resolve roles onto MODEL's module names and print the LoRA config that adapts exactly those."""
    from ..hub import with_revision

    model = with_revision(model, revision)  # owner/name -> owner/name@REV: every step below reads it from the id
    from ..manager import get_plugin_manager, plugin_registry
    from ..resolution import check_peft_options
    from ..resolution import resolve as do_resolve

    if output_format not in FORMATS:
        raise ConfigError(f"unknown format {output_format!r}; choose from {', '.join(FORMATS)}")
    check_output(output, force)
    options = peft_options(dropout, bias, rslora, dora, init)
    check_peft_options(options)  # bad values fail before a model is built
    options["modules_to_save"] = modules_to_save
    pm = get_plugin_manager()
    registry, _ = plugin_registry(pm, presets_file)  # plugins' fragments and the user's file add presets
    ranks = parse_pairs(rank_for, "--rank-for", int)
    alphas = parse_pairs(alpha_for, "--alpha-for", float)
    preset_ranks, preset_alphas = {}, {}
    if preset is not None:
        if preset not in registry.presets:
            raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(registry.presets)}")
        p = registry.presets[preset]
        roles = roles or p.roles
        rank = p.rank if rank is None else rank
        alpha = p.alpha if alpha is None else alpha
        preset_ranks, preset_alphas = dict(p.rank_for), dict(p.alpha_for)
    if not roles:
        raise ConfigError("give --roles (e.g. --roles q,v,ffn) or --preset (see `lora-registry roles`)")
    rank = 8 if rank is None else rank
    from ..fastpath import model_map_for_cli
    from ..registry import load_registry
    from ..resolution import parse_layer_selection, parse_scopes
    from ..roles import parse_roles

    # Bad roles, scopes and layer ranges fail before any model is read or built, as resolve() does.
    parse_roles(roles, load_registry())
    parse_scopes(scope)
    parse_layer_selection(layers, last_layers)
    # The config-only fast path where the output needs no model and no PEFT object (JSON or table, plain options).
    fast = output_format in ("json", "table") and options["bias"] == "none" and not modules_to_save
    source = model_map_for_cli(model, verify=verify, trust_remote_code=trust_remote_code, plugin_manager=pm,
                               plugin=plugin, fast=fast)
    result = do_resolve(source, roles, scope=scope, strict=strict, layers=layers, last_layers=last_layers,
                        trust_remote_code=trust_remote_code, plugin_manager=pm, plugin=plugin)
    # A preset's per-role overrides are defaults: they apply where their roles were resolved.
    ranks = {**{k: v for k, v in preset_ranks.items() if result.covers(k)}, **ranks}
    alphas = {**{k: v for k, v in preset_alphas.items() if result.covers(k)}, **alphas}
    if output_format == "json":
        text = json.dumps(result.to_dict(r=rank, lora_alpha=alpha, ranks=ranks, alphas=alphas, **options), indent=2) + "\n"
    elif output_format == "peft":
        text = result.adapter_config(r=rank, lora_alpha=alpha, ranks=ranks, alphas=alphas, **options)
    elif output_format != "table":
        from ..exports import EXPORTS, render

        config = result.lora_config(r=rank, lora_alpha=alpha, ranks=ranks, alphas=alphas, **options)
        text = render(output_format, EXPORTS[output_format](result, config))
    else:
        from .tables import resolution_table

        text = None
        renderable = resolution_table(result, rank, alpha, ranks, options, alphas)  # checks everything before printing
    if output is not None:
        if text is None:
            from .tables import render_plain

            text = render_plain(renderable)
        write_atomic(output, text)
        typer.echo(f"wrote {output}", err=True)
    elif text is not None:
        typer.echo(text, nl=False)
    else:
        from .tables import print_all

        print_all(renderable)


def peft_options(dropout: float, bias: str, rslora: bool, dora: bool, init: str) -> dict:
    """The command line's PEFT options as ``lora_config`` keyword arguments (``--init true`` -> ``True``)."""
    flag = init.strip().lower()
    init_value = {"true": True, "false": False}.get(flag, init.strip())
    return dict(lora_dropout=dropout, bias=bias.strip().lower(), use_rslora=rslora, use_dora=dora,
                init_lora_weights=init_value)
