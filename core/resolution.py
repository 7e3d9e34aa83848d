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
from .limits import lora_limits
from .peft_compat import ALL_LINEAR, all_linear_leaves, further_adapter_target_parameters, renamed_module_names
from .registry import SCOPES, Registry
from .roles import RoleRequest, parse_roles, unknown_words
from .settings import DEFAULT_RANK, LoraSettings, check_alpha, check_rank, split_names
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
    #: a one-role alias as written -> the roles that serve it where the model lacks its role (``[served_by]``)
    served: dict[str, tuple[str, ...]] = field(default_factory=dict)

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
        return any(role in self.roles for role in self.serving(request))

    def serving(self, request: RoleRequest) -> tuple[str, ...]:
        """The resolved-or-not roles that stand for ``request`` here: its own, a fused one, or those serving it."""
        return _serving(request, self.served, self.substituted)

    def rank_of(self, role: str, r: int, ranks: Mapping[str, int] | None) -> int:
        """The rank a role gets: its own override, an alias override, else ``r``."""
        return per_role(ranks or {}, self, "rank").get(role, r)

    def outside_scope(self) -> dict[str, int]:
        """``{scope: leaves}`` of the resolved roles that the chosen scopes leave out (a VLM's vision tower's q_proj)."""
        counts: dict[str, int] = {}
        for leaf in self.model_map.leaves:
            if leaf.scope not in self.scopes and self.model_map.roles.get(leaf.name) in self.roles:
                counts[leaf.scope] = counts.get(leaf.scope, 0) + 1
        return counts

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
        chosen = set(selected)
        stacks = {leaf.stack for leaf in self.leaves if leaf.stack and leaf.name in chosen}
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
        items = split_names(items)
        if items is None:
            return None
        names = [n for n in self.model_map.all_module_names if n]
        model = self.model_map.model
        chosen: set[str] = set()
        for item in items:
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
    scope: str | Sequence[str] | None = None,
    strict: bool = False,
    layers: str | Sequence[int] | None = None,
    last_layers: int | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    trust_remote_code: bool = False,
    plugin_manager: PluginManagerArg = None,
    plugin: str | None = None,
    fast: bool = False,
    cache: bool = False,
    revision: str | None = None,
) -> Resolution:
    """Resolve a role spec (``"q,v,ffn"`` or a list) onto MODEL's concrete module and parameter names.

    ``roles`` may also hold PEFT's ``all-linear``: every Linear PEFT's keyword adapts, in scope.
    ``scope`` is a comma list / list of language, vision, audio and projector; ``None`` (default) is
    the language model, plus the audio encoder of a speech encoder-decoder (``default_scopes``).
    A requested role the model has only inside a fused module resolves to that module, and a
    one-role alias whose role the model lacks to the roles that do its job (``q`` on latent
    attention, ``gate``/``up``/``down`` on routed experts), with a warning (an error with
    ``strict=True``). A role or alias matching nothing raises ``RoleError`` naming the roles the
    model does have. Leaves LoRA cannot train here (``lora_registry.limits``) are left out of an
    alias with one warning; asking for their role explicitly raises ``RoleError``.

    ``include`` / ``exclude`` (comma list or list of module or parameter names, dotted suffixes, or
    ``re:REGEX``) add leaves to the resolved set (a leaf without a role is listed as role ``null``)
    or remove them from it.

    ``layers`` (``"0-7,24-31"`` or a list of indices) or ``last_layers`` (N) keep only those
    layers of each layer stack in scope (a VLM's language model, an encoder and a decoder each
    count their own layers); leaves outside the stacks (embed, lm-head) are unaffected.
    ``fast``, ``cache`` and ``revision`` are passed to ``inspect``.
    """
    from .host import as_host

    host = None if isinstance(model, ModelMap) else as_host(plugin_manager)
    registry = model.vocabulary if isinstance(model, ModelMap) else host.registry  # type: ignore[union-attr]
    requests = parse_roles_early(roles, registry)
    scopes = parse_scopes(scope) if scope is not None else None
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
    if requests is None:
        requests = parse_roles_for(model_map, roles)
    return resolve_map(model_map, requests, scopes, strict=strict, layers=selection, include=include, exclude=exclude)


