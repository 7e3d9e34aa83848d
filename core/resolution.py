"""``resolve``: a role spec -> the exact module and parameter names it selects in one model.

A ``Resolution`` is the selection only. ``Resolution.plan(settings)`` applies LoRA settings to it
(``lora_registry.plan.AdapterPlan``: ranks, targets, patterns, cost, every PEFT check run once);
``lora_config``, ``cost``, ``to_dict`` and ``adapter_config`` are shortcuts through a plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, RoleError
from .inspection import Leaf, ModelMap, inspect
from .peft_compat import further_adapter_target_parameters, renamed_module_names
from .registry import SCOPES, Registry
from .roles import RoleRequest, parse_roles
from .settings import DEFAULT_RANK, LoraSettings, check_alpha, check_rank
from .targeting import exact_layered, exact_regex, exact_suffixes

if TYPE_CHECKING:  # pragma: no cover
    from peft import LoraConfig

    from .inspection import ModelInput, PluginManagerArg
    from .plan import AdapterPlan, Cost

__all__ = ["DEFAULT_RANK", "Resolution", "format_layers", "parse_layers", "parse_scopes", "resolve", "resolve_map"]


@dataclass(frozen=True)
class Resolution:
    """Which leaves a role spec selects in one model, and the PEFT keys that target exactly those.

    ``modules`` / ``parameters`` map each resolved role to its module / parameter names (model
    order); ``substituted`` maps a requested role to the fused role that serves it; ``layers`` the
    layer indices kept per stack (``None``: every layer). Apply LoRA settings with ``plan``.
    """

    model_map: ModelMap
    roles: list[str]
    scopes: tuple[str, ...]
    modules: dict[str, list[str]]
    parameters: dict[str, list[str]]
    warnings: list[str] = field(default_factory=list)
    substituted: dict[str, str] = field(default_factory=dict)  # requested role -> fused role that serves it
    #: the layer indices selected in each stack (``None``: every layer); leaves outside a stack are unaffected
    layers: dict[str, tuple[int, ...]] | None = None

    @property
    def registry(self) -> Registry:
        """The registry the model was classified with (roles, aliases, fused roles)."""
        return self.model_map.vocabulary

    # ------------------------------------------------------------------ selection
    @cached_property
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

    def covers(self, key: str) -> bool:
        """True when role or alias ``key`` names at least one resolved role (fused substitutes count)."""
        try:
            (request,) = parse_roles([key], self.registry)
        except RoleError:
            return False
        return any(self.substituted.get(role, role) in self.roles for role in request.roles)

    def rank_of(self, role: str, r: int, ranks: Mapping[str, int] | None) -> int:
        """The rank a role gets: its own override, an alias override, else ``r``."""
        return per_role(ranks or {}, self, "rank").get(role, r)

    def layer_kept(self, leaf: Leaf) -> bool:
        """False for a leaf in a layer the layer selection dropped."""
        kept = self.layers.get(leaf.stack or "") if self.layers and leaf.layer is not None else None
        return kept is None or leaf.layer in kept

    # ------------------------------------------------------------------ PEFT targets
    def target_keys(self) -> dict[str, str]:
        """``{leaf name: the key PEFT will target}``: the module name, or a parameter name.

        Modules go through ``target_modules`` except where PEFT would rewrite their name into
        expert parameters (``peft_compat.renamed_module_names``); those are targeted exactly
        through ``target_parameters`` as ``<module>.weight``, which adds the same LoRA parameters.
        """
        return dict(self._target_keys)

    @cached_property
    def _target_keys(self) -> dict[str, str]:
        renamed = renamed_module_names(self.model_map.model_type)
        keys = {}
        for leaf in self.leaves:
            moved = leaf.kind == "module" and leaf.lora_type == "linear" and leaf.short_name in renamed
            keys[leaf.name] = leaf.name + ".weight" if moved else leaf.name
        return keys

    def target_modules(self) -> list[str] | str:
        """PEFT ``target_modules``: a short suffix list where that is exact, else a regex (or full names)."""
        return self._target_modules

    @cached_property
    def _selected_modules(self) -> list[str]:
        """The module names PEFT targets through ``target_modules``."""
        keys = self._target_keys
        return [keys[n] for names in self.modules.values() for n in names if keys[n] == n]

    @cached_property
    def _suffixes(self) -> list[str] | None:
        return exact_suffixes(self._selected_modules, self.model_map.all_module_names)

    @cached_property
    def _target_modules(self) -> list[str] | str:
        selected = self._selected_modules
        if not selected:
            return []
        universe = self.model_map.all_module_names
        if self._suffixes is not None:
            return self._suffixes
        if renamed_module_names(self.model_map.model_type):
            return sorted(selected)  # PEFT would widen a regex into bare leaf names here
        return exact_regex(selected, universe)

    def target_module_names(self) -> list[str]:
        """The full names of the modules PEFT targets through ``target_modules`` (model order)."""
        return list(self._selected_modules)

    def layered_targets(self) -> tuple[list[str], list[int], str | list[str] | None] | None:
        """PEFT ``(target_modules, layers_to_transform, layers_pattern)`` for a layer selection, or ``None``.

        Given where short suffixes alone cannot single out the selected layers and those three fields
        select exactly the resolved modules under PEFT's rule (``targeting.exact_layered``): the
        compact form of ``--layers 0-7,24-31``. Trainers without a layer option use ``target_modules()``.
        """
        return self._layered

    @cached_property
    def _layered(self) -> tuple[list[str], list[int], str | list[str] | None] | None:
        selected = self._selected_modules
        if not self.layers or not selected or self._suffixes is not None:
            return None
        stacks = {leaf.stack for leaf in self.leaves if leaf.stack and leaf.name in set(selected)}
        return exact_layered(selected, self.model_map.all_module_names, stacks)

    def target_parameters(self) -> list[str]:
        """PEFT ``target_parameters``: suffixes where exact, else full parameter names.

        On a PEFT model whose adapters already use ``target_parameters``, those very strings (PEFT
        requires every adapter to use the same); a selection of other parameters raises ``ConfigError``.
        """
        return list(self._target_parameters)

    @cached_property
    def _target_parameters(self) -> list[str]:
        keys = self._target_keys
        parameters = {n for names in self.parameters.values() for n in names}
        selected = [key for name, key in keys.items() if key != name or name in parameters]
        if not selected:
            return []
        # a further adapter on a PEFT model: PEFT wants the very strings its existing adapters use
        agreed = further_adapter_target_parameters(
            self.model_map.peft_target_parameters, selected, self.model_map.parameter_names
        )
        if agreed is not None:
            return agreed
        suffixes = exact_suffixes(selected, self.model_map.parameter_names)
        return suffixes if suffixes is not None else sorted(selected)

    def modules_to_save(self, items: str | Sequence[str] | None) -> list[str] | None:
        """Roles, aliases or module names (a full name or a dotted suffix) -> this model's exact module names.

        Roles resolve within this resolution's scopes and selected layers. A name that matches
        nothing, or a role whose leaves are parameters rather than modules, raises ``ConfigError``.
        """
        if items is None:
            return None
        try:
            parts = items.split(",") if isinstance(items, str) else [str(i) for i in items]
        except TypeError:
            raise ConfigError(f"modules_to_save must be a comma list or a list of names, not {items!r}") from None
        names = [n for n in self.model_map.all_module_names if n]
        model = self.model_map.model
        chosen: set[str] = set()
        for item in (i.strip() for i in parts):
            if not item:
                continue
            try:
                (request,) = parse_roles([item], self.registry)
            except RoleError:
                hits = [n for n in names if n == item or n.endswith("." + item)]
                if not hits:
                    raise ConfigError(f"modules_to_save: {item!r} is neither a role nor a module of {model}") from None
                chosen.update(hits)
                continue
            leaves = [
                leaf
                for role in request.roles
                for leaf in self.model_map.leaves_with_role(role, self.scopes)
                if self.layer_kept(leaf)
            ]
            if not leaves:
                raise ConfigError(
                    f"modules_to_save: {item!r} matches nothing in {model}; it has: "
                    f"{', '.join(self.model_map.present_roles(self.scopes))}"
                )
            params = [leaf.name for leaf in leaves if leaf.kind != "module"]
            if params:
                raise ConfigError(
                    f"modules_to_save: {item!r} selects parameters ({params[0]}), not modules; "
                    "PEFT copies whole modules"
                )
            chosen.update(leaf.name for leaf in leaves)
        return [n for n in names if n in chosen] or None

    # ------------------------------------------------------------------ LoRA settings applied
    def plan(self, settings: LoraSettings | None = None) -> AdapterPlan:
        """Apply LoRA ``settings`` (default: rank 8, alpha 16): ranks, targets, patterns and cost, every check once."""
        from .plan import build_plan

        return build_plan(self, settings if settings is not None else LoraSettings())

    def lora_config(
        self,
        r: int = DEFAULT_RANK,
        lora_alpha: float | None = None,
        ranks: Mapping[str, int] | None = None,
        alphas: Mapping[str, float] | None = None,
        **options: Any,
    ) -> LoraConfig:
        """A ``peft.LoraConfig`` that adapts exactly this resolution.

        ``r`` and ``lora_alpha`` (default ``2 * r``) apply to every role; ``ranks`` and ``alphas``
        override them per role or alias (``{"ffn": 4}``) through PEFT's ``rank_pattern`` and
        ``alpha_pattern``, keyed so each key hits exactly its role's targets. ``lora_dropout``,
        ``bias``, ``use_rslora``, ``use_dora`` and ``init_lora_weights`` go to PEFT as they are;
        ``modules_to_save`` takes roles, aliases or module names (``"lm-head"``, ``"embed_tokens"``)
        and is written as this model's exact module names. Combinations PEFT would reject raise
        ``ConfigError`` first. Other keyword arguments go to ``LoraConfig`` unchanged.
        """
        return self.plan(LoraSettings.from_options(r, lora_alpha, ranks, alphas, **options)).lora_config()

    def cost(self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None, **options: Any) -> Cost:
        """What ``lora_config(r=r, ranks=ranks, **options)`` costs to train, counted as PEFT builds it.

        The total equals the ``requires_grad`` parameters of ``peft.get_peft_model(model, config)``.
        (EVA may move rank between layers later, when ``initialize_lora_eva_weights`` runs on data.)
        """
        return self.plan(LoraSettings.from_options(r, None, ranks, None, **options)).cost

    def trainable_parameters(
        self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None, **options: Any
    ) -> int:
        """The trainable parameters PEFT will create for ``lora_config(r=r, ranks=ranks, **options)``."""
        return self.cost(r, ranks, **options).total

    def to_dict(
        self,
        r: int = DEFAULT_RANK,
        lora_alpha: float | None = None,
        ranks: Mapping[str, int] | None = None,
        alphas: Mapping[str, float] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """The ``--format json`` document; ``options`` as for ``lora_config``."""
        return self.plan(LoraSettings.from_options(r, lora_alpha, ranks, alphas, **options)).to_dict()

    def adapter_config(
        self,
        r: int = DEFAULT_RANK,
        lora_alpha: float | None = None,
        ranks: Mapping[str, int] | None = None,
        alphas: Mapping[str, float] | None = None,
        **options: Any,
    ) -> str:
        """``adapter_config.json`` text, as ``LoraConfig.save_pretrained`` writes it (deterministic)."""
        return self.plan(LoraSettings.from_options(r, lora_alpha, ranks, alphas, **options)).adapter_config()


def resolve(
    model: ModelInput | ModelMap,
    roles: str | Sequence[str] = "q,v",
    *,
    scope: str | Sequence[str] = "language",
    strict: bool = False,
    layers: str | Sequence[int] | None = None,
    last_layers: int | None = None,
    trust_remote_code: bool = False,
    plugin_manager: PluginManagerArg = None,
    plugin: str | None = None,
    fast: bool = False,
    cache: bool = False,
    revision: str | None = None,
) -> Resolution:
    """Resolve a role spec (``"q,v,ffn"`` or a list) onto MODEL's concrete module and parameter names.

    ``scope`` is ``"language"`` (default) or a comma list / list of language, vision, audio and
    projector. A requested role the model has only inside a fused module resolves to that module
    with a warning (an error with ``strict=True``). A role or alias matching nothing raises
    ``RoleError`` naming the roles the model does have.

    ``layers`` (``"0-7,24-31"`` or a list of indices) or ``last_layers`` (N) keep only those
    layers of each layer stack in scope (a VLM's language model, an encoder and a decoder each
    count their own layers); leaves outside the stacks (embed, lm-head) are unaffected.
    ``fast``, ``cache`` and ``revision`` are passed to ``inspect``.
    """
    from .host import as_host

    host = None if isinstance(model, ModelMap) else as_host(plugin_manager)
    registry = model.vocabulary if isinstance(model, ModelMap) else host.registry  # type: ignore[union-attr]
    requests = parse_roles(roles, registry)  # fail on bad roles before building anything
    scopes = parse_scopes(scope)
    selection = parse_layer_selection(layers, last_layers)
    model_map = (
        model
        if isinstance(model, ModelMap)
        else inspect(
            model,
            trust_remote_code=trust_remote_code,
            plugin_manager=host,
            plugin=plugin,
            fast=fast,
            cache=cache,
            revision=revision,
        )
    )
    return resolve_map(model_map, requests, scopes, strict=strict, layers=selection)


def parse_layer_selection(layers: str | Sequence[int] | None, last_layers: int | None) -> tuple[str, Any] | None:
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
        try:
            items = list(spec) if not isinstance(spec, (bytes, bytearray)) else None
        except TypeError:
            items = None
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


def format_layers(values: Any) -> str:
    """Layer indices as ranges, the inverse of ``parse_layers``: ``[0, 1, 2, 5]`` -> ``"0-2,5"`` (``"-"`` if none)."""
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


def _select_layers(
    model_map: ModelMap, scopes: tuple[str, ...], selection: tuple[str, Any]
) -> tuple[set[str], dict[str, tuple[int, ...]]]:
    """Names of the in-scope stack leaves a layer selection drops, and the layers kept per stack."""
    depth: dict[str, int] = {}
    for leaf in model_map.leaves:
        if leaf.scope in scopes and leaf.layer is not None and leaf.stack is not None:
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
        leaf.name
        for leaf in model_map.leaves
        if leaf.layer is not None and leaf.scope in scopes and leaf.layer not in kept.get(leaf.stack or "", ())
    }
    return dropped, kept


def resolve_map(
    model_map: ModelMap,
    requests: Sequence[RoleRequest],
    scopes: tuple[str, ...],
    *,
    strict: bool = False,
    layers: tuple[str, Any] | None = None,
) -> Resolution:
    """Resolve already-parsed role requests against an inspected model (``layers`` from ``parse_layer_selection``)."""
    registry = model_map.vocabulary
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
                f"{what} matches nothing in {model_map.model}{where}; it has: {', '.join(present) or 'no roles'}"
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
    renamed = renamed_module_names(model_map.model_type)
    moved = sorted(
        {n.rsplit(".", 1)[-1] for names in modules.values() for n in names if n.rsplit(".", 1)[-1] in renamed}
    )
    if moved:
        warnings.append(
            f"PEFT rewrites target_modules named {', '.join(moved)} on {model_map.model_type} into expert "
            "parameters; those modules are targeted as <module>.weight in target_parameters instead, "
            "so PEFT adapts exactly them"
        )
    ordered = [role for role in ordered if role in modules or role in parameters]
    return Resolution(model_map, ordered, scopes, modules, parameters, warnings, substituted, kept)


def parse_scopes(scope: str | Sequence[str]) -> tuple[str, ...]:
    """``"language,vision"`` or a list -> a tuple of valid scopes."""
    try:
        items = scope.split(",") if isinstance(scope, str) else list(scope)
    except TypeError:
        raise ConfigError(f"scope must be a comma list or a list of scopes, not {scope!r}") from None
    out = tuple(dict.fromkeys(s.strip().lower() for s in items if str(s).strip()))
    bad = [s for s in out if s not in SCOPES]
    if bad or not out:
        raise ConfigError(f"unknown scope {', '.join(bad) or '(empty)'}; choose from {', '.join(SCOPES)}")
    return out


def per_role(overrides: Mapping[str, Any], resolution: Resolution, what: str) -> dict[str, Any]:
    """Expand ``{"ffn": 4, "q": 16}`` to concrete roles; the narrower key wins (``q`` over ``attention`` over ``all``).

    A key naming no resolved role is a ``ConfigError`` (values are checked by ``LoraSettings``).
    """
    registry = resolution.registry
    out: dict[str, Any] = {}
    specificity: dict[str, float] = {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"{what}s must be a mapping of role or alias to value, e.g. {{'ffn': 4}}, not {type(overrides).__name__}"
        )
    for key, value in overrides.items():
        value = check_rank(value, f"{what} for {key}") if what == "rank" else check_alpha(value, f"{what} for {key}")
        (request,) = parse_roles([key], registry)
        roles = [resolution.substituted.get(role, role) for role in request.roles]
        roles = [role for role in roles if role in resolution.roles]
        if not roles:
            raise ConfigError(
                f"{what} given for {key}, which is not among the resolved roles ({', '.join(resolution.roles)})"
            )
        weight = -len(request.roles)  # the narrower key wins: q over attention over all, ffn over all
        for role in roles:
            if weight >= specificity.get(role, float("-inf")):
                out[role] = value
                specificity[role] = weight
    return out
