"""The module tree: a model's modules, classes and parameter shapes as plain data, and its LoRA-targetable leaves.

A ``ModuleTree`` is what ``inspect`` knows about a model's structure, without torch: every module
name in ``named_modules()`` order with its class and its own parameters' shapes. It comes from a
built ``nn.Module`` (``ModuleTree.from_module``, the only place that looks at torch objects) or
from ``config.json`` alone, written by a plugin's ``lora_registry_module_tree`` hook with a
``TreeBuilder``. Either way ``leaves()`` applies the one rule for what LoRA can target, so the
two paths cannot disagree on it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelLoadError
from .peft_compat import PACKED_WEIGHT_NAMES, linear_shape, wrapped_module
from .registry import Registry

#: Node kinds: LoRA-targetable module kinds, a ``ModuleList`` (its numbered children are layers), or anything else.
LEAF_KINDS = ("linear", "embedding", "conv")
NODE_KINDS = (*LEAF_KINDS, "list", "module")

Shape = tuple[int, ...]


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
        """The tree of a built ``nn.Module``, named as the bare model's ``named_modules()`` names it (each module once).

        Every wrapper a training stack puts around the model or its layers is seen through, so the
        names are the bare model's and a config made from them applies to the model the trainer
        wraps: torch.compile (``_orig_mod``), DDP and DataParallel (``module``), FSDP1
        (``_fsdp_wrapped_module``, its flat parameters read back as the original ones), FSDP2 and
        ``replicate`` (their renamed classes), activation checkpointing (``_checkpoint_wrapped_module``),
        DeepSpeed's engine, and PEFT (tuner layers, ``modules_to_save`` and trainable-token wrappers;
        the adapter's own modules and parameters are left out). Shapes are logical: ZeRO-3's
        ``ds_shape``, bitsandbytes' packed 4-bit ``quant_state.shape``, HQQ's ``meta["shape"]``, a
        DTensor's global shape. Every layer PEFT's LoRA dispatchers adapt as a Linear is a leaf
        (``peft_compat.linear_shape``). A parameter whose size cannot be known, or a layer holding a
        quantized weight PEFT cannot adapt, raises ``ModelLoadError`` naming it.
        """
        walk = _Walk(model)
        walk.visit(model, "")
        root = unwrap(model)
        return cls(
            nodes=tuple(walk.nodes),
            tied=frozenset(walk.tied),
            input_embedding=_embedding_name(root, "get_input_embeddings", walk.by_id),
            output_embedding=_embedding_name(root, "get_output_embeddings", walk.by_id),
            # only ties that hold: the tied parameter is the same tensor as its source
            weight_ties={target: source for target, source in walk.ties.items() if target in walk.tied},
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
    return _scope_words(tuple(registry.scopes.items()))


@functools.lru_cache(maxsize=8)
def _scope_words(scopes: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    # keyed by the scope table itself: registries that share it share the answer, and none is kept alive
    words, suffixes = {}, []
    for scope, keys in scopes:
        for key in keys:
            if key.startswith("*"):
                suffixes.append((key[1:], scope))  # "*ctcencoder": a class name ending so
            else:
                words[key] = scope
    return words, tuple(suffixes)


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
#: Wrappers torch and DeepSpeed put around a model or a layer: (module defining the class, class, child it wraps).
_TORCH_WRAPPERS = (
    ("torch._dynamo.eval_frame", "OptimizedModule", "_orig_mod"),  # torch.compile
    ("torch.nn.parallel.distributed", "DistributedDataParallel", "module"),
    ("torch.nn.parallel.data_parallel", "DataParallel", "module"),
    ("torch.distributed.fsdp.fully_sharded_data_parallel", "FullyShardedDataParallel", "_fsdp_wrapped_module"),
    # checkpoint_wrapper and offload_wrapper (apply_activation_checkpointing, accelerate, TRL)
    ("torch.distributed.algorithms._checkpoint.checkpoint_wrapper", "ActivationWrapper", "_checkpoint_wrapped_module"),
    ("deepspeed.runtime.engine", "DeepSpeedEngine", "module"),
)


def unwrap(module: Any) -> Any:
    """The bare model inside every wrapper around ``module`` (``module`` itself when it is not wrapped)."""
    return wrapper_chain(module)[-1]


def wrapper_chain(module: Any, wrappers: Sequence[tuple[type, str]] | None = None) -> list[Any]:
    """``module``, then each module it wraps in turn, down to the bare one (torch, DeepSpeed and PEFT wrappers)."""
    wrappers = _loaded_wrappers() if wrappers is None else wrappers
    chain = [module]
    while True:
        inner = _inner(chain[-1], wrappers)
        if inner is None or any(inner is seen for seen in chain):
            return chain
        chain.append(inner)


def _loaded_wrappers() -> list[tuple[type, str]]:
    # A wrapper class whose module was never imported cannot wrap anything: look it up, never import it.
    import sys

    found = []
    for where, name, child in _TORCH_WRAPPERS:
        cls = getattr(sys.modules.get(where), name, None)
        if isinstance(cls, type):
            found.append((cls, child))
    return found


def _inner(module: Any, wrappers: Sequence[tuple[type, str]]) -> Any:
    for cls, child in wrappers:
        if isinstance(module, cls):
            return module._modules.get(child)  # type: ignore[attr-defined]
    return wrapped_module(module)


def class_name(module: Any) -> str:
    """The class name of the model's own module, under the class torch.distributed swaps in.

    ``fully_shard`` (FSDP2) and ``replicate`` change a module's class to ``FSDP<Name>`` / ``DDP<Name>``,
    deriving from (their mixin, the original class); plugins match the original's name.
    """
    cls = type(module)
    while (
        len(cls.__bases__) == 2
        and cls.__bases__[0].__module__.startswith("torch.distributed")
        and cls.__name__ != cls.__bases__[1].__name__
        and cls.__name__.endswith(cls.__bases__[1].__name__)
    ):
        cls = cls.__bases__[1]
    return cls.__name__


class _Walk:
    """One walk over a built model: the nodes, tied parameters, module ids -> names and declared ties."""

    def __init__(self, model: Any) -> None:
        self.nodes: list[Node] = []
        self.tied: set[str] = set()
        self.by_id: dict[int, str] = {}
        self.ties: dict[str, str] = {}
        self.seen_modules: set[int] = set()
        self.seen_params: set[Any] = set()
        self.wrappers = _loaded_wrappers()
        self.flat, self.flat_shapes = _fsdp1_parameters(model)
        self.flat_class = _flat_parameter_class()

    def visit(self, module: Any, name: str) -> None:
        chain = wrapper_chain(module, self.wrappers)
        base = chain[-1]
        if id(module) in self.seen_modules or id(base) in self.seen_modules:
            return
        for obj in chain:
            self.seen_modules.add(id(obj))
            self.by_id[id(obj)] = name
        params = self.parameters(base, name)
        kind, shape = _kind(base, name, dict(params).get("weight"))
        if kind not in LEAF_KINDS:
            _refuse_packed(base, name, params)
        self.nodes.append(Node(name, class_name(base), kind, tuple(params), shape))
        declared = getattr(base, "_tied_weights_keys", None)  # transformers 5: {tied parameter: its source}
        if isinstance(declared, dict):
            prefix = f"{name}." if name else ""
            self.ties.update(
                {
                    f"{prefix}{t}": f"{prefix}{s}"
                    for t, s in declared.items()
                    if isinstance(t, str) and isinstance(s, str)
                }
            )
        for child_name, child in base._modules.items():
            if child is not None:
                self.visit(child, f"{name}.{child_name}" if name else child_name)

    def parameters(self, module: Any, name: str) -> list[tuple[str, Shape]]:
        """``module``'s own parameters with their logical shapes, FSDP1's flattened ones put back."""
        flat = self.flat.get(id(module), {})
        if not flat and module.__dict__.get("_fsdp_use_orig_params") and _local_parameters(module):
            # FSDP1 with use_orig_params: the parameters are views of this rank's shard; only the wrapper knows more
            # (FSDP2 sets the same flag, but its DTensors know their global shape)
            raise ModelLoadError(
                f"{name or 'the model'}: an FSDP-managed module seen without its FullyShardedDataParallel wrapper, "
                "so its parameters' full shapes are unknown; pass the FSDP-wrapped model"
            )
        out: list[tuple[str, Shape]] = []
        for pname, param in module.named_parameters(recurse=False):
            if pname == "_flat_param" and self.flat_class is not None and isinstance(param, self.flat_class):
                continue  # FSDP1's FlatParameter: its original parameters come from its metadata below
            full = f"{name}.{pname}" if name else pname
            if pname in flat:
                key: Any = flat[pname]
                shape = self.flat_shapes[key]
            else:
                key, shape = id(param), parameter_shape(full, pname, param, module)
            self._note(full, key)
            out.append((pname, shape))
        registered = {p for p, _ in out}
        for pname, key in flat.items():
            if pname not in registered:  # use_orig_params=False: the module holds no Parameter any more
                self._note(f"{name}.{pname}" if name else pname, key)
                out.append((pname, self.flat_shapes[key]))
        return out

    def _note(self, full: str, key: Any) -> None:
        if key in self.seen_params:
            self.tied.add(full)
        self.seen_params.add(key)


def _local_parameters(module: Any) -> bool:
    """The module holds parameters that are not DTensors (FSDP2's DTensors know their global shape)."""
    return any(p is not None and type(p).__name__ != "DTensor" for p in module._parameters.values())


def parameter_shape(full: str, pname: str, param: Any, module: Any) -> Shape:
    """The logical shape of a parameter: what it holds, however it is stored here.

    DeepSpeed ZeRO-3 partitions parameters to shape ``[0]`` and records ``ds_shape``; bitsandbytes
    packs a 4-bit weight into ``[n/2, 1]`` bytes and records ``quant_state.shape``; HQQ packs
    ``W_q`` and records ``meta["shape"]``; a DTensor's ``shape`` is already the global one. An empty
    parameter with no such record raises ``ModelLoadError`` naming it.
    """
    ds_shape = getattr(param, "ds_shape", None)
    if ds_shape is not None:
        return tuple(int(s) for s in ds_shape)
    if type(param).__name__ == "Params4bit" and type(param).__module__.startswith("bitsandbytes"):
        state = getattr(param, "quant_state", None)
        if state is not None:
            return tuple(int(s) for s in state.shape)
        if getattr(param, "bnb_quantized", False):
            raise ModelLoadError(
                f"{full}: a packed 4-bit bitsandbytes weight without its quant_state; its size is unknown"
            )
    meta = getattr(module, "meta", None) if pname == "W_q" else None
    if isinstance(meta, dict) and "shape" in meta:
        return tuple(int(s) for s in meta["shape"])
    shape = tuple(int(s) for s in param.shape)
    if shape == (0,):
        raise ModelLoadError(
            f"{full} is empty here (shape [0]), as a partitioned or sharded parameter is, and records no full "
            "shape (such as ZeRO-3's ds_shape); lora-registry cannot tell its size"
        )
    return shape


def _fsdp1_parameters(model: Any) -> tuple[dict[int, dict[str, tuple[int, str]]], dict[tuple[int, str], Shape]]:
    """FSDP1's original parameters, read from each ``FlatParameter``'s metadata (never from its storage).

    ``({id(module): {parameter name: key}}, {key: shape})``; a key is ``(id(module), name)`` of the
    parameter's first holder, so tied (shared) parameters have one key.
    """
    import sys

    fsdp = getattr(
        sys.modules.get("torch.distributed.fsdp.fully_sharded_data_parallel"), "FullyShardedDataParallel", None
    )
    flat_class = _flat_parameter_class()
    if fsdp is None or flat_class is None:
        return {}, {}
    owners: dict[int, dict[str, tuple[int, str]]] = {}
    shapes: dict[tuple[int, str], Shape] = {}
    flats: dict[int, Any] = {}
    for module in model.modules():
        # the wrapper's handle holds it (use_orig_params too); the wrapped module registers it as ``_flat_param``
        handle = getattr(module, "_handle", None) if isinstance(module, fsdp) else None
        for flat in (getattr(handle, "flat_param", None), module._parameters.get("_flat_param")):
            if flat is not None and isinstance(flat, flat_class):
                flats[id(flat)] = flat
    for flat in flats.values():
        for info, shape in zip(flat._param_infos, flat._shapes):
            key = (id(info.module), info.param_name)
            shapes[key] = tuple(int(s) for s in shape)
            owners.setdefault(id(info.module), {})[info.param_name] = key
        for shared in flat._shared_param_infos:
            owners.setdefault(id(shared.module), {})[shared.param_name] = (
                id(shared.prim_module),
                shared.prim_param_name,
            )
    return owners, shapes


def _flat_parameter_class() -> Any:
    import sys

    return getattr(sys.modules.get("torch.distributed.fsdp._flat_param"), "FlatParameter", None)


def _kind(module: Any, name: str, weight: Shape | None) -> tuple[str, Shape | None]:
    import torch.nn as nn

    linear = linear_shape(module, weight)
    if linear is not None:
        return "linear", linear
    if isinstance(module, nn.Embedding):
        return "embedding", (int(module.num_embeddings), int(module.embedding_dim))
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if weight is None:
            raise ModelLoadError(f"{name}: a {class_name(module)} whose weight cannot be found; its shape is unknown")
        return "conv", weight
    if type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers"):
        raise ModelLoadError(f"{name}: a Conv1D whose weight cannot be found; its shape is unknown")
    if isinstance(module, nn.ModuleList):
        return "list", None
    return "module", None


def _refuse_packed(module: Any, name: str, params: Sequence[tuple[str, Shape]]) -> None:
    """A quantized weight no PEFT dispatcher adapts is an error naming it: leaving it out would be silently partial.

    Quantized storage is integer-typed: a packed ``weight``/``qweight``/``W_q``/``codes`` parameter or
    buffer of a layer ``peft_compat.linear_shape`` does not know (BitNet, HIGGS, GPTQ without
    gptqmodel, ...), or a would-be parameter leaf such as gpt-oss's MXFP4 experts.
    """
    shapes = dict(params)
    tensors = [*module._parameters.items(), *module._buffers.items()]
    for pname, tensor in tensors:
        if tensor is None or tensor.is_floating_point() or tensor.is_complex():
            continue
        leaf = pname in module._parameters and pname in shapes and is_parameter_leaf(pname, shapes[pname])
        if pname in PACKED_WEIGHT_NAMES or leaf:
            full = f"{name}.{pname}" if name else pname
            raise ModelLoadError(
                f"{full}: a packed {str(tensor.dtype).replace('torch.', '')} weight of {class_name(module)}, a "
                "quantized layer PEFT's LoRA has no layer type for; its shape and role cannot be known, so load the "
                "model unquantized or dequantized (e.g. Mxfp4Config(dequantize=True)), or with a quantization PEFT "
                "adapts (bitsandbytes, GPTQ, AWQ, HQQ, torchao)"
            )


def _embedding_name(model: Any, getter: str, by_id: Mapping[int, str]) -> str | None:
    try:
        module = getattr(model, getter)()
    except Exception:  # some models raise NotImplementedError, or have no such method
        return None
    if module is None:
        return None
    return by_id.get(id(module))