def parse_roles_early(roles: str | Sequence[str], registry: Registry) -> list[RoleRequest] | None:
    """``parse_roles`` with ``all-linear`` before any model is read or built: bad roles fail here.

    ``None`` where a word may name one of the model's modules (``q_proj``): ``parse_roles_for``
    answers it, with a hint, once the model is read.
    """
    unknown = unknown_words(roles, registry)
    if unknown and any(module_like_word(word, registry) for word in unknown):
        return None
    return parse_roles(roles, registry, all_linear=True)  # raises for a word that names no module


def parse_roles_for(model_map: ModelMap, roles: str | Sequence[str]) -> list[RoleRequest]:
    """``parse_roles`` with ``all-linear``; an unknown word that is a module name of this model gets a hint."""
    registry = model_map.vocabulary
    for word in unknown_words(roles, registry):
        hint = role_word_hint(model_map, word)
        if hint is not None:
            raise RoleError(f"unknown role or alias {word!r}: {hint}")
    return parse_roles(roles, registry, all_linear=True)


def module_like_word(word: str, registry: Registry) -> bool:
    """Could ``word`` be a module name (``q_proj``, ``in_proj``, ``wq``) or PEFT's word, rather than a typo of a role?"""
    if not re.fullmatch(r"[a-z_][a-z0-9_.]*", word):
        return False  # roles and aliases are lower-case words joined by "-"; module names never hold one
    if "_" in word or "." in word or any(c.isdigit() for c in word):
        return True
    return any(word in (n.lower() for n in names) for family in registry.names.values() for names in family.values())


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
    scopes: tuple[str, ...] | None = None,
    *,
    strict: bool = False,
    layers: tuple[str, Any] | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> Resolution:
    """Resolve already-parsed role requests against an inspected model (``layers`` from ``parse_layer_selection``).

    ``scopes`` ``None`` is the model's default (``default_scopes``). ``include`` / ``exclude`` (module
    or parameter names, dotted suffixes, or ``re:REGEX``) add leaves to the resolved set -- a leaf with
    no role is listed as role ``null`` -- or remove them from it.
    """
    registry = model_map.vocabulary
    scopes = default_scopes(model_map) if scopes is None else scopes
    dropped, kept = _select_layers(model_map, scopes, layers) if layers else (set(), None)
    present = model_map.present_roles(scopes)
    where = "" if scopes == default_scopes(model_map) else f" (scope {','.join(scopes)})"
    limits = lora_limits(model_map)
    warnings: list[str] = list(model_map.warnings)
    substituted: dict[str, str] = {}
    served: dict[str, tuple[str, ...]] = {}
    fused_notes: dict[str, tuple[str, list[str]]] = {}
    chosen: list[str] = []
    explicit: set[str] = set()  # roles asked for by name or by a one-role alias (served ones included)
    all_linear = False
    for request in requests:
        if request.written == ALL_LINEAR and not request.roles:
            all_linear = True
            continue
        one = len(request.roles) == 1
        hits = [role for role in request.roles if role in present]
        if one and not hits:
            role = request.roles[0]
            fused = registry.fused.get(role)
            serving = [r for r in registry.served_by.get(request.written, ()) if r in present]
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
            elif serving:
                if strict:
                    raise RoleError(
                        f"{model_map.model} has no {role}; {' and '.join(serving)} do its job there; "
                        "ask for them or drop --strict"
                    )
                served[request.written] = tuple(serving)
                hits = serving
        if not hits:
            if request.written in registry.roles:
                what = f"role {request.written!r}"
            elif one:
                what = f"role {request.written!r} ({request.roles[0]})"
            else:
                what = f"alias {request.written!r}"
            raise RoleError(
                f"{what} matches nothing in {model_map.model}{where}; it has: {', '.join(present) or 'no roles'}"
                f"{_mixer_hint(model_map, request, scopes)}"
            )
        chosen.extend(hits)
        if one:
            explicit.update(hits)
    warnings.extend(_substitution_notes(model_map, registry, scopes, fused_notes, served))
    wanted = set(chosen)
    selected = {
        leaf.name: leaf
        for leaf in model_map.leaves
        if leaf.scope in scopes and leaf.name not in dropped and model_map.roles.get(leaf.name) in wanted
    }
    if all_linear:
        for leaf in all_linear_leaves(model_map.tree, model_map.leaves, model_map.model_type):
            if leaf.scope in scopes and leaf.name not in dropped:
                selected[leaf.name] = leaf
    if layers:
        for request in requests:
            if request.written == ALL_LINEAR and not request.roles:
                continue
            standing = _serving(request, served, substituted)
            if not any(model_map.roles.get(name) in standing for name in selected):
                raise RoleError(f"{request.written!r} has no leaf in the selected layers of {model_map.model}")
    # --include and --exclude: by name, after the roles
    for leaf in _named_leaves(model_map, include, "include", scopes, dropped):
        selected[leaf.name] = leaf
    for leaf in _named_leaves(model_map, exclude, "exclude", scopes, dropped, among=selected):
        selected.pop(leaf.name, None)
    # leaves LoRA cannot train: an explicit role is an error, an alias leaves them out with one warning
    left_out: dict[str, str] = {}
    for name in list(selected):
        limit = limits.get(name)
        if limit is None or not limit.blocking:
            continue
        held = model_map.roles.get(name)
        if held is not None and held in explicit:
            others = [
                n for n in selected if model_map.roles.get(n) == held and not (n in limits and limits[n].blocking)
            ]
            if not others:
                raise RoleError(f"{held} in {model_map.model} is only leaves LoRA cannot train ({name}): {limit.why}")
            raise RoleError(
                f"{held} includes {name}, which LoRA cannot train here: {limit.why}; add --exclude "
                f"{name.rsplit('.', 1)[-1]} to adapt the rest, or ask for {_alias_of(registry, held)} (they leave it out)"
            )
        left_out[name] = limit.why
        del selected[name]
    if left_out:
        warnings.append(
            "left out what LoRA cannot train here: "
            + "; ".join(f"{names}: {why}" for why, names in _by_reason(left_out).items())
        )
    if not selected:
        raise RoleError(f"nothing is left to adapt in {model_map.model}{where}")
    kernels = {n: lim.why for n in selected if (lim := limits.get(n)) is not None and lim.kind == "kernels"}
    if kernels:
        warnings.append(
            "these LoRAs train only without mamba_ssm's fused kernels (without them, as on CPU, the module is "
            "called): " + "; ".join(f"{names}: {why}" for why, names in _by_reason(kernels).items())
        )
    ordered = [role for role in registry.roles if any(model_map.roles.get(n) == role for n in selected)]
    if any(model_map.roles.get(n) is None for n in selected):
        ordered.append(NULL_ROLE)
    modules: dict[str, list[str]] = {}
    parameters: dict[str, list[str]] = {}
    for leaf in model_map.leaves:
        if leaf.name in selected:
            bucket = modules if leaf.kind == "module" else parameters
            bucket.setdefault(model_map.roles.get(leaf.name) or NULL_ROLE, []).append(leaf.name)
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
    written = ",".join(request.written for request in requests)
    untouched = untouched_mixers(model_map, scopes, dropped, set(selected), written)
    if untouched:
        warnings.append(untouched)
    return Resolution(model_map, ordered, scopes, modules, parameters, warnings, substituted, kept, served)


