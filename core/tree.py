"""The module tree: a model's modules, classes and parameter shapes as plain data, and its LoRA-targetable leaves.

A ``ModuleTree`` is what ``inspect`` knows about a model's structure, without torch: every module
name in ``named_modules()`` order with its class and its own parameters' shapes. It comes from a
built ``nn.Module`` (``ModuleTree.from_module``, the only place that looks at torch objects) or
from ``config.json`` alone, written by a plugin's ``lora_registry_module_tree`` hook with a
``TreeBuilder``. Either way ``leaves()`` applies the one rule for what LoRA can target, so the
two paths cannot disagree on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .registry import Registry

#: Node kinds: LoRA-targetable module kinds, a ``ModuleList`` (its numbered children are layers), or anything else.
LEAF_KINDS = ("linear", "embedding", "conv")
NODE_KINDS = (*LEAF_KINDS, "list", "module")

Shape = tuple[int, ...]

# Children a PEFT tuner layer adds; they are adapter state, not part of the model.
_ADAPTER_CHILDREN = frozenset(
    {
        "base_layer",
        "lora_A",
        "lora_B",
        "lora_dropout",
        "lora_embedding_A",
        "lora_embedding_B",
        "lora_magnitude_vector",
        "lora_variant",
    }
)


@dataclass(frozen=True)
class Leaf:
    """One LoRA-targetable leaf: a Linear-like module, an embedding or conv, or a parameter (3-D experts, routers).

    ``shape`` is ``[out_features, in_features]`` for Linear-like modules (GPT-2's transposed
    ``Conv1D`` included), ``[num_embeddings, dim]`` for embeddings, and the tensor's shape for
    convs and parameters. ``path`` pairs each dotted component with the class of the module there
    (``"Parameter"`` for a parameter's own name).
    """

    name: str
    kind: str  # "module" | "parameter"
    lora_type: str  # "linear" | "embedding" | "conv" | "parameter"
    shape: Shape
    layer: int | None
    scope: str
    module_class: str
    path: tuple[tuple[str, str], ...] = field(repr=False, default=())

    @property
    def short_name(self) -> str:
        """The last dotted component (``q_proj``, ``gate_up_proj``)."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def owner(self) -> str:
        """The module PEFT wraps for this leaf: the leaf itself, or the module holding the parameter."""
        return self.name if self.kind == "module" else self.name.rsplit(".", 1)[0]

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

    @property
    def numel(self) -> int:
        """Elements of the weight this leaf stands for."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count

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


@dataclass(frozen=True)
class Node:
    """One module: its dotted name (``""`` for the root), class name, kind, own parameters and leaf shape.

    ``params`` lists the module's own parameters (``named_parameters(recurse=False)``) as
    ``(name, shape)``; ``shape`` is the leaf shape of a Linear-like module, embedding or conv.
    """

    name: str
    cls: str
    kind: str = "module"
    params: tuple[tuple[str, Shape], ...] = ()
    shape: Shape | None = None


@dataclass(frozen=True)
class ModuleTree:
    """A model's modules in ``named_modules()`` order, each with its class, kind and own parameters.

    ``tied`` holds the full names of parameters that are another, earlier parameter (a tied LM head):
    ``named_parameters()`` lists them once. ``input_embedding`` and ``output_embedding`` name the
    modules ``get_input_embeddings()`` / ``get_output_embeddings()`` return. ``weight_ties`` maps a
    parameter transformers ties to another (``_tied_weights_keys``) onto that source parameter.
    ``config`` holds the config values the tree was built from where a plugin wrote it from
    ``config.json`` (defaults applied), for the plugins' classification.
    """

    nodes: tuple[Node, ...]
    tied: frozenset[str] = frozenset()
    input_embedding: str | None = None
    output_embedding: str | None = None
    weight_ties: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ reading
    @property
    def root_class(self) -> str:
        """The class of the model itself."""
        return self.nodes[0].cls if self.nodes else ""

    def module_names(self) -> tuple[str, ...]:
        """Every module name, ``named_modules()`` order (the root is ``""``)."""
        return tuple(node.name for node in self.nodes)

    def parameters(self) -> list[tuple[str, Shape]]:
        """``(full name, shape)`` of every parameter, ``named_parameters()`` order, tied ones once."""
        out = []
        for node in self.nodes:
            for pname, shape in node.params:
                full = f"{node.name}.{pname}" if node.name else pname
                if full not in self.tied:
                    out.append((full, shape))
        return out

    def parameter_names(self) -> tuple[str, ...]:
        """Every parameter name, as ``named_parameters()`` gives them."""
        return tuple(name for name, _ in self.parameters())

    def parameter_count(self, prefix: str | None = None) -> int:
        """Elements of every parameter (tied ones once); only those under module ``prefix`` when given."""
        total = 0
        for name, shape in self.parameters():
            if prefix is not None and prefix and not name.startswith(prefix + "."):
                continue
            count = 1
            for dim in shape:
                count *= dim
            total += count
        return total

    def node(self, name: str) -> Node | None:
        """The module called ``name``, or ``None``."""
        return self._by_name.get(name)

    @property
    def _by_name(self) -> dict[str, Node]:
        cached = self.__dict__.get("_by_name_cache")
        if cached is None:
            cached = {node.name: node for node in self.nodes}
            object.__setattr__(self, "_by_name_cache", cached)
        return cached

    def leaves(self, registry: Registry) -> list[Leaf]:
        """The LoRA-targetable leaves, in model order: the one rule both paths share.

        A Linear-like module, embedding or convolution (not the root) is a module leaf and
        nothing under it is looked at. Any other module's own parameters are leaves when 3-D
        (stacked experts) or a 2-D ``weight`` / ``*_weight`` (a custom router's), biases never.
        ``layer`` is the index under the first ``ModuleList`` on the path.
        """
        words = scope_words(registry)
        classes: dict[str, str] = {}
        kinds: dict[str, str] = {}
        inside_leaf: list[str] = []
        out: list[Leaf] = []
        for node in self.nodes:
            classes[node.name] = node.cls
            kinds[node.name] = node.kind
            if not node.name:
                continue
            if inside_leaf and node.name.startswith(inside_leaf[-1] + "."):
                continue
            parts = node.name.split(".")
            path = tuple((part, classes[".".join(parts[: i + 1])]) for i, part in enumerate(parts))
            layer = _layer(parts, kinds)
            if node.kind in LEAF_KINDS:
                inside_leaf.append(node.name)
                out.append(
                    Leaf(
                        name=node.name,
                        kind="module",
                        lora_type="linear" if node.kind == "linear" else node.kind,
                        shape=tuple(node.shape or ()),
                        layer=layer,
                        scope=scope_of(path, words),
                        module_class=node.cls,
                        path=path,
                    )
                )
                continue
            for pname, shape in node.params:
                if not is_parameter_leaf(pname, shape):
                    continue
                ppath = (*path, (pname, "Parameter"))
                out.append(
                    Leaf(
                        name=f"{node.name}.{pname}",
                        kind="parameter",
                        lora_type="parameter",
                        shape=tuple(shape),
                        layer=layer,
                        scope=scope_of(ppath, words),
                        module_class=node.cls,
                        path=ppath,
                    )
                )
        return out

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``from_dict`` reads it back)."""
        return {
            "nodes": [
                [n.name, n.cls, n.kind, [[p, list(s)] for p, s in n.params], n.shape and list(n.shape)]
                for n in self.nodes
            ],
            "tied": sorted(self.tied),
            "input_embedding": self.input_embedding,
            "output_embedding": self.output_embedding,
            "weight_ties": dict(self.weight_ties),
            "config": dict(self.config),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModuleTree:
        """Read ``to_dict()``'s form back."""
        nodes = tuple(
            Node(name, klass, kind, tuple((p, tuple(s)) for p, s in params), tuple(shape) if shape else None)
            for name, klass, kind, params, shape in data["nodes"]
        )
        return cls(
            nodes=nodes,
            tied=frozenset(data.get("tied", ())),
            input_embedding=data.get("input_embedding"),
            output_embedding=data.get("output_embedding"),
            weight_ties=dict(data.get("weight_ties", {})),
            config=dict(data.get("config", {})),
        )

    # ------------------------------------------------------------------ from a built model
    @classmethod
    def from_module(cls, model: Any) -> ModuleTree:
        """The tree of a built ``nn.Module``: modules as ``named_modules()`` walks them (each once).

        PEFT tuner layers are seen through to their base layer, so an adapted model gives the bare
        model's names; the adapter's own modules and parameters are left out.
        """
        nodes: list[Node] = []
        tied: set[str] = set()
        seen_modules: set[int] = set()
        seen_params: set[int] = set()
        by_id: dict[int, str] = {}
        ties: dict[str, str] = {}
        _walk(model, "", nodes, tied, seen_modules, seen_params, by_id, ties)
        return cls(
            nodes=tuple(nodes),
            tied=frozenset(tied),
            input_embedding=_embedding_name(model, "get_input_embeddings", by_id),
            output_embedding=_embedding_name(model, "get_output_embeddings", by_id),
            # only ties that hold: the tied parameter is the same tensor as its source
            weight_ties={target: source for target, source in ties.items() if target in tied},
        )


class TreeBuilder:
    """Write a ``ModuleTree`` by hand, in the order ``named_modules()`` would list the modules.

    Plugins use it in ``lora_registry_module_tree`` to describe the model transformers would build
    for a ``config.json``, without building it::

        t = TreeBuilder("LlamaForCausalLM")
        t.module("model", "LlamaModel")
        t.embedding("model.embed_tokens", 32000, 4096)
        t.linear("lm_head", 4096, 32000)
        t.tie("lm_head.weight")          # the same Parameter as the embedding's weight
    """

    def __init__(self, root_class: str) -> None:
        self._nodes: list[Node] = [Node("", root_class)]
        self._tied: set[str] = set()
        self.input_embedding: str | None = None
        self.output_embedding: str | None = None
        self._weight_ties: dict[str, str] = {}

    def module(self, name: str, cls: str, params: Iterable[tuple[str, Sequence[int]]] = ()) -> TreeBuilder:
        """A module that is not a leaf, with its own parameters."""
        self._nodes.append(Node(name, cls, "module", tuple((p, tuple(s)) for p, s in params)))
        return self

    def module_list(self, name: str) -> TreeBuilder:
        """An ``nn.ModuleList``: its numbered children are layers."""
        self._nodes.append(Node(name, "ModuleList", "list"))
        return self

    def linear(
        self, name: str, in_features: int, out_features: int, bias: bool = False, cls: str = "Linear"
    ) -> TreeBuilder:
        """An ``nn.Linear`` (or subclass ``cls``): weight ``[out, in]``, optional bias."""
        params: list[tuple[str, Shape]] = [("weight", (out_features, in_features))]
        if bias:
            params.append(("bias", (out_features,)))
        self._nodes.append(Node(name, cls, "linear", tuple(params), (out_features, in_features)))
        return self

    def conv1d(self, name: str, in_features: int, out_features: int) -> TreeBuilder:
        """transformers' ``Conv1D`` (GPT-2): a Linear whose weight is stored ``[in, out]``, always with a bias."""
        params: tuple[tuple[str, Shape], ...] = (("weight", (in_features, out_features)), ("bias", (out_features,)))
        self._nodes.append(Node(name, "Conv1D", "linear", params, (out_features, in_features)))
        return self

    def embedding(
        self, name: str, num_embeddings: int, dim: int, cls: str = "Embedding", role: str | None = None
    ) -> TreeBuilder:
        """An ``nn.Embedding`` (or subclass); ``role`` ``"input"`` marks ``get_input_embeddings()``."""
        self._nodes.append(Node(name, cls, "embedding", (("weight", (num_embeddings, dim)),), (num_embeddings, dim)))
        if role == "input":
            self.input_embedding = name
        return self

    def output(self, name: str) -> TreeBuilder:
        """Mark ``name`` as the module ``get_output_embeddings()`` returns."""
        self.output_embedding = name
        return self

    def tie(self, parameter: str, source: str | None = None) -> TreeBuilder:
        """``parameter`` is the same tensor as an earlier one (``named_parameters()`` lists it once).

        ``source`` (the parameter it is tied to) is recorded for the plugins when given.
        """
        self._tied.add(parameter)
        if source is not None:
            self._weight_ties[parameter] = source
        return self

    def build(self, config: Mapping[str, Any] | None = None) -> ModuleTree:
        """The finished tree; ``config`` is what the family's classification should see as the config."""
        return ModuleTree(
            nodes=tuple(self._nodes),
            tied=frozenset(self._tied),
            input_embedding=self.input_embedding,
            output_embedding=self.output_embedding,
            weight_ties=dict(self._weight_ties),
            config=dict(config or {}),
        )


# ----------------------------------------------------------------------------- the leaf rule
def is_parameter_leaf(name: str, shape: Sequence[int]) -> bool:
    """A parameter LoRA can target on its own: 3-D stacked experts, or a bare 2-D ``weight`` (routers)."""
    if "bias" in name:
        return False
    if len(shape) == 3:
        return True
    return len(shape) == 2 and (name == "weight" or name.endswith("_weight"))


def _layer(parts: list[str], kinds: Mapping[str, str]) -> int | None:
    for i in range(len(parts)):
        if parts[i].isdigit() and kinds.get(".".join(parts[:i])) == "list":
            return int(parts[i])
    return None


# ----------------------------------------------------------------------------- scopes
def scope_words(registry: Registry) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """``([scopes]`` words -> scope, ``("*suffix"`` class-name endings -> scope)) from the registry."""
    cached = _SCOPE_WORDS.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    words, suffixes = {}, []
    for scope, keys in registry.scopes.items():
        for key in keys:
            if key.startswith("*"):
                suffixes.append((key[1:], scope))  # "*ctcencoder": a class name ending so
            else:
                words[key] = scope
    value = (words, tuple(suffixes))
    _SCOPE_WORDS[id(registry)] = (registry, value)
    return value


_SCOPE_WORDS: dict[int, tuple[Registry, tuple[dict[str, str], tuple[tuple[str, str], ...]]]] = {}


def scope_of(path: Sequence[tuple[str, str]], words: tuple[dict[str, str], tuple[tuple[str, str], ...]]) -> str:
    """The scope of the innermost listed path component (attribute or class name); ``language`` if none."""
    # The innermost listed component wins: a projector inside a vision tower (Qwen2-VL's merger) is a projector.
    names, suffixes = words
    scope = "language"
    for component, cls in path:
        cls = cls.lower()
        found = names.get(component.lower()) or names.get(cls)
        found = found or next((s for suffix, s in suffixes if cls.endswith(suffix)), None)
        scope = found or scope
    return scope


# ----------------------------------------------------------------------------- torch side
def _walk(
    module: Any,
    name: str,
    nodes: list[Node],
    tied: set[str],
    seen_modules: set[int],
    seen_params: set[int],
    by_id: dict[int, str],
    ties: dict[str, str],
) -> None:
    if id(module) in seen_modules:
        return
    seen_modules.add(id(module))
    by_id[id(module)] = name
    is_tuner = _is_tuner_layer(module)
    base = module.get_base_layer() if is_tuner else module
    by_id[id(base)] = name
    kind, shape = _kind(base)
    params: list[tuple[str, Shape]] = []
    for pname, param in base.named_parameters(recurse=False):
        full = f"{name}.{pname}" if name else pname
        if id(param) in seen_params:
            tied.add(full)
        seen_params.add(id(param))
        params.append((pname, tuple(int(s) for s in param.shape)))
    nodes.append(Node(name, type(base).__name__, kind, tuple(params), shape))
    declared = getattr(base, "_tied_weights_keys", None)  # transformers 5: {tied parameter: its source}
    if isinstance(declared, dict):
        prefix = f"{name}." if name else ""
        ties.update(
            {f"{prefix}{t}": f"{prefix}{s}" for t, s in declared.items() if isinstance(t, str) and isinstance(s, str)}
        )
    for child_name, child in base._modules.items():
        if child is None or (is_tuner and child_name in _ADAPTER_CHILDREN):
            continue
        _walk(
            child, f"{name}.{child_name}" if name else child_name, nodes, tied, seen_modules, seen_params, by_id, ties
        )


def _kind(module: Any) -> tuple[str, Shape | None]:
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return "linear", (int(module.out_features), int(module.in_features))
    if type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers"):
        return "linear", (int(module.weight.shape[1]), int(module.weight.shape[0]))  # GPT-2's transposed Linear
    if isinstance(module, nn.Embedding):
        return "embedding", (int(module.num_embeddings), int(module.embedding_dim))
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "conv", tuple(int(s) for s in module.weight.shape)
    if isinstance(module, nn.ModuleList):
        return "list", None
    return "module", None


def _is_tuner_layer(module: Any) -> bool:
    import sys

    if "peft" not in sys.modules:
        return False  # nothing can be a tuner layer when PEFT was never imported
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover
        return False
    return isinstance(module, BaseTunerLayer)


def _embedding_name(model: Any, getter: str, by_id: Mapping[int, str]) -> str | None:
    try:
        module = getattr(model, getter)()
    except Exception:  # some models raise NotImplementedError, or have no such method
        return None
    if module is None:
        return None
    return by_id.get(id(module))
