"""The options that choose targets and LoRA settings, shared by ``resolve`` and ``plan``, and the one path from them to an adapter plan.

Each option is declared once here and used as a default in both commands' signatures, so the two
cannot drift apart; ``adapter_plan`` checks every value before a model is read, in one order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import ConfigError
from ..settings import LoraSettings
from .common import (
    inspect_model,
    joined,
    list_option,
    no_cache_option,
    parse_pairs,
    plugin_host,
    plugin_option,
    revision_option,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..plan import AdapterPlan

MODEL = typer.Argument(..., help="model_type, config.json or its folder, or a hub id (owner/name[@revision]).")
ROLES = list_option(
    "--roles",
    "-r",
    help="Comma list of roles and aliases, e.g. q,v,ffn; or all-linear (PEFT's keyword).",
    metavar="ROLES",
)
RANK = typer.Option(None, "--rank", help="LoRA rank for every role [default: 8, or the preset's].", metavar="N")
ALPHA = typer.Option(None, "--alpha", help="lora_alpha [default: 2 x rank, or the preset's].", metavar="X")
RANK_FOR = typer.Option(None, "--rank-for", help="Per-role rank, ROLE=N (repeatable).", metavar="ROLE=N")
ALPHA_FOR = typer.Option(None, "--alpha-for", help="Per-role alpha, ROLE=X (repeatable).", metavar="ROLE=X")
PRESET = typer.Option(None, "--preset", help="A preset from registry.toml, e.g. qv8-ffn4.", metavar="NAME")
PRESETS_FILE = typer.Option(
    None,
    "--presets",
    help="A TOML file of your own [presets.NAME] and [architectures.TYPE] tables (default: $LORA_REGISTRY_PRESETS).",
    metavar="FILE",
)
SCOPE = list_option(
    "--scope",
    help="language, vision, audio, projector (comma list) [default: language; a speech encoder-decoder's audio "
    "encoder too].",
    metavar="SCOPES",
)
STRICT = typer.Option(False, "--strict", help="Refuse to widen q/k/v or gate/up onto a fused module.")
LAYERS = list_option("--layers", help="Only these layers of each stack, e.g. 0-7,24-31.", metavar="LAYERS")
LAST_LAYERS = typer.Option(None, "--last-layers", help="Only the last N layers of each stack.", metavar="N")
INCLUDE = list_option(
    "--include", help="Also adapt these module names, suffixes or re:REGEX (comma list).", metavar="NAMES"
)
EXCLUDE = list_option(
    "--exclude", help="Leave out these module names, suffixes or re:REGEX (comma list).", metavar="NAMES"
)
DROPOUT = typer.Option(0.0, "--dropout", help="lora_dropout, at least 0 and below 1.", metavar="X")
BIAS = typer.Option("none", "--bias", help="none, all or lora_only: which biases train too.", metavar="BIAS")
RSLORA = typer.Option(False, "--rslora", help="Rank-stabilised scaling (use_rslora).")
DORA = typer.Option(False, "--dora", help="DoRA (use_dora): adds a trainable magnitude per output feature.")
INIT = typer.Option(
    "true",
    "--init",
    help="init_lora_weights: true, false, gaussian, pissa, pissa_niter_N, olora, eva, corda, orthogonal, mica, lora_ga.",
    metavar="INIT",
)
MODULES_TO_SAVE = list_option(
    "--modules-to-save", help="Comma list of roles or module names to train whole, e.g. lm-head.", metavar="MODULES"
)
TRUST_REMOTE_CODE = typer.Option(False, "--trust-remote-code", help="Allow a config's own Python code to run.")
REVISION = revision_option()
PLUGIN = plugin_option()
VERIFY = typer.Option(False, "--verify", help="Build the model anyway and check the config-only fast path against it.")
NO_CACHE = no_cache_option()


#: the keyword arguments of ``adapter_plan``: the option names both commands declare
ADAPTER_OPTIONS = (
    "roles", "rank", "alpha", "rank_for", "alpha_for", "preset", "presets_file", "scope", "strict", "layers",
    "last_layers", "dropout", "bias", "rslora", "dora", "init", "modules_to_save", "trust_remote_code", "revision",
    "plugin", "verify", "no_cache", "task_type", "include", "exclude",
)  # fmt: skip


def adapter_plan_from(options: Mapping[str, Any]) -> AdapterPlan:
    """``adapter_plan`` for a command's parsed options (its ``locals()``): each shared option passed by name."""
    return adapter_plan(options["model"], **{name: options[name] for name in ADAPTER_OPTIONS if name in options})


def adapter_plan(
    model: str,
    *,
    roles: list[str] | None,
    rank: int | None,
    alpha: float | None,
    rank_for: list[str] | None,
    alpha_for: list[str] | None,
    preset: str | None,
    presets_file: Path | None,
    scope: list[str] | None,
    strict: bool,
    layers: list[str] | None,
    last_layers: int | None,
    dropout: float,
    bias: str,
    rslora: bool,
    dora: bool,
    init: str,
    modules_to_save: list[str] | None,
    trust_remote_code: bool,
    revision: str | None,
    plugin: str | None,
    verify: bool,
    no_cache: bool,
    task_type: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
) -> AdapterPlan:
    """The adapter plan these options describe: settings, presets, roles, scopes and layers checked before MODEL is read."""
    from ..resolution import parse_layer_selection, parse_roles_early, parse_roles_for, parse_scopes, resolve_map

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
    # Bad roles, scopes and layer ranges fail before any model is read or built, except a word that may
    # name one of the model's modules (q_proj): that one is answered with a hint once the model is read.
    requests = parse_roles_early(role_spec, registry)
    scope_spec = joined(scope)
    scopes = parse_scopes(scope_spec) if scope_spec else None  # None: the model's default scopes
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
    if requests is None:
        requests = parse_roles_for(model_map, role_spec)
    resolution = resolve_map(
        model_map,
        requests,
        scopes,
        strict=strict,
        layers=selection,
        include=joined(include),
        exclude=joined(exclude),
    )
    return resolution.plan(settings)


def peft_options(dropout: float, bias: str, rslora: bool, dora: bool, init: str) -> dict[str, Any]:
    """The command line's PEFT options as ``lora_config`` keyword arguments (``--init true`` -> ``True``)."""
    flag = init.strip().lower()
    init_value = {"true": True, "false": False}.get(flag, init.strip())
    return dict(
        lora_dropout=dropout, bias=bias.strip().lower(), use_rslora=rslora, use_dora=dora, init_lora_weights=init_value
    )