def _serving(
    request: RoleRequest, served: Mapping[str, tuple[str, ...]], substituted: Mapping[str, str]
) -> tuple[str, ...]:
    """The roles standing for ``request``: those serving its alias, else its own with fused substitutes."""
    return served.get(request.written) or tuple(substituted.get(role, role) for role in request.roles)


#: the role ``--include`` / ``all-linear`` leaves without one are listed under
NULL_ROLE = "null"


def default_scopes(model_map: ModelMap) -> tuple[str, ...]:
    """The scopes a resolution covers unless told: the language model, and a speech encoder-decoder's audio encoder.

    A speech encoder-decoder (Whisper) is one model whose decoder cross-attends to its own audio
    encoder: the encoder is half of it. A tower feeding a language model (VLMs, audio-LLMs) is opt-in.
    """
    return ("language", "audio") if is_speech_encoder_decoder(model_map) else ("language",)


def is_speech_encoder_decoder(model_map: ModelMap) -> bool:
    """True when the audio leaves sit in an ``encoder`` whose sibling ``decoder`` holds the language leaves."""
    cached = model_map.__dict__.get("_speech_encoder_decoder")
    if cached is None:
        encoders = set()
        for leaf in model_map.leaves:
            if leaf.scope != "audio":
                continue
            parts = leaf.name.split(".")
            if "encoder" in parts:
                encoders.add(".".join(parts[: parts.index("encoder")]))
        cached = any(
            leaf.scope == "language" and leaf.name.startswith(f"{prefix}.decoder." if prefix else "decoder.")
            for prefix in encoders
            for leaf in model_map.leaves
        )
        object.__setattr__(model_map, "_speech_encoder_decoder", cached)
    return bool(cached)


