"""``resolve``: roles -> the exact module and parameter names, a PEFT LoraConfig, and its cost."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

from .errors import ConfigError, RoleError
from .inspection import Leaf, ModelMap, inspect
from .registry import SCOPES, Registry, load_registry
from .roles import parse_roles
from .targeting import exact_regex, exact_suffixes, peft_renamed_leaves

DEFAULT_RANK = 8


@dataclass
class Resolution:
    """Which leaves a role spec selects in one model, and the LoRA config that adapts exactly those."""

    model_map: ModelMap
    roles: list[str]
    scopes: tuple[str, ...]
    modules: dict[str, list[str]]
    parameters: dict[str, list[str]]
    warnings: list[str] = field(default_factory=list)
    substituted: dict[str, str] = field(default_factory=dict)  # requested role -> fused role that serves it
    registry: Registry = field(default_factory=load_registry, repr=False)
    #: the layer indices selected in each stack (``None``: every layer); leaves outside a stack are unaffected
    layers: dict[str, tuple[int, ...]] | None = None

    # ------------------------------------------------------------------ selection
    @property
    def leaves(self) -> list[Leaf]:
        """The selected leaves, in model order."""
        chosen = {n for names in self.modules.values() for n in names}
        chosen |= {n for names in self.parameters.values() for n in names}
        return [leaf for leaf in self.model_map.leaves if leaf.name in chosen]

    def names_by_role(self) -> dict[str, list[str]]:
        """``{role: [module and parameter names]}`` in vocabulary order."""
        out: dict[str, list[str]] = {}
        for role in self.roles:
            names = self.modules.get(role, []) + self.parameters.get(role, [])
            if names:
                out[role] = names
        return out

    # ------------------------------------------------------------------ PEFT targets
    def target_keys(self) -> dict[str, str]:
        """``{leaf name: the key PEFT will target}``: the module name, or a parameter name.

        Modules go through ``target_modules`` except where PEFT would rewrite their name into
        expert parameters (see ``peft_renamed_leaves``); those are targeted exactly through
        ``target_parameters`` as ``<module>.weight``, which adds the same LoRA parameters.
        """
        return dict(self._target_keys)

    @cached_property
    def _target_keys(self) -> dict[str, str]:
        # Computed once: lora_config asks for it from target_modules, target_parameters and each pattern.
        renamed = peft_renamed_leaves(self.model_map.model_type)
        keys = {}
        for leaf in self.leaves:
            moved = leaf.kind == "module" and leaf.lora_type == "linear" and leaf.short_name in renamed
            keys[leaf.name] = leaf.name + ".weight" if moved else leaf.name
        return keys

    def target_modules(self) -> list[str] | str:
        """PEFT ``target_modules``: a short suffix list where that is exact, else a regex (or full names)."""
        keys = self._target_keys
        selected = [keys[n] for names in self.modules.values() for n in names if keys[n] == n]
        if not selected:
            return []
        universe = self.model_map.all_module_names
        suffixes = exact_suffixes(selected, universe)
        if suffixes is not None:
            return suffixes
        if peft_renamed_leaves(self.model_map.model_type):
            return sorted(selected)  # PEFT would widen a regex into bare leaf names here
        return exact_regex(selected, universe)

    def target_parameters(self) -> list[str]:
        """PEFT ``target_parameters``: suffixes where exact, else full parameter names."""
        keys = self._target_keys
        parameters = {n for names in self.parameters.values() for n in names}
        selected = [key for name, key in keys.items() if key != name or name in parameters]
        if not selected:
            return []
        module = self.model_map.module
        universe = [name for name, _ in module.named_parameters()] if module is not None else selected
        suffixes = exact_suffixes(selected, universe)
        return suffixes if suffixes is not None else sorted(selected)

    def covers(self, key: str) -> bool:
        """True when role or alias ``key`` names at least one resolved role (fused substitutes count)."""
        try:
            (request,) = parse_roles([key], self.registry)
        except RoleError:
            return False
        return any(self.substituted.get(role, role) in self.roles for role in request.roles)

    def rank_of(self, role: str, r: int, ranks: Mapping[str, int] | None) -> int:
        """The rank a role gets: its own override, an alias override, else ``r``."""
        return _per_role(ranks or {}, self, "rank").get(role, r)

    # ------------------------------------------------------------------ outputs
    def lora_config(
        self,
        r: int = DEFAULT_RANK,
        lora_alpha: float | None = None,
        ranks: Mapping[str, int] | None = None,
        alphas: Mapping[str, float] | None = None,
        **lora_kwargs: Any,
    ):
        """A ``peft.LoraConfig`` that adapts exactly this resolution.

        ``r`` and ``lora_alpha`` (default ``2 * r``) apply to every role; ``ranks`` and ``alphas``
        override them per role or alias (``{"ffn": 4}``) through PEFT's ``rank_pattern`` and
        ``alpha_pattern``, keyed so each key hits exactly its role's targets. Other keyword
        arguments go to ``LoraConfig`` unchanged.
        """
        from peft import LoraConfig

        r = _check_rank(r, "rank")
        lora_alpha = _check_alpha(2 * r if lora_alpha is None else lora_alpha, "alpha")
        rank_pattern = self._pattern(_per_role(ranks or {}, self, "rank"))
        alpha_pattern = self._pattern(_per_role(alphas or {}, self, "alpha"))
        target_modules = self.target_modules()
        target_parameters = self.target_parameters()
        kwargs = dict(
            r=r,
            lora_alpha=lora_alpha,
            target_modules=target_modules,
            rank_pattern=rank_pattern,
            alpha_pattern=alpha_pattern,
        )
        if target_parameters:
            kwargs["target_parameters"] = target_parameters
        kwargs.update(lora_kwargs)
        try:
            return LoraConfig(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"PEFT rejects this LoRA configuration: {' '.join(str(exc).split())}") from None

    def trainable_parameters(self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None) -> int:
        """The trainable parameters PEFT will create for ``lora_config(r=r, ranks=ranks)``."""
        return sum(self.trainable_by_role(r, ranks).values())

    def trainable_by_role(self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None) -> dict[str, int]:
        """Trainable LoRA parameters per role."""
        r = _check_rank(r, "rank")
        per_role = _per_role(ranks or {}, self, "rank")
        out: dict[str, int] = {}
        by_name = {leaf.name: leaf for leaf in self.model_map.leaves}
        for role, names in self.names_by_role().items():
            rank = per_role.get(role, r)
            out[role] = sum(by_name[n].lora_parameters(rank) for n in names)
        return out

    def to_dict(self, r: int = DEFAULT_RANK, lora_alpha: float | None = None, ranks=None, alphas=None) -> dict[str, Any]:
        """The ``--format json`` document."""
        config = self.lora_config(r=r, lora_alpha=lora_alpha, ranks=ranks, alphas=alphas)
        target_modules = config.target_modules
        if isinstance(target_modules, (set, frozenset, tuple)):
            target_modules = sorted(target_modules)
        return {
            "model": self.model_map.model,
            "model_type": self.model_map.model_type,
            "plugin": self.model_map.plugin,
            "roles": self.names_by_role(),
            "target_modules": target_modules,
            "target_parameters": list(config.target_parameters or []),
            "trainable_parameters": self.trainable_parameters(r, ranks),
            "warnings": list(self.warnings),
            **({"layers": {stack: list(kept) for stack, kept in self.layers.items()}} if self.layers else {}),
        }

    def adapter_config(self, r: int = DEFAULT_RANK, lora_alpha: float | None = None, ranks=None, alphas=None, **kw) -> str:
        """``adapter_config.json`` text, as ``LoraConfig.save_pretrained`` writes it (deterministic)."""
        config = self.lora_config(r=r, lora_alpha=lora_alpha, ranks=ranks, alphas=alphas, **kw)
        if isinstance(self.model_map.model, str):
            config.base_model_name_or_path = self.model_map.model
        data = config.to_dict()
        for key, value in list(data.items()):
            if isinstance(value, (set, frozenset)):
                data[key] = sorted(value)
        return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"

    # ------------------------------------------------------------------ helpers
    def _pattern(self, per_role: Mapping[str, Any]) -> dict[str, Any]:
        """PEFT pattern keys for per-role overrides: exact among this resolution's own targets."""
        if not per_role:
            return {}
        keys = self._target_keys
        by_role = {role: [keys[n] for n in names] for role, names in self.names_by_role().items()}
        targeted = [key for names in by_role.values() for key in names]
        pattern: dict[str, Any] = {}
        for role, value in per_role.items():
            names = by_role.get(role, [])
            if not names:
                continue
            suffixes = exact_suffixes(names, targeted)
            if suffixes is None:
                pattern[exact_regex(names, targeted)] = value
            else:
                for suffix in suffixes:
                    pattern[re.escape(suffix)] = value
        return pattern


