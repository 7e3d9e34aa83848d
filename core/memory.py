"""``plan``: the peak GPU memory of a LoRA or QLoRA training step, known before training.

``plan_memory`` runs the real code path on the ``meta`` device (``lora_registry.simulation``):
transformers builds the model, PEFT applies the LoRA config, and two training steps run under a
tracker that adds up every live storage as the CUDA caching allocator rounds it; the allocation
trace is replayed through a model of that allocator for the reserved estimate. A uniform layer
stack is simulated at three depths and extrapolated (exactly: each layer adds the same bytes), so
a 126-layer model costs what a few layers do. With a GPU it says whether the step fits, and
the largest sequence length and batch that do.

``AdapterPlan.memory(settings)`` is the usual entry: it plans the adapter's own LoRA config on
the model its map was made from. torch, transformers, PEFT and bitsandbytes are imported inside
the functions: ``import lora_registry`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .simulation import StepResult

#: the breakdown's categories, in the order tables and JSON show them
CATEGORIES = ("base_weights", "adapter_weights", "gradients", "optimizer_states", "activations", "other")
QUANTS = ("none", "8bit", "4bit")
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
RECIPES = ("peft", "trl")
#: the CUDA context (driver, kernels, cuBLAS/cuDNN handles) lives outside the caching allocator:
#: it never shows in max_memory_reserved but takes GPU memory all the same
CONTEXT_BYTES = 1 << 30
#: above this share of the card a run "fits" only tightly (fragmentation, other processes, a longer batch)
TIGHT_SHARE = 0.9
#: max_seq_len is reported on this grid
SEQ_STEP = 64
GIB = 1 << 30
MIB = 1 << 20
_NO_BITSANDBYTES = "--quant {quant} needs bitsandbytes, which is not installed: pip install 'lora-registry[qlora]'"


@dataclass(frozen=True)
class MemorySettings:
    """What the training run looks like: sequence length, batch, checkpointing, quantization, recipe, GPU.

    ``quant`` is ``"none"``, ``"8bit"`` (LLM.int8) or ``"4bit"`` (NF4 with double quantization,
    compute in ``dtype``); ``recipe`` is ``"peft"`` (plain ``get_peft_model`` on the model as
    loaded, ``torch.optim.AdamW``) or ``"trl"`` (what TRL's ``SFTTrainer`` does: for 8/4-bit models
    ``prepare_model_for_kbit_training``, then bf16 autocast and fused AdamW). ``packed`` rows are
    full (no padding); unpacked batches of more than one row carry a padding mask. ``gpu`` is a
    name from ``registry.toml``'s ``[gpus]`` table or a size such as ``"24GB"`` (GiB).
    """

    seq_len: int
    batch: int = 1
    gradient_checkpointing: bool = False
    quant: str = "none"
    dtype: str = "bf16"
    recipe: str = "peft"
    packed: bool = False
    gpu: str | None = None

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = "--seq-len" if name == "seq_len" else "--batch"
                raise ConfigError(f"{flag} must be a positive whole number, not {value!r}")
        if self.quant not in QUANTS:
            raise ConfigError(f"--quant must be one of {', '.join(QUANTS)}, not {self.quant!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.recipe not in RECIPES:
            raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")
        for name in ("gradient_checkpointing", "packed"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.gpu is not None:
            gpu_bytes(self.gpu)  # an unknown name fails here, before any model is built
        if self.quant != "none":
            import importlib.util

            if importlib.util.find_spec("bitsandbytes") is None:  # found without importing it (and torch)
                raise ConfigError(_NO_BITSANDBYTES.format(quant=self.quant))

    def to_dict(self) -> dict[str, Any]:
        """The ``"settings"`` object of the JSON plan."""
        return {
            "seq_len": self.seq_len,
            "batch": self.batch,
            "gradient_checkpointing": self.gradient_checkpointing,
            "quant": self.quant,
            "dtype": self.dtype,
            "recipe": self.recipe,
            "packed": self.packed,
            "gpu": self.gpu,
        }


@dataclass(frozen=True)
class MemoryPlan:
    """The predicted peak memory of one training step at steady state, and whether it fits a GPU.

    ``allocated`` is the peak of ``torch.cuda.max_memory_allocated``; ``reserved`` estimates
    ``max_memory_reserved`` (the caching allocator's segments). ``breakdown`` splits the allocated
    peak by what holds it; ``context_bytes`` is the CUDA context, outside both, that ``fits`` adds.
    """

    model: str
    model_type: str
    settings: MemorySettings
    allocated: int
    reserved: int
    breakdown: Mapping[str, int]
    phase: str
    context_bytes: int = CONTEXT_BYTES
    gpu_name: str | None = None
    gpu_total: int | None = None
    fits: str | None = None
    max_seq_len: int | None = None
    max_batch: int | None = None
    assumptions: tuple[str, ...] = ()
    simulated_layers: tuple[int, ...] = ()
    layers: int = 0
    trainable_parameters: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``plan --format json`` document (every key the issue lists, plus ``phase`` and layer facts)."""
        return {
            "model": self.model,
            "model_type": self.model_type,
            "settings": self.settings.to_dict(),
            "peak_bytes": {"allocated": self.allocated, "reserved": self.reserved},
            "breakdown_bytes": {key: int(self.breakdown.get(key, 0)) for key in CATEGORIES},
            "context_bytes": self.context_bytes,
            "gpu": None if self.gpu_name is None else {"name": self.gpu_name, "bytes": self.gpu_total},
            "fits": self.fits,
            "max_seq_len": self.max_seq_len,
            "max_batch": self.max_batch,
            "assumptions": list(self.assumptions),
            "phase": self.phase,
            "layers": self.layers,
            "simulated_layers": list(self.simulated_layers),
            "trainable_parameters": self.trainable_parameters,
        }


# ------------------------------------------------------------------------------------ planning
def plan_memory(
    config: Any,
    lora_config: Any,
    settings: MemorySettings,
    *,
    model_label: str,
    build_model: Callable[[Any], Any] | None = None,
    search: bool = True,
    uniform: bool = True,
) -> MemoryPlan:
    """Predict the peak memory of a LoRA/QLoRA training step of ``config``'s model under ``lora_config``.

    ``config`` is a transformers ``PretrainedConfig`` (or the ``config.json`` dict of a model type a
    plugin builds); ``lora_config`` a ``peft.LoraConfig``. ``build_model(config) -> nn.Module``
    builds the model on the meta device (default: ``lora_registry.loading.build_model``). With
    ``settings.gpu`` the plan says whether it fits and, unless ``search`` is off, the largest
    sequence length at this batch and the largest batch at this length. ``uniform=False`` says the
    adapter covers only some layers (a layer selection): every layer is then simulated, since a
    shallower model would not have the selected layers.
    """
    if not isinstance(settings, MemorySettings):
        raise ConfigError(f"settings must be a MemorySettings, not {type(settings).__name__}")
    _check_quant_available(settings.quant)
    planner = _Planner(config, lora_config, build_model, model_label, uniform)
    plan = planner.plan(settings)
    if settings.gpu is None:
        return plan
    name, total = gpu_bytes(settings.gpu)
    fits = _verdict(plan.reserved + plan.context_bytes, total)
    max_seq = max_batch = None
    if search:
        max_seq = planner.largest(settings, "seq_len", total)
        max_batch = planner.largest(settings, "batch", total)
    return replace(plan, gpu_name=name, gpu_total=total, fits=fits, max_seq_len=max_seq, max_batch=max_batch)


def _verdict(need: int, total: int) -> str:
    if need > total:
        return "does-not-fit"
    return "tight" if need > TIGHT_SHARE * total else "fits"


def _check_quant_available(quant: str) -> None:
    if quant == "none":
        return
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        raise ConfigError(_NO_BITSANDBYTES.format(quant=quant)) from None


class _Planner:
    """Simulations of one model and LoRA config, cached per (settings, depth)."""

    def __init__(self, config: Any, lora_config: Any, build_model: Any, label: str, uniform: bool) -> None:
        self.config = config
        self.lora_config = lora_config
        self.build_model = build_model
        self.label = label
        self.cache: dict[tuple, StepResult] = {}
        self.models: dict[tuple, Any] = {}  # built models by depth and model-shaping settings (simulation.py)
        self.depth = _depth_plan(config)
        if not uniform and len(self.depth[1]) > 1:
            layers = self.depth[0]
            self.depth = (layers, (layers,), "the adapter covers only some layers, so every layer was simulated")

    # -------------------------------------------------------------- one plan
    def plan(self, settings: MemorySettings) -> MemoryPlan:
        total_layers, depths, note = self.depth
        result: StepResult | None = None
        if len(depths) == 1:
            result = self._simulate(settings, depths[0])
        else:
            # the first layers can differ from the rest (the peak sits at the loss for a one-layer model):
            # slide the window of three depths deeper until the per-phase peaks are linear
            period = depths[1] - depths[0]
            for shift in range(3):
                window = tuple(d + shift * period for d in depths)
                if window[-1] >= total_layers:
                    break
                result = _extrapolate([self._simulate(settings, d) for d in window], window, total_layers)
                if result is not None:
                    depths = window
                    note = (
                        f"{total_layers} layers extrapolated exactly from simulations of "
                        f"{window[0]}, {window[1]} and {window[2]}"
                    )
                    break
            if result is None:  # not linear after all: run every layer
                result = self._simulate(settings, total_layers)
                depths = (total_layers,)
                note = "the layer stack is not uniform, so every layer was simulated"
        assumptions = _assumptions(self.config, settings, result, note)
        return MemoryPlan(
            model=self.label,
            model_type=getattr(self.config, "model_type", "") or "",
            settings=settings,
            allocated=result.allocated,
            reserved=result.reserved,
            breakdown=result.breakdown,
            phase=result.phase,
            assumptions=tuple(assumptions),
            simulated_layers=tuple(depths),
            layers=total_layers,
            trainable_parameters=result.trainable,
        )

    def _simulate(self, settings: MemorySettings, depth: int) -> StepResult:
        from .simulation import simulate_step

        key = (*replace(settings, gpu=None).to_dict().values(), depth)
        if key not in self.cache:
            self.cache[key] = simulate_step(
                self.config, self.lora_config, settings, depth=depth, build_model=self.build_model, models=self.models
            )
        return self.cache[key]

    # -------------------------------------------------------------- searches
    def largest(self, settings: MemorySettings, what: str, total: int) -> int | None:
        """The largest seq_len (on the ``SEQ_STEP`` grid) or batch whose plan is not ``does-not-fit``.

        The need grows with both, close to linearly: the line through the last two plans predicts
        where it crosses the card (a secant step), which brackets the answer in a plan or two; inside
        the bracket the prediction and its neighbour are planned, with bisection whenever two rounds
        fail to halve the bracket, until one plan fits and the next step does not. A handful of plans.
        """
        step = SEQ_STEP if what == "seq_len" else 1
        limit = (1 << 24) // step
        seen: dict[int, int] = {}

        def over(n: int) -> int:  # bytes above the card (<= 0: it fits)
            if n not in seen:
                changed = replace(settings, seq_len=n * step) if what == "seq_len" else replace(settings, batch=n)
                plan = self.plan(replace(changed, gpu=None))
                seen[n] = plan.reserved + plan.context_bytes - total
            return seen[n]

        def crossing(p: int, q: int) -> int | None:  # where the line through p and q reaches the card
            fp, fq = over(p), over(q)
            if fp == fq:
                return None
            return p + (-fp) * (q - p) // (fq - fp)

        if over(1) > 0:
            return None
        lo, hi = 1, 0
        last = [1]  # the points evaluated last: the secant through the latest two predicts the next
        n = min(limit, max(2, getattr(settings, what) // step))
        while not hi:  # grow until a plan does not fit
            last.append(n)
            if over(n) > 0:
                hi = n
            elif n >= limit:
                return limit * step
            else:
                guess = crossing(last[-2], n)
                lo, n = n, min(limit, guess + 1 if guess is not None and guess > n else 2 * n)
        slow = 0
        while hi - lo > 1:
            width = hi - lo
            guess = crossing(last[-2], last[-1]) if slow < 2 else None
            if guess is None or not lo < guess < hi:
                guess = (lo + hi) // 2
            last.append(guess)  # (not its neighbour: a step apart, two plans often need the same segments)
            for n in (guess, guess + 1 if over(guess) <= 0 else guess - 1):  # the crossing and its neighbour
                if lo < n < hi:
                    lo, hi = (lo, n) if over(n) > 0 else (n, hi)
            slow = slow + 1 if hi - lo > width // 2 else 0
        return lo * step


def _extrapolate(results: Sequence[StepResult], depths: Sequence[int], total: int) -> StepResult | None:
    """Linear extrapolation of per-phase peaks from equally spaced depths; ``None`` if they are not linear."""
    (r1, r2, r3), (d1, d2, _) = results, depths
    steps = (total - d1) / (d2 - d1)
    phases = {}
    for phase in r1.phases:
        if phase not in r2.phases or phase not in r3.phases:
            return None
        (t1, c1), (t2, c2), (t3, c3) = r1.phases[phase], r2.phases[phase], r3.phases[phase]
        if t2 - t1 != t3 - t2 or any(c2[k] - c1[k] != c3[k] - c2[k] for k in CATEGORIES):
            return None
        phases[phase] = (t1 + round(steps * (t2 - t1)), {k: c1[k] + round(steps * (c2[k] - c1[k])) for k in CATEGORIES})
    phase = max(phases, key=lambda p: phases[p][0])
    tracked, breakdown = phases[phase]

    def line(a: int, b: int) -> int:
        return a + round(steps * (b - a))

    # the allocator's block reuse is close to, not exactly, linear: extrapolate its excess over the tracker
    allocated = tracked + max(0, line(r1.allocated - r1.tracked, r2.allocated - r2.tracked))
    # What is reserved beyond what is allocated (cached free blocks, split segments) does not grow layer by
    # layer: it holds about level with depth, with a jump where one large block stops fitting a cached one.
    # So the deepest simulation's excess is carried over; a line through segment counts would multiply one
    # such jump by the number of layers.
    reserved = allocated + max(0, r3.reserved - r3.allocated)
    from .simulation import StepResult

    trainable = r1.trainable + round(steps * (r2.trainable - r1.trainable))
    return StepResult(allocated, reserved, tracked, breakdown, phase, phases, trainable, r1.notes)


def _depth_plan(config: Any) -> tuple[int, tuple[int, ...], str]:
    """``(layers, depths to simulate, note)``: three equally spaced depths for a uniform or periodic stack."""
    from types import SimpleNamespace

    # a plugin's config.json dict: its num_hidden_layers is the one size the simulation changes
    text = SimpleNamespace(**config) if isinstance(config, Mapping) else text_config(config)
    n = getattr(text, "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        return 0, (0,), "the model has no num_hidden_layers: simulated as built"
    period = 1
    types = getattr(text, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == n and len(set(map(str, types))) > 1:
        found = _period(list(map(str, types)))
        if found is None:
            return n, (n,), "the layer types follow no repeating pattern, so every layer was simulated"
        period = found
    prefix = 0
    for attr in ("first_k_dense_replace",):
        value = getattr(text, attr, None)
        if isinstance(value, int) and value > 0:
            prefix = value
    irregular = [a for a in ("mlp_only_layers", "no_rope_layers") if getattr(text, a, None)]
    if irregular:
        return n, (n,), f"{irregular[0]} makes layers differ, so every layer was simulated"
    depths = (prefix + period, prefix + 2 * period, prefix + 3 * period)
    if n <= depths[-1] + period or (n - prefix) % period:
        return n, (n,), "every layer simulated"
    return n, depths, f"{n} layers extrapolated exactly from simulations of {depths[0]}, {depths[1]} and {depths[2]}"


def _period(types: list[str]) -> int | None:
    n = len(types)
    for p in range(1, n // 2 + 1):
        if all(types[i] == types[i % p] for i in range(n)):
            return p
    return None


def text_config(config: Any) -> Any:
    """The decoder's text config of a composite config (a VLM's ``text_config``), else the config itself."""
    getter = getattr(config, "get_text_config", None)
    if callable(getter):
        try:
            return getter(decoder=True)
        except TypeError:
            return getter()
    return config


def _assumptions(config: Any, settings: MemorySettings, result: StepResult, note: str) -> list[str]:
    from .simulation import CUBLAS_HANDLES, CUBLAS_WORKSPACE

    s = settings
    out = [
        f"attention: {result.notes[0] if result.notes else 'as transformers runs it'}",
        (
            "packed rows, no padding"
            if s.packed
            else "padded batch: every row padded to seq_len; with more than one row a padding mask is passed"
            if s.batch > 1
            else "one row, no padding"
        ),
        {
            "peft": "recipe peft: get_peft_model on the model as loaded (adapter fp32 by PEFT's autocast_adapter_dtype), "
            "torch.optim.AdamW (foreach), no autocast",
            "trl": "recipe trl: "
            + ("prepare_model_for_kbit_training (non-quantized weights upcast to fp32), " if s.quant != "none" else "")
            + f"{s.dtype} autocast around forward and loss, "
            "outputs converted to fp32 (accelerate), fused AdamW",
        }[s.recipe],
        f"base weights {s.dtype}"
        + {
            "none": "",
            "8bit": ", Linear layers LLM.int8 (bitsandbytes)",
            "4bit": f", Linear layers NF4 with double quantization (bitsandbytes), compute {s.dtype}",
        }[s.quant],
        "gradient checkpointing: every layer, non-reentrant (transformers' default)"
        if s.gradient_checkpointing
        else "no gradient checkpointing",
        "steady state: the second of two steps, zero_grad(set_to_none=True); the loss is transformers' "
        "own (logits upcast to fp32)",
        "allocations rounded as the CUDA caching allocator rounds them (512 bytes; segments of 2 MiB, 20 MiB or "
        "2 MiB multiples); weights allocated one tensor at a time, no empty_cache",
        f"cuBLAS workspaces: {CUBLAS_HANDLES} x {CUBLAS_WORKSPACE // MIB} MiB (Hopper); "
        f"CUDA context allowance {CONTEXT_BYTES / GIB:.1f} GiB (outside max_memory_reserved)",
        note,
    ]
    limit = getattr(text_config(config), "max_position_embeddings", None)
    if isinstance(limit, int) and s.seq_len > limit:
        out.append(f"seq_len {s.seq_len} is beyond the model's max_position_embeddings ({limit}): planned anyway")
    out.extend(result.notes[1:])
    return out


# ---------------------------------------------------------------------------------------- GPUs
def gpu_table() -> dict[str, float]:
    """``{name: GiB}`` from ``registry.toml``'s ``[gpus]`` table, aliases included (lower-case keys)."""
    from .registry import load_registry

    return dict(load_registry().gpus)


def gpu_bytes(name: str) -> tuple[str, int]:
    """``("RTX4090", 24 GiB)`` for a GPU name or a size like ``"24GB"`` / ``"80GiB"`` (GiB, as GPU names use them)."""
    import re

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"--gpu must be a GPU name or a size like 24GB, not {name!r}")
    text = name.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(GB|GIB|G)", text, re.IGNORECASE)
    if match:
        size = float(match.group(1))
        if not 0 < size <= 100_000:
            raise ConfigError(f"--gpu size must be above 0 GB, not {text!r}")
        return f"{match.group(1)}GB", int(size * GIB)
    table = gpu_table()
    key = text.lower()
    if key not in table:
        import difflib

        close = difflib.get_close_matches(key, list(table), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown GPU {text!r}: give a size like 24GB or one of lora-registry's GPU names{hint}")
    return text, int(table[key] * GIB)