def role_word_hint(model_map: ModelMap, word: str) -> str | None:
    """A hint for a role word that is really a module name of this model (``q_proj``) or a PEFT word, else ``None``."""
    if word.replace("-", "_") == ALL_LINEAR.replace("-", "_") and word != ALL_LINEAR:
        return f"{word!r} is not a role; PEFT's keyword is {ALL_LINEAR!r} (every Linear, as PEFT expands it)"
    lowered = word.lower()
    hits = [leaf for leaf in model_map.leaves if lowered in (leaf.name.lower(), leaf.short_name.lower())]
    if not hits:
        return None
    short = hits[0].short_name if hits[0].short_name.lower() == lowered else hits[0].name
    registry = model_map.vocabulary
    roles = [role for role in registry.roles if any(model_map.roles.get(leaf.name) == role for leaf in hits)]
    limit = lora_limits(model_map).get(hits[0].name)
    if limit is not None and limit.blocking:
        what = f"role {roles[0]}" if roles else "no role"
        return f"{short!r} is a module name here ({what}), but LoRA cannot train it here: {limit.why}"
    if _depthwise(hits[0]):
        return f"{short!r} is a module name here, a depthwise convolution LoRA cannot target (it has no role)"
    if roles:
        uses = ", ".join(f"role {role}: use {_alias_of(registry, role, single=True)}" for role in roles)
        return f"{short!r} is a module name here ({uses}), or pass it with --include {short}"
    return f"{short!r} is a module name here (it has no role), pass it with --include {short}"


def _alias_of(registry: Registry, role: str, single: bool = False) -> str:
    """The shortest word that asks for ``role``: a one-role alias, else the role (``single``), or the aliases holding it."""
    ones = [alias for alias, roles in registry.aliases.items() if roles == (role,)]
    if single:
        return ones[0] if ones else role
    wider = [alias for alias, roles in registry.aliases.items() if role in roles and len(roles) > 1]
    return " or ".join(wider[:2]) or "all"


def _mixer_hint(model_map: ModelMap, request: RoleRequest, scopes: tuple[str, ...]) -> str:
    """For attention asked of a model that mixes tokens otherwise: which mixer, and what to ask for."""
    if not all(role.startswith("attention-") for role in request.roles):
        return ""
    mixers = _mixer_classes(model_map, scopes, "mixer")
    if not mixers:
        return ""
    return f"; it mixes tokens with {', '.join(sorted(mixers))} (mixer-*): ask for mixer"


def _mixer_classes(model_map: ModelMap, scopes: tuple[str, ...], family: str, layers: set | None = None) -> set[str]:
    """Classes of the blocks holding the ``family`` (``attention`` or ``mixer``) leaves in scope (in ``layers``)."""
    leaves = [
        leaf
        for leaf in model_map.leaves
        if leaf.scope in scopes
        and _family(model_map.roles.get(leaf.name)) == family
        and (layers is None or leaf.layer in layers)
    ]
    # the block is the module holding an input projection (in_proj, q_proj, qkv, key, linear_x)
    inputs = [leaf for leaf in leaves if model_map.roles.get(leaf.name) in _FAMILY_INPUTS[family]] or leaves
    return {leaf.path[-2][1] for leaf in inputs if len(leaf.path) > 1}