def resolve(
    model: Any,
    roles: str | Sequence[str] = "q,v",
    *,
    scope: str | Sequence[str] = "language",
    strict: bool = False,
    layers: str | Sequence[int] | None = None,
    last_layers: int | None = None,
    trust_remote_code: bool = False,
    plugin_manager: Any = None,
    plugin: str | None = None,
) -> Resolution:
    """Resolve a role spec (``"q,v,ffn"`` or a list) onto MODEL's concrete module and parameter names.

    ``scope`` is ``"language"`` (default) or a comma list / list of language, vision, audio and
    projector. A requested role the model has only inside a fused module resolves to that module
    with a warning (an error with ``strict=True``). A role or alias matching nothing raises
    ``RoleError`` naming the roles the model does have.

    ``layers`` (``"0-7,24-31"`` or a list of indices) or ``last_layers`` (N) keep only those
    layers of each layer stack in scope (a VLM's language model, an encoder and a decoder each
    count their own layers); leaves outside the stacks (embed, lm-head) are unaffected.
    """
    registry = load_registry()
    requests = parse_roles(roles, registry)  # fail on bad roles before building anything
    scopes = parse_scopes(scope)
    selection = parse_layer_selection(layers, last_layers)
    model_map = model if isinstance(model, ModelMap) else inspect(
        model, trust_remote_code=trust_remote_code, plugin_manager=plugin_manager, plugin=plugin
    )
    return resolve_map(model_map, requests, scopes, strict=strict, registry=registry, layers=selection)


