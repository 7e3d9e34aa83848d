"""``inspect``: every LoRA-targetable leaf of a model, with its role, shape, layer and scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .registry import Registry, load_registry

# Children a PEFT tuner layer adds; they are adapter state, not part of the model.
_ADAPTER_CHILDREN = frozenset(
    {"base_layer", "lora_A", "lora_B", "lora_dropout", "lora_embedding_A", "lora_embedding_B",
     "lora_magnitude_vector", "lora_variant"}
)


@dataclass(frozen=True)
class Leaf:
    """One LoRA-targetable leaf: a Linear-like module, an embedding or conv, or a parameter (3-D experts, routers).

    ``shape`` is ``[out_features, in_features]`` for Linear-like modules (GPT-2's transposed
    ``Conv1D`` included), ``[num_embeddings, dim]`` for embeddings, and the tensor's shape for
    convs and parameters. ``path`` pairs each dotted component with the class of the module there.
    """

    name: str
    kind: str  # "module" | "parameter"
    lora_type: str  # "linear" | "embedding" | "conv" | "parameter"
    shape: tuple[int, ...]
    layer: int | None
    scope: str
    module_class: str
    path: tuple[tuple[str, str], ...] = field(repr=False, default=())
    kernel: tuple[int, ...] = field(repr=False, default=())

    @property
    def short_name(self) -> str:
        """The last dotted component (``q_proj``, ``gate_up_proj``)."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def stack(self) -> str | None:
        """The layer stack the leaf sits in (``model.layers``, ``encoder.block``), or ``None`` outside one."""
        if self.layer is None:
            return None
        for i, (component, _) in enumerate(self.path):
            if i > 0 and component == str(self.layer):
                return ".".join(c for c, _ in self.path[:i])
        return None  # pragma: no cover - layer always comes from a path component

    @property
    def parent_classes(self) -> tuple[str, ...]:
        """Classes of the enclosing modules, outermost first."""
        return tuple(cls for _, cls in self.path[:-1])

    @property
    def path_classes(self) -> tuple[tuple[str, str], ...]:
        """``(component, class name)`` pairs from the root down to the leaf."""
        return self.path

    def lora_parameters(self, r: int) -> int:
        """Trainable parameters PEFT's LoRA adds to this leaf at rank ``r``."""
        if self.lora_type == "parameter":
            # ParamWrapper: lora_A (r*E, in), lora_B (out, r*E) for (E, out, in); plain r*(in+out) for 2-D.
            experts = self.shape[0] if len(self.shape) == 3 else 1
            return r * experts * (self.shape[-1] + self.shape[-2])
        if self.lora_type == "conv":
            out_ch, in_ch = self.shape[0], self.shape[1]
            kernel = 1
            for k in self.shape[2:]:
                kernel *= k
            return r * in_ch * kernel + out_ch * r
        return r * (self.shape[0] + self.shape[1])

    def to_dict(self, role: str | None) -> dict[str, Any]:
        """The JSON shape of one leaf in ``ModelMap.to_dict()``."""
        return {
            "name": self.name,
            "role": role,
            "kind": self.kind,
            "shape": list(self.shape),
            "layer": self.layer,
            "scope": self.scope,
        }


@dataclass
class ModelMap:
    """The result of ``inspect``: every targetable leaf and the role the answering plugin gave it."""

    model: str
    model_type: str
    plugin: str
    leaves: list[Leaf]
    roles: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)
    base_parameters: int = 0
    module: Any = field(default=None, repr=False)
    config: Any = field(default=None, repr=False)
    all_module_names: tuple[str, ...] = field(default=(), repr=False)
    #: why a leaf has no role, where the answering plugin said (``Null(reason)``)
    null_reasons: dict[str, str] = field(default_factory=dict)
    #: every parameter name, where ``module`` is absent (the fast path); ``module.named_parameters()`` otherwise
    parameter_names: tuple[str, ...] = field(default=(), repr=False)
    #: module names PEFT rewrites into expert parameters, where known without importing PEFT (the fast path)
    peft_renamed: frozenset[str] | None = field(default=None, repr=False)

    def role_of(self, name: str) -> str | None:
        """The role of leaf ``name`` (``None`` when it has none)."""
        return self.roles.get(name)

    def leaves_with_role(self, role: str, scopes: tuple[str, ...] = ("language",)) -> list[Leaf]:
        """Leaves of ``role`` within ``scopes``, in model order."""
        return [leaf for leaf in self.leaves if self.roles.get(leaf.name) == role and leaf.scope in scopes]

    def present_roles(self, scopes: tuple[str, ...] = ("language",)) -> list[str]:
        """Roles that at least one leaf in ``scopes`` has, in vocabulary order."""
        found = {self.roles.get(leaf.name) for leaf in self.leaves if leaf.scope in scopes}
        return [role for role in load_registry().roles if role in found]

    def parameter_totals(self) -> dict[str, int]:
        """Base-model parameters held by the leaves of each role (``null`` for leaves with no role)."""
        totals: dict[str, int] = {}
        for leaf in self.leaves:
            key = self.roles.get(leaf.name) or "null"
            count = 1
            for dim in leaf.shape:
                count *= dim
            totals[key] = totals.get(key, 0) + count
        return totals

    def to_dict(self) -> dict[str, Any]:
        """``{"model", "model_type", "plugin", "modules": [...]}`` as documented in the README."""
        return {
            "model": self.model,
            "model_type": self.model_type,
            "plugin": self.plugin,
            "modules": [leaf.to_dict(self.roles.get(leaf.name)) for leaf in self.leaves],
        }


