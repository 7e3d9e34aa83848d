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
#: ``LoraConfig.bias`` values (what ``BaseTuner._mark_only_adapters_as_trainable`` implements in PEFT 0.21)
BIAS_CHOICES = ("none", "all", "lora_only")
#: ``init_lora_weights`` strings PEFT 0.21 implements, besides ``True``, ``False`` and ``"pissa_niter_<N>"``
INIT_CHOICES = ("gaussian", "eva", "olora", "pissa", "corda", "loftq", "orthogonal", "mica", "lora_ga")
#: ``lora_config`` options whose LoraConfig ``to_dict`` can predict without PEFT
_PLAIN_OPTIONS = frozenset({"lora_dropout", "bias", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save"})
#: bytes per value at each precision the cost is given for
PRECISIONS = {"fp32": 4, "bf16": 2}


@dataclass(frozen=True)
class Cost:
    """What an adapter costs to train, known before training: its trainable parameters and their memory.

    ``lora`` holds the LoRA A and B matrices per role; ``dora`` the DoRA magnitude vectors;
    ``biases`` the base-model biases ``bias="all"`` or ``"lora_only"`` makes trainable;
    ``modules_to_save`` the full trainable copy of each module PEFT saves whole.
    """

    lora: dict[str, int]
    dora: int = 0
    biases: int = 0
    modules_to_save: dict[str, int] = field(default_factory=dict)
    base_parameters: int = 0

    @property
    def total(self) -> int:
        """Every trainable parameter: what ``requires_grad`` counts on the PEFT model."""
        return sum(self.lora.values()) + self.dora + self.biases + sum(self.modules_to_save.values())

    @property
    def share(self) -> float | None:
        """``total`` as a fraction of the base model's parameters (``None`` when those are unknown)."""
        return self.total / self.base_parameters if self.base_parameters else None

    def memory(self, precision: str = "fp32") -> dict[str, int]:
        """Bytes for the trainable weights, their gradients and AdamW's two states, and their total.

        Each is one value per trainable parameter, at 4 bytes (``"fp32"``) or 2 (``"bf16"``):
        torch's AdamW keeps ``exp_avg`` and ``exp_avg_sq`` in the parameter's dtype. The frozen
        base model and activations are not included.
        """
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        each = self.total * PRECISIONS[precision]
        return {"weights": each, "gradients": each, "adamw_states": 2 * each, "total": 4 * each}

    def to_dict(self) -> dict[str, Any]:
        """The ``"cost"`` object of ``resolve --format json``."""
        return {
            "lora_by_role": dict(self.lora),
            "dora_magnitudes": self.dora,
            "biases": self.biases,
            "modules_to_save": dict(self.modules_to_save),
            "total": self.total,
            "base_parameters": self.base_parameters,
            "share": self.share,
            "memory_bytes": {precision: self.memory(precision) for precision in PRECISIONS},
        }


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
        renamed = _renamed(self.model_map)
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
        if _renamed(self.model_map):
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
        if module is not None:
            universe = [name for name, _ in module.named_parameters()]
        else:
            universe = list(self.model_map.parameter_names) or selected
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
        *,
        lora_dropout: float = 0.0,
        bias: str = "none",
        use_rslora: bool = False,
        use_dora: bool = False,
        init_lora_weights: bool | str = True,
        modules_to_save: str | Sequence[str] | None = None,
        **other: Any,
    ):
        """A ``peft.LoraConfig`` that adapts exactly this resolution.

        ``r`` and ``lora_alpha`` (default ``2 * r``) apply to every role; ``ranks`` and ``alphas``
        override them per role or alias (``{"ffn": 4}``) through PEFT's ``rank_pattern`` and
        ``alpha_pattern``, keyed so each key hits exactly its role's targets.

        ``lora_dropout``, ``bias``, ``use_rslora``, ``use_dora`` and ``init_lora_weights`` go to
        PEFT as they are; ``modules_to_save`` takes roles, aliases or module names (``"lm-head"``,
        ``"embed_tokens"``) and is written as this model's exact module names. Combinations PEFT
        would reject raise ``ConfigError`` first (see ``check_peft_options``). Other keyword
        arguments go to ``LoraConfig`` unchanged.
        """
        kwargs = self._lora_kwargs(
            r, lora_alpha, ranks, alphas, lora_dropout=lora_dropout, bias=bias, use_rslora=use_rslora,
            use_dora=use_dora, init_lora_weights=init_lora_weights, modules_to_save=modules_to_save, **other,
        )
        return _new_lora_config(kwargs)

    def _lora_kwargs(self, r, lora_alpha, ranks, alphas, **options_in: Any) -> dict[str, Any]:
        """``LoraConfig`` keyword arguments for ``lora_config``, every lora-registry check done."""
        r = _check_rank(r, "rank")
        lora_alpha = _check_alpha(2 * r if lora_alpha is None else lora_alpha, "alpha")
        options = self._peft_options(r, ranks, **options_in)
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
        kwargs.update(options)
        return kwargs

    def cost(self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None, **options: Any) -> Cost:
        """What ``lora_config(r=r, ranks=ranks, **options)`` costs to train, counted as PEFT builds it.

        ``options`` are ``lora_config``'s PEFT options (``use_dora``, ``bias``, ``modules_to_save``,
        ``init_lora_weights``, ...); alphas and dropout change no count. The total equals the
        ``requires_grad`` parameters of ``peft.get_peft_model(model, config)``. (EVA may move rank
        between layers later, when ``initialize_lora_eva_weights`` runs on data.)
        """
        r = _check_rank(r, "rank")
        return self._cost(r, ranks, self._peft_options(r, ranks, **options))

    def _cost(self, r: int, ranks: Mapping[str, int] | None, opts: Mapping[str, Any]) -> Cost:
        """``cost`` for a checked rank and checked PEFT options (``_peft_options`` or ``_lora_kwargs``)."""
        leaf_rank = self._leaf_ranks(r, ranks)
        role_of = {name: role for role, names in self.names_by_role().items() for name in names}
        lora = dict.fromkeys(self.names_by_role(), 0)
        dora = 0
        for leaf in self.leaves:
            rank = leaf_rank[leaf.name]
            count = leaf.lora_parameters(rank)
            if opts["init_lora_weights"] == "mica":
                # MiCA freezes B (variants.MiCALinearVariant / MiCAEmbeddingVariant): out x r, or dim x r
                count -= rank * (leaf.shape[1] if leaf.lora_type == "embedding" else leaf.shape[0])
            lora[role_of[leaf.name]] += count
            if opts["use_dora"]:
                # one magnitude per output feature / channel; per embedding dimension (lora/dora.py)
                dora += leaf.shape[1] if leaf.lora_type == "embedding" else leaf.shape[0]
        saved = opts["modules_to_save"] or []
        module = self.model_map.module
        if module is None and (saved or opts["bias"] != "none"):
            raise ConfigError("counting biases or modules_to_save needs the model itself; resolve the model, not a bare map")
        copies = {name: _numel(module.get_submodule(name).parameters()) for name in saved}
        biases = 0
        if opts["bias"] == "all":
            # every parameter named *.bias; ModulesToSaveWrapper freezes the originals of modules it copies
            biases = sum(
                p.numel() for n, p in module.named_parameters()
                if (n == "bias" or n.endswith(".bias")) and not any(n.startswith(s + ".") for s in saved)
            )
        elif opts["bias"] == "lora_only":
            # the bias of each module PEFT wraps in a LoRA layer (the owner of a targeted parameter)
            found = {}
            for leaf in self.leaves:
                owner = module.get_submodule(leaf.name if leaf.kind == "module" else leaf.name.rsplit(".", 1)[0])
                tensor = getattr(owner, "bias", None)
                if hasattr(tensor, "numel"):
                    found[id(tensor)] = tensor.numel()
            biases = sum(found.values())
        return Cost(lora, dora, biases, copies, self.model_map.base_parameters)

    def trainable_parameters(self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None, **options: Any) -> int:
        """The trainable parameters PEFT will create for ``lora_config(r=r, ranks=ranks, **options)``."""
        return self.cost(r, ranks, **options).total

    def trainable_by_role(self, r: int = DEFAULT_RANK, ranks: Mapping[str, int] | None = None, **options: Any) -> dict[str, int]:
        """Trainable LoRA parameters per role (DoRA magnitudes, biases and module copies are in ``cost``)."""
        return self.cost(r, ranks, **options).lora

    def to_dict(self, r: int = DEFAULT_RANK, lora_alpha: float | None = None, ranks=None, alphas=None, **options) -> dict[str, Any]:
        """The ``--format json`` document; ``options`` as for ``lora_config``."""
        kwargs = self._lora_kwargs(r, lora_alpha, ranks, alphas, **options)  # every check, once
        if set(options) <= _PLAIN_OPTIONS:
            # LoraConfig accepts every combination these options can take once _lora_kwargs has checked
            # them, and only turns a list target_modules into a set: the same document without importing PEFT.
            target_modules, target_parameters = kwargs["target_modules"], kwargs.get("target_parameters")
        else:
            config = _new_lora_config(kwargs)
            target_modules, target_parameters = config.target_modules, config.target_parameters
        cost = self._cost(kwargs["r"], ranks, kwargs)
        if isinstance(target_modules, (list, set, frozenset, tuple)):
            target_modules = sorted(target_modules)
        return {
            "model": self.model_map.model,
            "model_type": self.model_map.model_type,
            "plugin": self.model_map.plugin,
            "roles": self.names_by_role(),
            "target_modules": target_modules,
            "target_parameters": list(target_parameters or []),
            "trainable_parameters": cost.total,
            "warnings": list(self.warnings),
            **({"layers": {stack: list(kept) for stack, kept in self.layers.items()}} if self.layers else {}),
            "cost": cost.to_dict(),
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
    def modules_to_save(self, items: str | Sequence[str] | None) -> list[str] | None:
        """Roles, aliases or module names (a full name or a dotted suffix) -> this model's exact module names.

        Roles resolve within this resolution's scopes and selected layers. A name that matches
        nothing, or a role whose leaves are parameters rather than modules, raises ``ConfigError``.
        """
        if items is None:
            return None
        try:
            items = items.split(",") if isinstance(items, str) else [str(i) for i in items]
        except TypeError:
            raise ConfigError(f"modules_to_save must be a comma list or a list of names, not {items!r}") from None
        names = [n for n in self.model_map.all_module_names if n]
        model = self.model_map.model
        chosen: set[str] = set()
        for item in (i.strip() for i in items):
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
            leaves = [leaf for role in request.roles for leaf in self.model_map.leaves_with_role(role, self.scopes)
                      if self._layer_kept(leaf)]
            if not leaves:
                raise ConfigError(f"modules_to_save: {item!r} matches nothing in {model}; it has: "
                                  f"{', '.join(self.model_map.present_roles(self.scopes))}")
            params = [leaf.name for leaf in leaves if leaf.kind != "module"]
            if params:
                raise ConfigError(f"modules_to_save: {item!r} selects parameters ({params[0]}), not modules; "
                                  "PEFT copies whole modules")
            chosen.update(leaf.name for leaf in leaves)
        return [n for n in names if n in chosen] or None

    def _peft_options(self, r: int, ranks, *, lora_dropout: float = 0.0, bias: str = "none", use_rslora: bool = False,
                      use_dora: bool = False, init_lora_weights: bool | str = True, modules_to_save=None,
                      **other: Any) -> dict[str, Any]:
        """The PEFT options as ``LoraConfig`` keyword arguments, checked against this resolution."""
        options = dict(lora_dropout=lora_dropout, bias=bias, use_rslora=use_rslora, use_dora=use_dora,
                       init_lora_weights=init_lora_weights, **other)
        check_peft_options(options)  # value rules first: a bad --bias is reported before names are looked up
        options["modules_to_save"] = self.modules_to_save(modules_to_save)
        check_peft_options(options, self, self._leaf_ranks(r, ranks))
        return options

    def _layer_kept(self, leaf: Leaf) -> bool:
        """False for a leaf in a layer the layer selection dropped."""
        kept = self.layers.get(leaf.stack) if self.layers and leaf.layer is not None else None
        return kept is None or leaf.layer in kept

    def _leaf_ranks(self, r: int, ranks: Mapping[str, int] | None) -> dict[str, int]:
        per_role = _per_role(ranks or {}, self, "rank")
        return {name: per_role.get(role, r) for role, names in self.names_by_role().items() for name in names}

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
    ``revision`` (a branch, tag or commit) applies to a hub id MODEL.
    """
    registry = load_registry()
    requests = parse_roles(roles, registry)  # fail on bad roles before building anything
    scopes = parse_scopes(scope)
    selection = parse_layer_selection(layers, last_layers)
    model_map = model if isinstance(model, ModelMap) else inspect(
        model, trust_remote_code=trust_remote_code, plugin_manager=plugin_manager, plugin=plugin, revision=revision
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


def format_layers(values) -> str:
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
    renamed = _renamed(model_map)
    moved = sorted({n.rsplit(".", 1)[-1] for names in modules.values() for n in names if n.rsplit(".", 1)[-1] in renamed})
    if moved:
        warnings.append(
            f"PEFT rewrites target_modules named {', '.join(moved)} on {model_map.model_type} into expert "
            "parameters; those modules are targeted as <module>.weight in target_parameters instead, "
            "so PEFT adapts exactly them"
        )
    ordered = [role for role in ordered if role in modules or role in parameters]
    return Resolution(model_map, ordered, scopes, modules, parameters, warnings, substituted, registry, kept)


def _new_lora_config(kwargs: Mapping[str, Any]):
    """``peft.LoraConfig(**kwargs)``, with PEFT's own refusals as one-line ``ConfigError``s."""
    from peft import LoraConfig

    try:
        return LoraConfig(**kwargs)
    except (TypeError, ValueError, ImportError) as exc:
        raise ConfigError(f"PEFT rejects this LoRA configuration: {' '.join(str(exc).split())}") from None


def check_peft_options(options: Mapping[str, Any], resolution: Resolution | None = None,
                       leaf_ranks: Mapping[str, int] | None = None) -> None:
    """Refuse, in one line, what PEFT 0.21 would reject (or silently not do) with these LoRA options.

    Without ``resolution`` only the values are checked (the CLI does that before building a
    model); with it, the combinations with what it targets. Each rule names where PEFT enforces it.
    """
    dropout, bias, init = options["lora_dropout"], options["bias"], options["init_lora_weights"]
    # bias: BaseTuner._mark_only_adapters_as_trainable raises NotImplementedError for any other value.
    if bias not in BIAS_CHOICES:
        raise ConfigError(f"bias must be one of {', '.join(BIAS_CHOICES)}, not {bias!r}")
    # lora_dropout: nn.Dropout rejects p > 1; PEFT ignores p < 0, and p = 1 zeroes every LoRA input.
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"lora_dropout must be at least 0 and below 1, not {dropout!r}")
    for flag in ("use_rslora", "use_dora"):
        if not isinstance(options[flag], bool):
            raise ConfigError(f"{flag} must be True or False, not {options[flag]!r}")
    # init_lora_weights: LoraLayer.reset_lora_parameters raises "Unknown initialization" for other strings;
    # LoraLayer.pissa_init needs a whole number of iterations in "pissa_niter_<N>".
    if not (isinstance(init, bool) or init in INIT_CHOICES or re.fullmatch(r"pissa_niter_\d+", str(init))):
        raise ConfigError(f"init_lora_weights must be true, false, {', '.join(INIT_CHOICES)} or pissa_niter_<N>, not {init!r}")
    # LoraConfig.__post_init__: "loftq" needs a loftq_config.
    if init == "loftq" and not options.get("loftq_config"):
        raise ConfigError("init_lora_weights='loftq' needs loftq_config=LoftQConfig(...) (pass it to lora_config)")
    if resolution is None:
        return
    keys = resolution.target_keys()
    leaves = resolution.leaves
    wrapped = [leaf for leaf in leaves if leaf.kind == "parameter" or keys[leaf.name] != leaf.name]
    convs = [leaf for leaf in leaves if leaf.lora_type == "conv" and leaf not in wrapped]
    reads_weight = isinstance(init, str) and (init.startswith("pissa") or init in ("olora", "corda", "loftq", "orthogonal", "lora_ga"))
    if wrapped:
        example = keys[wrapped[0].name]
        # lora.ParamWrapper.__init__ (target_parameters) raises on lora_dropout != 0 and on use_dora.
        if dropout:
            raise ConfigError(f"lora_dropout must be 0 here: PEFT cannot apply dropout to target_parameters ({example})")
        if options["use_dora"]:
            raise ConfigError(f"PEFT has no DoRA for target_parameters ({example}); drop --dora or those roles")
        # ParamWrapper.update_layer raises on any LoRA variant, and MiCA is one.
        if init == "mica":
            raise ConfigError(f"PEFT has no MiCA for target_parameters ({example}); choose another init")
        # these inits read the wrapped module's .weight: expert modules have none (AttributeError in PEFT).
        odd = [keys[leaf.name] for leaf in wrapped if keys[leaf.name].rsplit(".", 1)[-1] != "weight"]
        if reads_weight and odd:
            raise ConfigError(f"init_lora_weights={init!r} reads a module's weight; PEFT cannot apply it to {odd[0]}")
    # LoraLayer.resolve_lora_variant: MiCA and DoRA are both variants, and no layer has the pair.
    if init == "mica" and options["use_dora"]:
        raise ConfigError("init_lora_weights='mica' and use_dora cannot be combined (PEFT has no such LoRA variant)")
    # _ConvNd.update_layer: besides loftq and lora_ga, convs only take True, False or "gaussian" (else ValueError).
    if convs and init not in (True, False, "gaussian", "loftq", "lora_ga"):
        raise ConfigError(f"PEFT cannot use init_lora_weights={init!r} on convolutions ({convs[0].name})")
    leaf_ranks = leaf_ranks or {}
    for leaf in leaves:
        rank = leaf_ranks.get(leaf.name, DEFAULT_RANK)
        # LoraLayer.orthogonal_init: an even rank only.
        if init == "orthogonal" and rank % 2:
            raise ConfigError(f"init_lora_weights='orthogonal' needs even ranks; {leaf.name} has rank {rank}")
        # mica_init: r <= min(in_features, out_features).
        if init == "mica" and rank > min(leaf.shape):
            raise ConfigError(f"init_lora_weights='mica' needs rank <= {min(leaf.shape)} for {leaf.name}, not {rank}")
    saved = options.get("modules_to_save") or []
    names = resolution.model_map.all_module_names
    for name in saved:
        # utils.other._set_trainable copies every module whose name ends with the entry, dot or not.
        also = [n for n in names if n != name and n.endswith(name)]
        if also:
            raise ConfigError(f"modules_to_save {name!r} would also copy {also[0]} (PEFT matches the end of the name)")
        # tuners_utils.check_target_module_exists excludes targets in a module to save: their LoRA would vanish.
        pattern = re.compile(rf"(^|.*\.){re.escape(name)}($|\..*)")
        for leaf in leaves:
            owner = leaf.name if leaf.kind == "module" else leaf.name.rsplit(".", 1)[0]
            if pattern.match(owner):
                raise ConfigError(f"{leaf.name} is both a LoRA target and inside modules_to_save {name!r}; "
                                  "PEFT would drop its LoRA -- keep one")


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


def _per_role(overrides: Mapping[str, Any], resolution: Resolution, what: str) -> dict[str, Any]:
    """Expand ``{"ffn": 4, "q": 16}`` to concrete roles; the narrower key wins (``q`` over ``attention`` over ``all``)."""
    registry = resolution.registry
    out: dict[str, Any] = {}
    specificity: dict[str, int] = {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{what}s must be a mapping of role or alias to value, e.g. {{'ffn': 4}}, "
                          f"not {type(overrides).__name__}")
    for key, value in overrides.items():
        value = _check_rank(value, f"{what} for {key}") if what == "rank" else _check_alpha(value, f"{what} for {key}")
        (request,) = parse_roles([key], registry)
        roles = [resolution.substituted.get(role, role) for role in request.roles]
        roles = [role for role in roles if role in resolution.roles]
        if not roles:
            raise ConfigError(f"{what} given for {key}, which is not among the resolved roles ({', '.join(resolution.roles)})")
        weight = -len(request.roles)  # the narrower key wins: q over attention over all, ffn over all
        for role in roles:
            if weight >= specificity.get(role, float("-inf")):
                out[role] = value
                specificity[role] = weight
    return out


def _renamed(model_map: ModelMap) -> frozenset[str]:
    """``peft_renamed_leaves`` for the map's model_type; the fast path knows it without importing PEFT."""
    if model_map.peft_renamed is not None:
        return model_map.peft_renamed
    return peft_renamed_leaves(model_map.model_type)


def _numel(parameters) -> int:
    return sum(p.numel() for p in parameters)


def _check_rank(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive whole number, not {value!r}")
    return value


def _check_alpha(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{what} must be a positive number, not {value!r}")
    return value