def parse_layer_selection(layers: str | Sequence[int] | None, last_layers: int | None) -> tuple | None:
    """Check ``layers`` / ``last_layers`` before any model is built: ``("layers", {i, ...})``,
    ``("last", n)`` or ``None``."""
    if layers is not None and last_layers is not None:
        raise ConfigError("give --layers or --last-layers, not both")
    if last_layers is not None:
        if isinstance(last_layers, bool) or not isinstance(last_layers, int) or last_layers < 1:
            raise ConfigError(f"--last-layers must be a positive whole number, not {last_layers!r}")
        return ("last", last_layers)
    if layers is None:
        return None
    return ("layers", frozenset(parse_layers(layers)))


def parse_layers(spec: str | Sequence[int]) -> list[int]:
    """``"0-7,24-31"`` (or a list of ints) -> sorted layer indices; a one-line ``ConfigError`` otherwise."""
    if not isinstance(spec, str):
        items = list(spec)
        if not items or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in items):
            raise ConfigError(f"layers must be whole numbers >= 0, not {spec!r}")
        return sorted(set(items))
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d{1,6})(?:\s*-\s*(\d{1,6}))?", part)
        if not match:
            raise ConfigError(f"bad layer range {part!r} in {spec!r}; write e.g. 0-7,24-31")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if end < start:
            raise ConfigError(f"bad layer range {part!r}: it ends before it starts")
        out.update(range(start, end + 1))
    return sorted(out)


def _select_layers(model_map: ModelMap, scopes, selection) -> tuple[set[str], dict[str, tuple[int, ...]]]:
    """Names of the in-scope stack leaves a layer selection drops, and the layers kept per stack."""
    depth: dict[str, int] = {}
    for leaf in model_map.leaves:
        if leaf.scope in scopes and leaf.layer is not None:
            depth[leaf.stack] = max(depth.get(leaf.stack, 0), leaf.layer + 1)
    if not depth:
        raise ConfigError(f"{model_map.model} has no layer stack in scope {','.join(scopes)} to select layers from")
    kind, value = selection
    kept: dict[str, tuple[int, ...]] = {}
    for stack, n in depth.items():
        if kind == "last":
            kept[stack] = tuple(range(max(0, n - value), n))
        else:
            beyond = sorted(i for i in value if i >= n)
            if beyond:
                raise ConfigError(
                    f"layer {beyond[0]} does not exist: {stack} in {model_map.model} has layers 0-{n - 1}"
                )
            kept[stack] = tuple(sorted(value))
    dropped = {
        leaf.name for leaf in model_map.leaves
        if leaf.layer is not None and leaf.scope in scopes and leaf.layer not in kept.get(leaf.stack, ())
    }
    return dropped, kept