def inspect(
    model: Any,
    *,
    trust_remote_code: bool = False,
    plugin_manager: Any = None,
    plugin: str | None = None,
    revision: str | None = None,
) -> ModelMap:
    """Map every LoRA-targetable leaf of MODEL onto its role.

    MODEL is anything ``load_model`` accepts: a model_type, a ``config.json`` path or its folder,
    a cached hub id, a ``PretrainedConfig`` or a built ``nn.Module`` (PEFT-wrapped too).
    ``plugin_manager`` defaults to ``get_plugin_manager()``; ``plugin`` forces one plugin by name.
    ``revision`` (a branch, tag or commit) applies to a hub id, as ``owner/name@revision`` does.
    """
    from .loading import load_model
    from .manager import classify, get_plugin_manager, plugin_registry

    pm = plugin_manager if plugin_manager is not None else get_plugin_manager()
    loaded = load_model(model, trust_remote_code=trust_remote_code, plugin_manager=pm, revision=revision)
    registry, warnings = plugin_registry(pm)
    leaves = list(collect_leaves(loaded.model, registry))
    answer = classify(
        pm,
        model_type=loaded.model_type,
        config=loaded.config,
        leaves=leaves,
        model=loaded.model,
        registry=registry,
        forced=plugin,
    )
    names = tuple(name for name, _ in loaded.model.named_modules())
    return ModelMap(
        model=loaded.label,
        model_type=loaded.model_type,
        plugin=answer.plugin,
        leaves=leaves,
        roles=answer.roles,
        warnings=warnings + answer.warnings,
        base_parameters=sum(p.numel() for p in loaded.model.parameters()),
        module=loaded.model,
        config=loaded.config,
        all_module_names=names,
        null_reasons=answer.null_reasons,
    )


def collect_leaves(model: Any, registry: Registry | None = None) -> Iterator[Leaf]:
    """Walk ``model`` like ``named_modules()`` does (each module once) and yield its targetable leaves.

    PEFT tuner layers are seen through to their base layer, so an already-adapted model maps
    onto the same names as the bare one.
    """
    registry = registry or load_registry()
    seen: set[int] = set()
    yield from _walk(model, (), None, seen, _scope_words(registry))


def _walk(module, path, layer, seen, scope_words) -> Iterator[Leaf]:
    import torch.nn as nn

    if id(module) in seen:
        return
    seen.add(id(module))
    is_tuner = _is_tuner_layer(module)
    if is_tuner:
        module = module.get_base_layer()
    lora_type = _lora_type(module)
    if lora_type is not None and path:
        yield _module_leaf(module, path, layer, lora_type, scope_words)
        return
    for pname, param in module.named_parameters(recurse=False):
        if path and _is_parameter_leaf(pname, param):
            ppath = path + ((pname, "Parameter"),)
            yield Leaf(
                name=_join(ppath),
                kind="parameter",
                lora_type="parameter",
                shape=tuple(param.shape),
                layer=layer,
                scope=_scope(ppath, scope_words),
                module_class=type(module).__name__,
                path=ppath,
            )
    for child_name, child in module._modules.items():
        if child is None or (is_tuner and child_name in _ADAPTER_CHILDREN):
            continue
        child_layer = layer
        if layer is None and child_name.isdigit() and isinstance(module, nn.ModuleList):
            child_layer = int(child_name)
        yield from _walk(child, path + ((child_name, type(_base(child)).__name__),), child_layer, seen, scope_words)


def _module_leaf(module, path, layer, lora_type, scope_words) -> Leaf:
    if lora_type == "embedding":
        shape = (module.num_embeddings, module.embedding_dim)
    elif lora_type == "conv":
        shape = tuple(module.weight.shape)
    elif hasattr(module, "nf") and type(module).__name__ == "Conv1D":  # GPT-2's transposed Linear
        shape = (module.weight.shape[1], module.weight.shape[0])
    else:
        shape = (module.out_features, module.in_features)
    return Leaf(
        name=_join(path),
        kind="module",
        lora_type=lora_type,
        shape=tuple(int(s) for s in shape),
        layer=layer,
        scope=_scope(path, scope_words),
        module_class=type(module).__name__,
        path=path,
    )


def _lora_type(module) -> str | None:
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return "linear"
    if type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers"):
        return "linear"
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "conv"
    return None


def _is_parameter_leaf(name: str, param) -> bool:
    # 3-D tensors are stacked experts; a bare 2-D "weight" belongs to a custom Linear-like module (routers).
    if "bias" in name:
        return False
    if param.dim() == 3:
        return True
    return param.dim() == 2 and (name == "weight" or name.endswith("_weight"))


def _is_tuner_layer(module) -> bool:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover
        return False
    return isinstance(module, BaseTunerLayer)


def _base(module):
    return module.get_base_layer() if _is_tuner_layer(module) else module


def _scope_words(registry: Registry) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    words, suffixes = {}, []
    for scope, keys in registry.scopes.items():
        for key in keys:
            if key.startswith("*"):
                suffixes.append((key[1:], scope))  # "*ctcencoder": a class name ending so
            else:
                words[key] = scope
    return words, tuple(suffixes)


def _scope(path, scope_words) -> str:
    # The innermost listed component wins: a projector inside a vision tower (Qwen2-VL's merger) is a projector.
    words, suffixes = scope_words
    scope = "language"
    for component, cls in path:
        cls = cls.lower()
        found = words.get(component.lower()) or words.get(cls)
        found = found or next((s for suffix, s in suffixes if cls.endswith(suffix)), None)
        scope = found or scope
    return scope


def _join(path) -> str:
    return ".".join(component for component, _ in path)
