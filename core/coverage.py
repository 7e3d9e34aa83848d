"""Coverage of every text-generating architecture transformers ships.

The corpus is every model type in transformers' causal-LM, seq2seq-LM and image-text-to-text
auto mappings. ``check(model_type)`` builds one from its default config on the meta device,
inspects it, resolves ``all`` and lets PEFT apply the emitted config, and reports what it saw.
The sweep test (``tests/test_sweep.py``) and ``benchmarks/coverage.py`` both use it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import LoraRegistryError

#: transformers' auto mappings whose model types make up the corpus
CORPUS_MAPPINGS = (
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
)


def corpus() -> list[str]:
    """Every model type in the corpus mappings of the installed transformers, sorted."""
    from transformers.models.auto import modeling_auto

    types: set[str] = set()
    for mapping in CORPUS_MAPPINGS:
        types.update(getattr(modeling_auto, mapping, {}))
    return sorted(types)


@dataclass
class PeftCheck:
    """What PEFT adapted when given a resolution's config, next to what lora-registry predicted."""

    expected: set[str]
    targeted: set[str]
    predicted: int
    trainable: int
    model: Any = field(default=None, repr=False)  # the PeftModel

    @property
    def exact(self) -> bool:
        """PEFT adapted exactly the resolved set, with the predicted trainable-parameter count."""
        return self.expected == self.targeted and self.predicted == self.trainable

    def difference(self) -> str:
        """One line naming the first disagreement ('' when exact)."""
        missing = sorted(self.expected - self.targeted)
        extra = sorted(self.targeted - self.expected)
        parts = []
        if missing:
            parts.append(f"{len(missing)} resolved but not adapted (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} adapted but not resolved (e.g. {extra[0]})")
        if self.predicted != self.trainable:
            parts.append(f"predicted {self.predicted:,} trainable, PEFT built {self.trainable:,}")
        return "; ".join(parts)


def peft_check(resolution, r: int = 8, ranks=None, alphas=None) -> PeftCheck:
    """Apply ``resolution.lora_config(...)`` with PEFT's ``get_peft_model`` and compare.

    This wraps (and so changes) ``resolution.model_map.module``: use a resolution made for it.
    """
    from .peft_compat import apply

    config = resolution.lora_config(r=r, ranks=ranks, alphas=alphas)
    model, targeted = apply(resolution.model_map.module, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return PeftCheck(
        expected=set(resolution.target_keys().values()),
        targeted=targeted,
        predicted=resolution.trainable_parameters(r=r, ranks=ranks),
        trainable=trainable,
        model=model,
    )


def token_mixers(model_map: Any) -> dict[str, list[str]]:
    """``{block: [its Linear and parameter leaves]}`` for every token mixer in the language model's layers.

    A token mixer is the outermost module inside a layer that is softmax attention (an attribute or
    class the registry lists under ``blocks.attention``/``attention_classes``) or another mixer
    (``blocks.mixer``/``mixer_classes``): found from the module tree, whatever roles the leaves got.
    Blocks holding only convolutions or embeddings are left out: no LoRA role could reach them.
    """
    blocks = model_map.vocabulary.blocks
    attention, mixers = set(blocks.get("attention", ())), set(blocks.get("mixer", ()))
    words = tuple(blocks.get("attention_classes", ())) + tuple(blocks.get("mixer_classes", ()))
    out: dict[str, list[str]] = {}
    for leaf in model_map.leaves:
        if leaf.scope != "language" or leaf.layer is None or leaf.lora_type not in ("linear", "parameter"):
            continue
        for i, (component, cls) in enumerate(leaf.path[:-1]):
            if component.isdigit() or not _inside_layer(leaf, i):
                continue
            if component in attention or component in mixers or any(w in cls for w in words):
                out.setdefault(".".join(c for c, _ in leaf.path[: i + 1]), []).append(leaf.name)
                break
    return out


def _inside_layer(leaf: Any, i: int) -> bool:
    # the block sits below the layer's index in the path (not the layer itself, not above the stack)
    return any(c == str(leaf.layer) for c, _ in leaf.path[:i])


@dataclass
class CoverageRow:
    """One model type's coverage: built or not, its leaves and roles, and whether PEFT agreed."""

    model_type: str
    built: bool = False
    error: str = ""
    model_class: str = ""
    plugin: str = ""
    leaves: int = 0  # language-scope leaves
    with_role: int = 0
    linear: int = 0  # language-scope Linear leaves (the README's coverage figure counts these)
    linear_with_role: int = 0
    other_scopes: dict[str, int] = field(default_factory=dict)
    nulls: Counter = field(default_factory=Counter)  # reason -> language leaves
    unexplained: list[str] = field(default_factory=list)  # language leaves with no role and no reason
    roles: list[str] = field(default_factory=list)  # roles present in the language model
    resolved: int = 0  # leaves the `all` resolution selects
    mixers: int = 0  # token-mixer blocks (softmax attention or another mixer) in the language model's layers
    unreached: list[str] = field(default_factory=list)  # token-mixer blocks no leaf of the `all` resolution is in
    peft_exact: bool | None = None  # None: nothing to apply (no `all` roles)
    peft_note: str = ""

    @property
    def null(self) -> int:
        """Language leaves without a role."""
        return self.leaves - self.with_role

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (null reasons most common first)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["nulls"] = dict(self.nulls.most_common())
        return data


def check(model_type: str, *, plugin_manager: Any = None, peft: bool = True, r: int = 8) -> CoverageRow:
    """Build ``model_type`` from its default config, inspect it, resolve ``all`` and check with PEFT."""
    from .inspection import inspect
    from .resolution import resolve_map
    from .roles import parse_roles

    row = CoverageRow(model_type)
    try:
        model_map = inspect(model_type, plugin_manager=plugin_manager)
    except LoraRegistryError as exc:
        row.error = str(exc)
        return row
    row.built = True
    row.model_class = model_map.tree.root_class
    row.plugin = model_map.plugin
    scopes: Counter = Counter()
    for leaf in model_map.leaves:
        if leaf.scope != "language":
            scopes[leaf.scope] += 1
            continue
        row.leaves += 1
        row.linear += leaf.lora_type == "linear"
        if model_map.roles.get(leaf.name) is not None:
            row.with_role += 1
            row.linear_with_role += leaf.lora_type == "linear"
        elif leaf.name in model_map.null_reasons:
            row.nulls[model_map.null_reasons[leaf.name]] += 1
        else:
            row.unexplained.append(leaf.name)
    row.other_scopes = dict(sorted(scopes.items()))
    row.roles = model_map.present_roles()
    requests = parse_roles("all", model_map.vocabulary)
    blocks = token_mixers(model_map)
    row.mixers = len(blocks)
    if not any(role in row.roles for request in requests for role in request.roles):
        row.unreached = list(blocks)
        return row
    resolution = resolve_map(model_map, requests, ("language",))
    row.resolved = len(resolution.leaves)
    reached = {leaf.name for leaf in resolution.leaves}
    row.unreached = [block for block, names in blocks.items() if not reached & set(names)]
    if not peft:
        return row
    try:
        result = peft_check(resolution, r=r)
    except Exception as exc:  # PEFT itself can fail on a model (reported, not raised)
        row.peft_exact = False
        row.peft_note = f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:200]}"
        return row
    row.peft_exact = result.exact
    row.peft_note = result.difference()
    return row
