"""``explain``: what an existing ``adapter_config.json`` adapts in a model, what it costs, and what it misses.

PEFT decides what is adapted: the config is applied with ``peft.get_peft_model`` to the model built
on the meta device, and its ``targeted_module_names`` / ``targeted_parameter_names`` are mapped onto
the model's roles, layers and scopes. Each entry of the config (a ``target_modules`` name, a
``rank_pattern`` key, a ``layers_to_transform`` index, ...) is then checked with PEFT's own matching
rule, so an entry that matches nothing -- the silent no-op left behind when module names change
upstream -- is named, even when PEFT refuses the whole config because nothing matched at all.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import peft_compat
from .errors import ConfigError
from .inspection import Leaf, ModelMap, inspect
from .limits import lora_limits
from .resolution import collapse_names, default_scopes, format_layers, untouched_mixers
from .trainer_configs import TrainerConfig, read_trainer_config

CONFIG_NAME = "adapter_config.json"
_ADAPTER = "default"  # get_peft_model's adapter name
#: what ``Explanation.problems`` flags unless allowed: scopes beyond the language model, and these roles
CHECKED_SCOPES = ("vision", "audio", "projector")
CHECKED_ROLES = ("router", "embed", "lm-head")
_WHAT = {"router": "the MoE router", "embed": "the input embedding", "lm-head": "the LM head"}


@dataclass(frozen=True)
class Target:
    """One module or parameter PEFT adapts: where it sits in the model, its rank and its trainable parameters."""

    name: str
    role: str | None
    kind: str  # "module" | "parameter"
    layer: int | None
    scope: str | None  # None when the name is not one of the model's targetable leaves
    rank: int | None
    trainable: int

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "role", "kind", "layer", "scope", "rank", "trainable_parameters"}``."""
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "layer": self.layer,
            "scope": self.scope,
            "rank": self.rank,
            "trainable_parameters": self.trainable,
        }


@dataclass(frozen=True)
class Entry:
    """One entry of the adapter config and how many adapted names it accounts for (0: a no-op, with the reason)."""

    field: str
    entry: Any  # a string; an int for layers_to_transform
    matches: int
    reason: str | None = None

    @property
    def no_op(self) -> bool:
        """True when the entry changes nothing."""
        return self.matches == 0

    def to_dict(self) -> dict[str, Any]:
        """``{"field", "entry", "matches", "reason"}``."""
        return {"field": self.field, "entry": self.entry, "matches": self.matches, "reason": self.reason}