def resolve_map(model_map: ModelMap, requests, scopes, *, strict=False, registry=None, layers=None) -> Resolution:
    """Resolve already-parsed role requests against an inspected model (``layers`` from ``parse_layer_selection``)."""
    registry = registry or load_registry()
    dropped, kept = _select_layers(model_map, scopes, layers) if layers else (set(), None)
    present = model_map.present_roles(scopes)
    where = "" if scopes == ("language",) else f" (scope {','.join(scopes)})"
    chosen: list[str] = []
    warnings: list[str] = list(model_map.warnings)
    substituted: dict[str, str] = {}
    fused_notes: dict[str, tuple[str, list[str]]] = {}
    for request in requests:
        explicit = len(request.roles) == 1
        hits = [role for role in request.roles if role in present]
        if explicit and not hits:
            role = request.roles[0]
            fused = registry.fused.get(role)
            if fused in present:
                example = model_map.leaves_with_role(fused, scopes)[0].name
                if strict:
                    raise RoleError(
                        f"{role} exists only fused into {fused} ({example}) in {model_map.model}; "
                        f"ask for {fused} or drop --strict"
                    )
                substituted[role] = fused
                fused_notes.setdefault(fused, (example, []))[1].append(role)
                hits = [fused]
        if not hits:
            if request.written in registry.roles:
                what = f"role {request.written!r}"
            elif explicit:
                what = f"role {request.written!r} ({request.roles[0]})"
            else:
                what = f"alias {request.written!r}"
            raise RoleError(
                f"{what} matches nothing in {model_map.model}{where}; "
                f"it has: {', '.join(present) or 'no roles'}"
            )
        chosen.extend(hits)
    for fused, (example, asked) in fused_notes.items():
        parts = [r for r, f in registry.fused.items() if f == fused]
        extra = [r for r in parts if r not in asked]
        also = f": {' and '.join(extra)} {'gets' if len(extra) == 1 else 'get'} adapted too" if extra else ""
        warnings.append(f"{' and '.join(asked)} exist only fused into {fused} ({example}){also}")
    ordered = [role for role in registry.roles if role in set(chosen)]
    modules: dict[str, list[str]] = {}
    parameters: dict[str, list[str]] = {}
    for role in ordered:
        for leaf in model_map.leaves_with_role(role, scopes):
            if leaf.name in dropped:
                continue
            bucket = modules if leaf.kind == "module" else parameters
            bucket.setdefault(role, []).append(leaf.name)
    if layers:
        for request in requests:
            hits = [substituted.get(role, role) for role in request.roles]
            if not any(role in modules or role in parameters for role in hits):
                raise RoleError(f"{request.written!r} has no leaf in the selected layers of {model_map.model}")
    renamed = peft_renamed_leaves(model_map.model_type)
    moved = sorted({n.rsplit(".", 1)[-1] for names in modules.values() for n in names if n.rsplit(".", 1)[-1] in renamed})
    if moved:
        warnings.append(
            f"PEFT rewrites target_modules named {', '.join(moved)} on {model_map.model_type} into expert "
            "parameters; those modules are targeted as <module>.weight in target_parameters instead, "
            "so PEFT adapts exactly them"
        )
    ordered = [role for role in ordered if role in modules or role in parameters]
    return Resolution(model_map, ordered, scopes, modules, parameters, warnings, substituted, registry, kept)


def parse_scopes(scope: str | Sequence[str]) -> tuple[str, ...]:
    """``"language,vision"`` or a list -> a tuple of valid scopes."""
    items = scope.split(",") if isinstance(scope, str) else list(scope)
    out = tuple(dict.fromkeys(s.strip().lower() for s in items if str(s).strip()))
    bad = [s for s in out if s not in SCOPES]
    if bad or not out:
        raise ConfigError(f"unknown scope {', '.join(bad) or '(empty)'}; choose from {', '.join(SCOPES)}")
    return out


def _per_role(overrides: Mapping[str, Any], resolution: Resolution, what: str) -> dict[str, Any]:
    """Expand ``{"ffn": 4, "q": 16}`` to concrete roles; a single role beats an alias covering it."""
    registry = resolution.registry
    out: dict[str, Any] = {}
    specificity: dict[str, int] = {}
    for key, value in overrides.items():
        value = _check_rank(value, f"{what} for {key}") if what == "rank" else _check_alpha(value, f"{what} for {key}")
        (request,) = parse_roles([key], registry)
        roles = [resolution.substituted.get(role, role) for role in request.roles]
        roles = [role for role in roles if role in resolution.roles]
        if not roles:
            raise ConfigError(f"{what} given for {key}, which is not among the resolved roles ({', '.join(resolution.roles)})")
        weight = 0 if len(request.roles) > 1 else 1
        for role in roles:
            if weight >= specificity.get(role, -1):
                out[role] = value
                specificity[role] = weight
    return out


def _check_rank(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive whole number, not {value!r}")
    return value


def _check_alpha(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{what} must be a positive number, not {value!r}")
    return value