def _family(role: str | None) -> str | None:
    if role is None:
        return None
    if role.startswith("attention-"):
        return "attention"
    if role.startswith("mixer-"):
        return "mixer"
    return None


_FAMILY_INPUTS = {
    "mixer": ("mixer-in",),
    "attention": ("attention-q", "attention-qkv", "attention-q-a", "attention-k", "attention-kv-a"),
}


def untouched_mixers(
    model_map: ModelMap,
    scopes: tuple[str, ...],
    dropped: set[str],
    selected: set[str],
    written: str,
    advice: str = "add `{family}`",
) -> str | None:
    """One warning when ``selected`` reaches the token mixer of some layers and leaves another kind untouched.

    Token mixers are the leaves of the ``attention-*`` (softmax attention) and ``mixer-*`` roles;
    ``written`` names what reaches them (``"q,v"``), ``advice`` says what to add (``{family}`` filled in).
    """
    stacks: dict[str, dict[str, Any]] = {}
    for leaf in model_map.leaves:
        if leaf.scope not in scopes or leaf.name in dropped or leaf.stack is None:
            continue
        stack = stacks.setdefault(leaf.stack, {"layers": set(), "with": {}, "touched": {}})
        stack["layers"].add(leaf.layer)
        family = _family(model_map.roles.get(leaf.name))
        if family is None:
            continue
        stack["with"].setdefault(family, set()).add(leaf.layer)
        if leaf.name in selected:
            stack["touched"].setdefault(family, set()).add(leaf.layer)
    parts = []
    for name, stack in stacks.items():
        touched = stack["touched"]
        reached = set().union(*touched.values()) if touched else set()
        for family, layers_with in stack["with"].items():
            if not reached or touched.get(family):
                continue
            classes = _mixer_classes(model_map, scopes, family, layers_with)
            also = "also " if layers_with & reached else ""
            kind = "softmax attention, " if family == "attention" else ""
            parts.append(
                f"{written} reach{'es' if ',' not in written else ''} the token mixer of {len(reached)} of "
                f"{len(stack['layers'])} layers of {name}; {len(layers_with)} {also}"
                f"{'mixes' if len(layers_with) == 1 else 'mix'} tokens with "
                f"{kind}{', '.join(sorted(classes))} ({family}-*), which this leaves untouched: "
                + advice.format(family=family)
            )
    return "; ".join(parts) or None


def _substitution_notes(
    model_map: ModelMap,
    registry: Registry,
    scopes: tuple[str, ...],
    fused_notes: Mapping[str, tuple[str, list[str]]],
    served: Mapping[str, tuple[str, ...]],
) -> list[str]:
    notes = []
    for fused, (example, asked) in fused_notes.items():
        parts = [r for r, f in registry.fused.items() if f == fused]
        extra = [r for r in parts if r not in asked]
        also = f": {' and '.join(extra)} {'gets' if len(extra) == 1 else 'get'} adapted too" if extra else ""
        notes.append(f"{' and '.join(asked)} exist only fused into {fused} ({example}){also}")
    by_roles: dict[tuple[str, ...], list[str]] = {}
    for word, roles in served.items():
        by_roles.setdefault(roles, []).append(word)
    for roles, words in by_roles.items():
        examples = ", ".join(
            sorted({leaf.short_name for role in roles for leaf in model_map.leaves_with_role(role, scopes)})
        )
        words_asked = " and ".join(words)
        verb = "is" if len(words) == 1 else "are"
        lacks = " or ".join(registry.aliases[w][0] for w in words)
        if any(role.startswith("experts-") for role in roles):
            reason = f"{model_map.model}'s feed-forward is routed experts only"
        else:
            reason = f"{model_map.model} has no {lacks}"
        text = f"{reason}: {words_asked} {verb} served by {' and '.join(roles)} ({examples})"
        if all(role.startswith("attention-kv") for role in roles):
            text += ", which k and v share: asking for either adapts both"
        elif any(role.endswith("-gate-up") for role in roles) and not {"gate", "up"} <= set(served):
            text += ", which adapts gate and up together"
        notes.append(text)
    return notes