@dataclass
class Explanation:
    """The result of ``explain``: what PEFT adapts with this config in this model, at what cost, and what misses."""

    source: str
    model_map: ModelMap
    config: Any = field(repr=False)  # the peft.LoraConfig as read, or as the trainer builds it
    targets: list[Target]
    entries: list[Entry]
    trainable_parameters: int  # everything PEFT makes trainable: LoRA weights and modules_to_save copies
    lora_parameters: int
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # PEFT's refusal, one line (then nothing is adapted)
    #: the trainer whose config was read (``"axolotl"``, ``"Unsloth FastModel.get_peft_model"``); None for adapter_config.json
    trainer: str | None = None
    #: ``{module name: parameters}`` of the full copies ``modules_to_save`` trains
    saved: dict[str, int] = field(default_factory=dict)

    @property
    def no_ops(self) -> list[Entry]:
        """Entries that match nothing, in config order."""
        return [entry for entry in self.entries if entry.no_op]

    @property
    def share(self) -> float:
        """Trainable parameters as a share of the base model's (0..1)."""
        base = self.model_map.base_parameters
        return self.trainable_parameters / base if base else 0.0

    def by_role(self) -> dict[str, dict[str, Any]]:
        """``{role: {"leaves", "layers", "scopes", "ranks", "trainable_parameters"}}``; ``"null"`` for no role.

        Roles in vocabulary order, ``"null"`` last.
        """
        groups: dict[str, list[Target]] = {}
        for target in self.targets:
            groups.setdefault(target.role or "null", []).append(target)
        vocabulary = self.model_map.vocabulary.roles
        order = [role for role in vocabulary if role in groups] + sorted(
            role for role in groups if role not in vocabulary
        )
        return {
            role: {
                "leaves": len(groups[role]),
                "layers": sorted({t.layer for t in groups[role] if t.layer is not None}),
                "scopes": sorted({t.scope or "unknown" for t in groups[role]}),
                "ranks": sorted({t.rank for t in groups[role] if t.rank is not None}),
                "trainable_parameters": sum(t.trainable for t in groups[role]),
            }
            for role in order
        }

    def problems(self, allow: Any = ()) -> list[str]:
        """What a CI check fails on, one line each: adapting nothing, entries matching nothing, and reaching a
        scope (vision, audio, projector) or role (router, embed, lm-head) not named in ``allow``.

        ``allow`` is a comma list or a list of those names (``check_allow``). LoRA on a role and a full
        copy through ``modules_to_save`` both count as reaching it.
        """
        allowed = check_allow(allow)
        out = []
        if self.error:
            out.append(f"adapts nothing: {self.error}")
        elif not self.targets and not self.saved:
            out.append("adapts nothing")
        for entry in self.no_ops:
            out.append(f"{entry.field} entry {entry.entry!r} matches nothing: {entry.reason}")
        for scope in CHECKED_SCOPES:
            names = sorted(t.name for t in self.targets if t.scope == scope)
            if names and scope not in allowed:
                where = "the projector" if scope == "projector" else f"the {scope} tower"
                out.append(f"reaches {where}: {_n(len(names), 'leaf')} (e.g. {names[0]}); --allow {scope} if intended")
        roles = self.model_map.roles
        for role in CHECKED_ROLES:
            names = sorted(t.name for t in self.targets if t.role == role)
            copies = sorted(name for name in self.saved if roles.get(name) == role)
            if (names or copies) and role not in allowed:
                how = f"with LoRA ({_n(len(names), 'leaf')}, e.g. {names[0]})" if names else ""
                how += " and " if names and copies else ""
                how += f"as a full copy through modules_to_save ({copies[0]})" if copies else ""
                out.append(f"adapts {_WHAT[role]} {how}; --allow {role} if intended")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``explain --json`` document (stable key order; lists in model or config order)."""
        target_modules = self.config.target_modules
        if isinstance(target_modules, (set, frozenset, list, tuple)):
            target_modules = sorted(target_modules)
        return {
            "adapter_config": self.source,
            "trainer": self.trainer,
            "model": self.model_map.model,
            "model_type": self.model_map.model_type,
            "plugin": self.model_map.plugin,
            "r": self.config.r,
            "lora_alpha": self.config.lora_alpha,
            "target_modules": target_modules,
            "target_parameters": sorted(self.config.target_parameters or []),
            "error": self.error,
            "roles": self.by_role(),
            "targets": [target.to_dict() for target in self.targets],
            "trainable_parameters": self.trainable_parameters,
            "lora_parameters": self.lora_parameters,
            "modules_to_save_parameters": self.trainable_parameters - self.lora_parameters,
            "base_parameters": self.model_map.base_parameters,
            "share_percent": round(100 * self.share, 4),
            "entries": [entry.to_dict() for entry in self.entries],
            "no_ops": [entry.to_dict() for entry in self.no_ops],
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- reading the config
@dataclass(frozen=True)
class AdapterSource:
    """What ``explain`` was given, read: an adapter config (``config``, a ``LoraConfig``) or a trainer's own config."""

    source: str
    config: Any = None
    notes: tuple[str, ...] = ()
    #: the model the file names (``base_model_name_or_path``, axolotl's ``base_model``, ...), if any
    base_model: str | None = None
    trainer: TrainerConfig | None = None


def read_adapter(adapter: Any) -> AdapterSource:
    """Read what ``explain`` explains, checking everything that can be checked without the model.

    ``adapter`` is an ``adapter_config.json`` path or its folder, an adapter's hub id (its
    ``adapter_config.json``, from the local Hugging Face cache or the hub), a dict or ``LoraConfig``,
    or a trainer's config: axolotl YAML, LLaMA-Factory YAML or JSON, a ``.py`` file with one Unsloth
    ``get_peft_model(...)`` call, or ``unsloth train --config`` YAML / JSON. Anything else raises
    ``ConfigError`` (or ``ModelLoadError`` for the hub) with one line.
    """
    if isinstance(adapter, Mapping):
        source, data = "adapter config", dict(adapter)
    elif hasattr(adapter, "peft_type") and hasattr(adapter, "to_dict"):  # a PEFT config object
        source, data = "adapter config", adapter.to_dict()
    else:
        path = Path(adapter)
        if not path.exists() and _looks_like_hub_id(str(adapter)):
            path = hub_adapter_config(str(adapter))
        if path.is_dir():
            path = path / CONFIG_NAME
            if not path.is_file():
                raise ConfigError(f"{path.parent}: folder has no {CONFIG_NAME}")
        source = str(path)
        data = _read_file(path)
    trainer = read_trainer_config(source, data)
    if trainer is not None:
        return AdapterSource(source, base_model=trainer.base_model, trainer=trainer)
    config, notes = _lora_config(source, data)
    base = data.get("base_model_name_or_path")
    return AdapterSource(source, config, tuple(notes), base if isinstance(base, str) and base else None)