def _named_leaves(
    model_map: ModelMap,
    items: str | Sequence[str] | None,
    option: str,
    scopes: tuple[str, ...],
    dropped: set[str],
    among: Mapping[str, Leaf] | None = None,
) -> list[Leaf]:
    """The leaves ``--include`` / ``--exclude`` items name: a full name, a dotted suffix, or ``re:REGEX`` (whole name)."""
    found: dict[str, Leaf] = {}
    for item in split_names(items, option) or ():
        regex = None
        if item.startswith("re:"):
            try:
                regex = re.compile(item[3:])
            except re.error as exc:
                raise ConfigError(f"--{option} {item!r}: not a valid regex ({exc})") from None

        def matches(name: str, item: str = item, regex: re.Pattern[str] | None = regex) -> bool:
            if regex is not None:
                return regex.fullmatch(name) is not None
            return name == item or name.endswith("." + item)

        def named(leaf: Leaf, matches: Any = matches) -> bool:
            # a parameter leaf is also named by the module holding it (mlp.gate, mlp.experts)
            return matches(leaf.name) or (leaf.kind == "parameter" and matches(leaf.owner))

        if among is not None:
            hits = [leaf for leaf in among.values() if named(leaf)]
            if not hits:
                raise ConfigError(f"--{option} {item!r} matches nothing the resolution selected in {model_map.model}")
        else:
            anywhere = [leaf for leaf in model_map.leaves if named(leaf)]
            hits = [leaf for leaf in anywhere if leaf.scope in scopes and leaf.name not in dropped]
            if not hits:
                if anywhere:
                    other = sorted({leaf.scope for leaf in anywhere if leaf.scope not in scopes})
                    why = f"only {', '.join(other)} leaves: add --scope" if other else "only leaves in layers left out"
                    raise ConfigError(f"--{option} {item!r} matches {why}")
                raise ConfigError(f"--{option} {item!r} matches no module or parameter of {model_map.model}")
            limits = lora_limits(model_map)
            blocked = [leaf for leaf in hits if leaf.name in limits and limits[leaf.name].blocking]
            if blocked:
                why = limits[blocked[0].name].why
                raise ConfigError(f"--{option} {blocked[0].name}: LoRA cannot train it here: {why}")
            unsupported = [leaf for leaf in hits if _depthwise(leaf)]
            if unsupported:
                raise ConfigError(
                    f"--{option} {unsupported[0].name}: a depthwise convolution; PEFT's LoRA for a grouped conv "
                    "needs rank % groups == 0 with groups = channels"
                )
        for leaf in hits:
            found[leaf.name] = leaf
    return list(found.values())


def _depthwise(leaf: Leaf) -> bool:
    """A convolution with one input channel per group ([C, 1, k]): PEFT's conv LoRA needs rank % groups == 0."""
    return leaf.lora_type == "conv" and len(leaf.shape) > 2 and leaf.shape[1] == 1 and leaf.shape[0] > 1


def _by_reason(reasons: Mapping[str, str]) -> dict[str, str]:
    """``{reason: grouped names}`` (layer indices collapsed), one entry per reason."""
    groups: dict[str, list[str]] = {}
    for name, why in reasons.items():
        groups.setdefault(why, []).append(name)
    return {why: ", ".join(collapse_names(names)) for why, names in groups.items()}


def collapse_names(names: Sequence[str]) -> list[str]:
    """Collapse layer indices: ``model.layers.{0-31}.self_attn.q_proj``."""
    groups: dict[str, list[int]] = {}
    for name in names:
        match = re.search(r"\.(\d+)\.", name)
        key = name if not match else name[: match.start(1)] + "{}" + name[match.end(1) :]
        groups.setdefault(key, []).append(int(match.group(1)) if match else -1)
    return [key.replace("{}", "{" + format_layers(idx) + "}") if "{}" in key else key for key, idx in groups.items()]


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
        roles = [role for role in resolution.serving(request) if role in resolution.roles]
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