def load_adapter_config(adapter_config: Any) -> tuple[Any, str, list[str]]:
    """Read an adapter config (a path to the JSON file or its folder, a dict, or a ``LoraConfig``) into a ``LoraConfig``.

    Returns ``(config, source label, PEFT's warnings while reading)``. Anything that is not a LoRA
    adapter config PEFT would load raises ``ConfigError`` with one line naming the problem.
    """
    read = read_adapter(adapter_config)
    if read.trainer is not None:
        raise ConfigError(f"{read.source}: a {read.trainer.trainer} config, not an adapter config")
    return read.config, read.source, list(read.notes)


def hub_adapter_config(repo_id: str) -> Path:
    """The ``adapter_config.json`` of the adapter's hub id (``owner/name[@revision]``): the cache first, else
    downloaded (``hub.hub_file``: bounded, one precise line per failure, ``HF_HUB_OFFLINE`` respected)."""
    from . import hub

    return hub.hub_file(repo_id, CONFIG_NAME)


def _looks_like_hub_id(text: str) -> bool:
    return (
        re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?", text) is not None
        and not text.endswith((".json", ".yaml", ".yml", ".py"))
        and not text.startswith((".", "/", "~"))
    )


def _read_file(path: Path) -> Any:
    """A file's content: a parsed JSON or YAML mapping, or a ``.py`` file's text."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, so not an adapter config") from None
    if path.suffix == ".py":
        return text
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(
                f"{path}: not valid YAML ({getattr(exc, 'problem', None) or 'syntax error'}{where})"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: holds a YAML {_json_kind(data)}; a training config is a mapping")
        return data
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: holds a JSON {_json_kind(data)}; an adapter config is a JSON object")
    return data


def _lora_config(source: str, data: dict[str, Any]) -> tuple[Any, list[str]]:
    """An adapter config's data as a ``LoraConfig``, and PEFT's warnings while reading it."""
    peft_type = data.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise ConfigError(f"{source}: peft_type is {peft_type!r}, not 'LORA'; explain reads LoRA adapter configs")
    for key in ("target_modules", "target_parameters", "modules_to_save"):
        if isinstance(data.get(key), (set, frozenset, tuple)):  # LoraConfig.to_dict() holds sets
            data[key] = sorted(data[key])
    tm, tp = data.get("target_modules"), data.get("target_parameters")
    if not (isinstance(tm, str) or (isinstance(tm, list) and all(isinstance(t, str) for t in tm)) or tm is None):
        raise ConfigError(f"{source}: target_modules must be a regex string or a list of names, not {tm!r}")
    if not ((isinstance(tp, list) and all(isinstance(t, str) for t in tp)) or tp is None):
        raise ConfigError(f"{source}: target_parameters must be a list of names, not {tp!r}")
    r = data.get("r", 8)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ConfigError(f"{source}: r must be a positive whole number, not {r!r}")
    if not tm and not tp:
        raise ConfigError(f"{source}: sets neither target_modules nor target_parameters, so it names nothing to adapt")
    data.pop("runtime_config", None)  # PEFT drops it on load too
    from peft import LoraConfig

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            config = LoraConfig.from_peft_type(**LoraConfig.check_kwargs(**data))
        except (TypeError, ValueError, KeyError, ImportError) as exc:
            raise ConfigError(f"{source}: PEFT's LoraConfig rejects it: {_one_line(exc)}") from None
    # e.g. keys this PEFT does not know, which it ignores (first sentence only: the rest is advice to upgrade)
    notes = [f"PEFT: {_one_line(w.message).split('. ')[0]}" for w in caught if "peft" in (w.filename or "")]
    return config, notes


def check_allow(allow: Any) -> set[str]:
    """``--allow``: a comma list or list of scopes and roles ``Explanation.problems`` may pass; one-line ``ConfigError`` otherwise."""
    try:
        items = allow.split(",") if isinstance(allow, str) else list(allow or ())
    except TypeError:
        raise ConfigError(f"allow must be a comma list or a list of names, not {allow!r}") from None
    names = {str(item).strip().lower() for item in items if str(item).strip()}
    bad = sorted(names - set(CHECKED_SCOPES) - set(CHECKED_ROLES))
    if bad:
        raise ConfigError(f"--allow takes {', '.join(CHECKED_SCOPES + CHECKED_ROLES)}, not {', '.join(bad)}")
    return names


# --------------------------------------------------------------------------- explaining
def explain(
    adapter_config: Any,
    model: Any = None,
    *,
    trust_remote_code: bool = False,
    plugin_manager: Any = None,
    plugin: str | None = None,
    revision: str | None = None,
) -> Explanation:
    """Explain what ADAPTER_CONFIG adapts in MODEL, what it costs, and which of its entries match nothing.

    ADAPTER_CONFIG is anything ``read_adapter`` reads: an ``adapter_config.json`` path, the folder
    holding it, an adapter's hub id, its dict or a ``LoraConfig``, or a trainer's config (axolotl,
    LLaMA-Factory, Unsloth), for which the config PEFT gets is the one that trainer's code builds.
    MODEL is anything ``inspect`` accepts, or a ``ModelMap`` (a model the caller built is copied, not
    wrapped); ``None`` means the base model the file names. The config is applied with
    ``peft.get_peft_model`` in training mode (``inference_mode`` is ignored, so the count is what
    training would create). If PEFT refuses it -- e.g. because nothing matches -- the result carries
    PEFT's message in ``error`` and still checks every entry.
    ``revision`` (a branch, tag or commit) applies to a hub id MODEL.
    """
    read = read_adapter(adapter_config)  # bad input fails before a model is built
    if model is None:
        model = read.base_model
        if model is None:
            what = "base_model_name_or_path" if read.trainer is None else "base model"
            raise ConfigError(f"{read.source}: names no {what}; give MODEL")
    from transformers import PretrainedConfig

    if isinstance(model, ModelMap):
        model_map = model
    else:
        model_map = inspect(
            model, trust_remote_code=trust_remote_code, plugin_manager=plugin_manager, plugin=plugin, revision=revision
        )
    module = model_map.module
    if isinstance(model, ModelMap) or not isinstance(model, (str, os.PathLike, PretrainedConfig)):
        module = copy.deepcopy(module)  # PEFT wraps in place; never change the caller's model
    if read.trainer is None:
        return _Explainer(read.config, read.source, model_map, module, list(read.notes)).run()
    built = read.trainer.lora_kwargs(module)
    config = _trainer_lora_config(read, built.kwargs)
    dropped = [Entry(fld, entry, 0, reason) for fld, entry, reason in built.dropped]
    explainer = _Explainer(config, read.source, model_map, module, list(built.notes), dropped, read.trainer.label)
    return explainer.run()


def _trainer_lora_config(read: AdapterSource, kwargs: dict[str, Any]) -> Any:
    """The ``LoraConfig`` a trainer builds, or one line saying PEFT would refuse it (the trainer would crash)."""
    from peft import LoraConfig

    label = read.trainer.label if read.trainer is not None else "the trainer"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return LoraConfig(**kwargs)
        except (TypeError, ValueError, KeyError, ImportError) as exc:
            raise ConfigError(
                f"{read.source}: {label} would give PEFT a LoraConfig it rejects: {_one_line(exc)}"
            ) from None


class _Explainer:
    """The steps of ``explain``, sharing the model's names and PEFT's answers."""

    def __init__(
        self,
        config,
        source: str,
        model_map: ModelMap,
        module,
        notes: list[str],
        dropped: list[Entry] | None = None,
        trainer: str | None = None,
    ):
        self.config, self.source, self.model_map, self.module = config, source, model_map, module
        self.dropped, self.trainer = list(dropped or []), trainer
        self.warnings = list(model_map.warnings) + notes
        self.leaves: dict[str, Leaf] = {leaf.name: leaf for leaf in model_map.leaves}
        self.module_names = [name for name, _ in module.named_modules() if name]
        # parameter keys as PEFT's target_parameters sees them: each module's own parameters
        self.param_keys = [
            f"{m}.{p}" if m else p for m, sub in module.named_modules() for p, _ in sub.named_parameters(recurse=False)
        ]
        self.all_module_names = [name for name, _ in module.named_modules(remove_duplicate=False) if name]
        self.label = model_map.model

    def run(self) -> Explanation:
        converted, renames = self._converted()
        targeted, ranks, lora, extra, error = self._apply()
        hits = self._entry_hits(converted, renames, None if error else targeted)
        # what the config adapts: PEFT's answer, or (when PEFT refused) what its entries would match
        adapted = targeted if error is None else set().union(*(h for h in hits.values() if isinstance(h, set)))
        entries = self._entries(hits, adapted, renames)
        targets = self._targets(targeted, ranks, lora)
        saved = self._saved() if error is None else {}
        self._warn(targets, hits, converted, renames, adapted, saved)
        lora_total = sum(lora.values())
        return Explanation(
            self.source,
            self.model_map,
            self.config,
            targets,
            self.dropped + entries,
            lora_total + extra,
            lora_total,
            self.warnings,
            error,
            self.trainer,
            saved,
        )

    def _saved(self) -> dict[str, int]:
        """``{module: parameters}`` of the full copies ``modules_to_save`` makes (``_set_trainable``'s matching)."""
        tree = self.model_map.tree
        names = [
            name
            for name in self.all_module_names
            if any(peft_compat.matches_modules_to_save(entry, name) for entry in self.config.modules_to_save or ())
        ]
        return {name: peft_compat.modules_to_save_parameters(tree, name) for name in dict.fromkeys(names)}

    # ------------------------------------------------------------------ PEFT
    def _converted(self):
        """The config after PEFT's transformers-5 MoE rename, and ``{entry: new parameter name}`` for renamed entries."""
        converted = peft_compat.converted_config(self.config, self.module)
        if converted is self.config:
            return self.config, {}
        table = peft_compat.rename_table(self.model_map.model_type)
        renames = {}
        original = self.config.target_modules
        if not isinstance(original, str):
            for entry in sorted(original or ()):
                if entry not in (converted.target_modules or ()):
                    new = next((n for o, n in table.items() if entry == o or entry.endswith("." + o)), None)
                    renames[entry] = new
        return converted, renames

    def _apply(self):
        """Apply the config with PEFT: targeted names, rank and LoRA parameters per name, other trainable
        parameters (modules_to_save copies), and PEFT's refusal as one line (or None)."""
        applied = copy.deepcopy(self.config)
        applied.inference_mode = False  # a saved adapter says inference_mode=true; explain what training builds
        try:
            peft_model, targeted = peft_compat.apply(self.module, applied)
        except Exception as exc:  # PEFT's refusal is part of the answer, not a crash
            # PEFT prints sets of names; sort them so the same input gives the same report
            message = re.sub(
                r"\{'[^{}]*'\}", lambda m: "{" + ", ".join(sorted(m.group(0)[1:-1].split(", "))) + "}", _one_line(exc)
            )
            return set(), {}, {}, 0, f"PEFT cannot apply it to {self.label}: {message}"
        tuner = peft_model.base_model
        ranks: dict[str, int] = {}
        trainable: dict[str, int] = {}
        for name, layer in tuner.model.named_modules():
            if not peft_compat.is_tuner_layer(layer):
                continue
            # nested ParamWrappers (two parameters of one module) sit at ...experts.base_layer
            key = ".".join(part for part in name.split(".") if part != "base_layer")
            if getattr(layer, "parameter_name", None):
                key = f"{key}.{layer.parameter_name}"
            ranks[key] = layer.r.get(_ADAPTER)
            trainable[key] = sum(
                p.numel() for n, p in layer.named_parameters() if p.requires_grad and not n.startswith("base_layer.")
            )
        total = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        return targeted, ranks, trainable, total - sum(trainable.values()), None

    # ------------------------------------------------------------------ entries
    def _module_hits(self, targets, bare: bool = False) -> set[str]:
        """Module names PEFT's ``check_target_module_exists`` matches for ``targets`` under this config."""
        return peft_compat.module_hits(self.config, self.module_names, targets, bare=bare)

    def _all_linear(self) -> set[str]:
        """The modules PEFT expands ``"all-linear"`` into (asked only when PEFT refused the config as a whole)."""
        expanded = peft_compat.all_linear_targets(self.config, self.module)
        return self._module_hits(set(expanded)) if expanded is not None and not isinstance(expanded, str) else set()

    def _param_hits(self, targets) -> set[str]:
        return {key for key in self.param_keys if peft_compat.matches_target_parameters(targets, key)}

    def _entry_hits(self, converted, renames, targeted: set[str] | None) -> dict[tuple[str, str], set[str] | Exception]:
        """``{(field, entry): names it adapts}`` for target_modules and target_parameters (an exception: bad regex)."""
        hits: dict[tuple[str, str], Any] = {}
        config = self.config
        for entry in config.target_parameters or ():
            hits[("target_parameters", entry)] = self._param_hits([entry])
        target_modules = config.target_modules
        if isinstance(target_modules, str):
            key = ("target_modules", target_modules)
            if targeted is not None:  # PEFT resolved it (also "all-linear", or a regex widened on MoE models)
                explicit = set().union(*[h for h in hits.values()]) if hits else set()
                hits[key] = targeted - explicit
            elif target_modules.lower() == "all-linear":
                hits[key] = self._all_linear()
            else:
                try:
                    hits[key] = self._module_hits(target_modules)
                except re.error as exc:
                    hits[key] = exc
        else:
            for entry in sorted(target_modules or ()):
                if entry in renames:
                    new = renames[entry]
                    added = (
                        {new} if new else set(converted.target_parameters or ()) - set(config.target_parameters or ())
                    )
                    hits[("target_modules", entry)] = self._param_hits(sorted(added))
                else:
                    hits[("target_modules", entry)] = self._module_hits({entry})
        if targeted is not None:
            hits = {k: (v & targeted if isinstance(v, set) else v) for k, v in hits.items()}
        return hits

    def _entries(self, hits, adapted: set[str], renames) -> list[Entry]:
        config, out = self.config, []
        for (fld, entry), names in hits.items():
            if fld != "target_modules":
                continue
            if isinstance(names, Exception):
                out.append(Entry(fld, entry, 0, f"not a valid regex ({_one_line(names)})"))
                continue
            out.append(Entry(fld, entry, len(names), None if names else self._why_module(entry, renames)))
        for (fld, entry), names in hits.items():
            if fld == "target_parameters":
                reason = None if names else f"matches no parameter of {self.label}{self._hint(entry)}"
                out.append(Entry(fld, entry, len(names), reason))
        for fld in ("rank_pattern", "alpha_pattern"):
            for key in getattr(config, fld, None) or {}:
                try:
                    n = sum(1 for name in adapted if peft_compat.matches_pattern_key(key, name))
                    reason = None if n else f"matches none of the {_n(len(adapted), 'adapted name')}"
                except re.error as exc:
                    n, reason = 0, f"not a valid regex ({_one_line(exc)})"
                out.append(Entry(fld, key, n, reason))
        layers = config.layers_to_transform
        if layers is not None:
            present = sorted({leaf.layer for leaf in self.model_map.leaves if leaf.layer is not None})
            for index in [layers] if isinstance(layers, int) else layers:
                n = sum(1 for name in adapted if (leaf := self._leaf(name)) is not None and leaf.layer == index)
                reason = None
                if not n:
                    reason = (
                        f"{self.label} has layers {format_layers(present)}"
                        if index not in present
                        else "no adapted module in that layer"
                    )
                out.append(Entry("layers_to_transform", index, n, reason))
        for entry in config.modules_to_save or ():
            n = sum(1 for name in self.all_module_names if peft_compat.matches_modules_to_save(entry, name))
            out.append(Entry("modules_to_save", entry, n, None if n else f"matches no module of {self.label}"))
        return out

    def _why_module(self, entry: str, renames) -> str:
        if entry in renames:
            new = renames[entry] or "expert parameters"
            return (
                f"PEFT rewrites it into target_parameters {new!r} on {self.model_map.model_type}, which match nothing"
            )
        if isinstance(self.config.target_modules, str):
            as_list = self._module_hits({entry}, bare=True)
            hint = f"; as a list entry it would match {len(as_list)} modules" if as_list else self._hint(entry)
            return f"a string target_modules is a regex that must match a whole module name: it matches none{hint}"
        bare = self._module_hits({entry}, bare=True)
        if bare:
            return (
                f"the {_n(len(bare), 'module')} it names are all left out by exclude_modules, modules_to_save "
                "or layers_to_transform"
            )
        return f"matches no module of {self.label}{self._hint(entry)}"

    def _hint(self, entry: str) -> str:
        """``" (query_key_value is attention-qkv elsewhere; here: k_proj, q_proj, v_proj)"``, or close names."""
        registry = self.model_map.vocabulary
        short = entry.rsplit(".", 1)[-1]
        roles = {role for family in registry.names.values() for role, names in family.items() if short in names}
        related = roles | {registry.fused[r] for r in roles if r in registry.fused}
        related |= {r for r, fused in registry.fused.items() if fused in roles}
        here = [
            leaf
            for leaf in self.model_map.leaves
            if leaf.scope == "language" and self.model_map.roles.get(leaf.name) in related
        ]
        modules = sorted({leaf.short_name for leaf in here if leaf.kind == "module"})
        # a 3-D expert tensor or a router's weight is a parameter: target_modules cannot reach it
        parameters = sorted(
            {f"{leaf.owner.rsplit('.', 1)[-1]}.{leaf.short_name}" for leaf in here if leaf.kind != "module"}
        )
        if modules or parameters:
            usual = [role for role in registry.roles if role in roles]
            where = [f"target_modules {', '.join(modules)}"] if modules else []
            where += [f"target_parameters {', '.join(parameters)}"] if parameters else []
            return f" ({short} is {', '.join(usual)} elsewhere; here: {'; '.join(where)})"
        close = difflib.get_close_matches(short, sorted({leaf.short_name for leaf in self.model_map.leaves}), n=3)
        return f" (did you mean {', '.join(close)}?)" if close else ""

    # ------------------------------------------------------------------ targets and warnings
    def _leaf(self, name: str) -> Leaf | None:
        """The model leaf a PEFT name is: itself, or the module whose ``weight`` target_parameters names."""
        leaf = self.leaves.get(name)
        if leaf is None and name.endswith(".weight"):
            leaf = self.leaves.get(name[: -len(".weight")])
        return leaf

    def _targets(self, targeted: set[str], ranks, trainable) -> list[Target]:
        order = {leaf.name: i for i, leaf in enumerate(self.model_map.leaves)}

        def place(name: str):
            leaf = self._leaf(name)
            return (order[leaf.name] if leaf else len(order), name)

        out = []
        for name in sorted(targeted, key=place):
            leaf = self._leaf(name)
            kind = "parameter" if name in self.param_keys else "module"
            out.append(
                Target(
                    name,
                    self.model_map.roles.get(leaf.name) if leaf else None,
                    kind,
                    leaf.layer if leaf else None,
                    leaf.scope if leaf else None,
                    ranks.get(name),
                    trainable.get(name, 0),
                )
            )
        return out

    def _warn_fused_experts(self, hits, adapted: set[str]) -> None:
        """A target_modules name that now reaches only the shared experts, because the routed ones became 3-D tensors.

        Where PEFT rewrites such names itself (``peft_compat.rename_table``) the rename warning says so;
        elsewhere (Nemotron-H) the name silently stops at the shared experts and dense FFNs.
        """
        roles = self.model_map.roles
        for (fld, entry), names in hits.items():
            if fld != "target_modules" or not isinstance(names, set) or not names:
                continue
            short = str(entry).rsplit(".", 1)[-1]
            ffn = sorted(n for n in names if (roles.get(n) or "").startswith("ffn-"))
            experts = [
                leaf.name
                for leaf in self.model_map.leaves
                if leaf.kind == "parameter"
                and leaf.short_name == short
                and (roles.get(leaf.name) or "").startswith("experts-")
                and leaf.name not in adapted
            ]
            if ffn and experts:
                self.warnings.append(_fused_experts_note(str(entry), ffn, experts, self.model_map.model_type))

    def _warn(self, targets: list[Target], hits, converted, renames, adapted: set[str], saved: dict[str, int]) -> None:
        def through(names: set[str]) -> str:
            entries = [str(e) for (_, e), h in hits.items() if isinstance(h, set) and h & names]
            return f" through {', '.join(entries)}" if entries else ""

        model_type = self.model_map.model_type
        if renames:
            moved = sorted(renames)
            news = sorted({n for n in renames.values() if n})
            # modules the old names match and PEFT now leaves alone (dense FFNs, shared experts)
            shadowed = sorted(
                m
                for m in set().union(*[self._module_hits({e}, bare=True) for e in moved])
                if not any(name.startswith(m + ".") for name in adapted)
            )
            text = (
                f"PEFT rewrites target_modules {', '.join(moved)} on {model_type} into expert parameters"
                f"{' (' + ', '.join(news) + ')' if news else ''}, as for adapters trained with transformers 4"
            )
            if shadowed:
                verb = "is" if len(shadowed) == 1 else "are"
                text += f"; {_n(len(shadowed), 'module')} so named (e.g. {shadowed[0]}) {verb} not adapted"
            self.warnings.append(text)
        elif isinstance(self.config.target_modules, str) and converted.target_modules != self.config.target_modules:
            regex: str | None = self.config.target_modules
            try:
                re.compile(self.config.target_modules)
            except re.error:
                regex = None
            modules = set(self.module_names)
            wider = sorted(
                n
                for n in adapted
                if n in modules and regex is not None and not peft_compat.matches_target_modules(regex, n)
            )
            if wider:
                self.warnings.append(
                    f"PEFT turns the regex target_modules into the names {', '.join(sorted(converted.target_modules))} "
                    f"on {model_type}, so it also adapts {_n(len(wider), 'module')} the regex does not match "
                    f"(e.g. {wider[0]})"
                )
        if not renames:
            self._warn_fused_experts(hits, adapted)
        by_scope: dict[str, set[str]] = {}
        defaults = default_scopes(self.model_map)  # a speech encoder-decoder's audio encoder is half the model
        for target in targets:
            if target.scope and target.scope not in defaults:
                by_scope.setdefault(target.scope, set()).add(target.name)
        for scope, names in by_scope.items():
            self.warnings.append(
                f"reaches the {scope} {'tower' if scope in ('vision', 'audio') else 'layers'}: {_n(len(names), 'leaf')} "
                f"(e.g. {min(names)}){through(names)}; probably unintended for a language fine-tune "
                f"(`lora-registry resolve` emits targets that stop at the language model)"
            )
        limits = lora_limits(self.model_map)
        trapped: dict[str, list[str]] = {}
        for target in targets:
            leaf = self._leaf(target.name)
            limit = limits.get(leaf.name) if leaf is not None else None
            if limit is not None:
                trapped.setdefault(limit.why, []).append(leaf.name)  # type: ignore[union-attr]
        for why, leaf_names in trapped.items():
            limit_kind = limits[leaf_names[0]].kind
            verb = "never trains" if limit_kind == "never" else "trains only without mamba_ssm's fused kernels"
            self.warnings.append(
                f"the LoRA on {', '.join(collapse_names(leaf_names)[:3])}{through(set(leaf_names))} {verb}: {why}"
            )
        adapted_leaves = {leaf.name for t in targets if (leaf := self._leaf(t.name)) is not None}
        untouched = untouched_mixers(
            self.model_map,
            defaults,
            set(),
            adapted_leaves,
            "the adapter",
            "`lora-registry resolve MODEL --roles {family}` names its projections",
        )
        if untouched:
            self.warnings.append(untouched)
        for role, what in (("router", "the MoE router"), ("embed", "the input embedding"), ("lm-head", "the lm head")):
            chosen = [t for t in targets if t.role == role]
            if not chosen:
                continue
            names = {t.name for t in chosen}
            cost = sum(t.trainable for t in chosen)
            why = (
                "it changes which experts each token goes to and is usually left frozen"
                if role == "router"
                else "rarely what a fine-tune needs"
            )
            self.warnings.append(
                f"adapts {what} ({_n(len(names), 'leaf')}, e.g. {min(names)}, "
                f"{cost:,} trainable){through(names)}: {why}"
            )
        for name, count in saved.items():
            kind = self.model_map.roles.get(name)
            if kind in ("embed", "lm-head"):  # a full trainable copy: this is what is large
                self.warnings.append(
                    f"trains a full copy of {name} ({_WHAT[kind]}) through modules_to_save: {count:,} parameters, "
                    f"{100 * count / max(self.model_map.base_parameters, 1):.2f}% of the model"
                )


def _fused_experts_note(entry: str, modules: list[str], params: list[str], model_type: str) -> str:
    return (
        f"target_modules {entry} reaches only {_n(len(modules), 'module')} (dense or shared-expert FFNs, e.g. "
        f"{modules[0]}) on {model_type}: its routed experts hold {entry.rsplit('.', 1)[-1]} as 3-D parameters "
        f"({_n(len(params), 'tensor')}, e.g. {params[0]}), which target_modules never matches -- adapters trained "
        "with transformers 4 adapted every expert; add them through target_parameters "
        "(`lora-registry resolve --roles ffn` emits both)"
    )


def _n(count: int, word: str) -> str:
    plural = word[:-1] + "ves" if word.endswith("leaf") else word + "s"
    return f"{count} {word if count == 1 else plural}"


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())
