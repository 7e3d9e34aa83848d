"""``plan``: the peak GPU memory of a LoRA or QLoRA training step, known before training.

The real code path runs on the ``meta`` device: transformers builds the model, PEFT applies the
LoRA config, and two training steps (forward, loss, backward, AdamW step) run under a
``TorchDispatchMode`` that adds up the bytes of every live storage as the CUDA caching allocator
rounds them. The allocation trace is then replayed through a model of that allocator for the
reserved estimate. A uniform layer stack is simulated at a few depths and extrapolated (exactly:
each layer adds the same bytes), so a 126-layer model costs what a 3-layer one does.

torch, transformers, PEFT and bitsandbytes are imported inside the functions: ``import
lora_registry`` stays light.
"""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from .errors import ConfigError, LoraRegistryError, ModelLoadError

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

# The CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp): kMinBlockSize, kSmallSize,
# kSmallBuffer, kMinLargeAlloc, kLargeBuffer, kRoundLarge.
_MIN_BLOCK = 512
_SMALL_SIZE = 1 * MIB
_SMALL_BUFFER = 2 * MIB
_MIN_LARGE_ALLOC = 10 * MIB
_LARGE_BUFFER = 20 * MIB
_ROUND_LARGE = 2 * MIB
#: cuBLAS workspace per (handle, stream): 32 MiB from Hopper on (CublasHandlePool.cpp); the forward
#: thread and autograd's backward thread each hold a handle
_CUBLAS_WORKSPACE = 32 * MIB
_CUBLAS_HANDLES = 2


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

    def to_dict(self) -> dict[str, Any]:
        """The ``"settings"`` object of the JSON plan."""
        return {
            "seq_len": self.seq_len, "batch": self.batch, "gradient_checkpointing": self.gradient_checkpointing,
            "quant": self.quant, "dtype": self.dtype, "recipe": self.recipe, "packed": self.packed, "gpu": self.gpu,
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

    def summary(self) -> list[str]:
        """A few human lines: the peak, the breakdown, the verdict."""
        s = self.settings
        lines = [
            f"{self.model} ({self.model_type}): seq {s.seq_len} x batch {s.batch}, {s.dtype}, quant {s.quant}, "
            f"recipe {s.recipe}{', checkpointing' if s.gradient_checkpointing else ''}",
            f"peak allocated {_gib(self.allocated)}, reserved ~{_gib(self.reserved)} (during {self.phase}); "
            f"+ CUDA context ~{_gib(self.context_bytes)}",
            "  " + ", ".join(f"{key.replace('_', ' ')} {_gib(self.breakdown.get(key, 0))}" for key in CATEGORIES),
        ]
        if self.gpu_name is not None:
            lines.append(
                f"{self.gpu_name} ({_gib(self.gpu_total or 0)}): {self.fits}; largest seq_len at batch {s.batch}: "
                f"{self.max_seq_len or 'none'}; largest batch at seq_len {s.seq_len}: {self.max_batch or 'none'}"
            )
        return lines


def memory_table(plan: MemoryPlan) -> list[Any]:
    """Rich renderables for ``plan --format table``: the breakdown table and the assumptions."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{plan.model} - peak training memory", show_lines=False)
    table.add_column("what")
    table.add_column("GiB", justify="right")
    table.add_column("bytes", justify="right")
    for key in CATEGORIES:
        value = int(plan.breakdown.get(key, 0))
        table.add_row(key.replace("_", " "), f"{value / GIB:.2f}", f"{value:,}")
    table.add_row("peak allocated", f"{plan.allocated / GIB:.2f}", f"{plan.allocated:,}", style="bold")
    table.add_row("reserved (estimate)", f"{plan.reserved / GIB:.2f}", f"{plan.reserved:,}")
    table.add_row("CUDA context", f"{plan.context_bytes / GIB:.2f}", f"{plan.context_bytes:,}")
    out: list[Any] = [table, Text("\n".join(plan.summary()[1:2] + plan.summary()[3:]))]
    out.append(Text("assumptions:\n" + "\n".join(f"- {a}" for a in plan.assumptions)))
    return out


# ---------------------------------------------------------------------------------------- GPUs
def gpu_table() -> dict[str, int]:
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


# ------------------------------------------------------------------------------- weight memory
def weight_memory(shapes: Any) -> dict[str, int]:
    """Bytes of a model's weights at bf16, 8-bit and 4-bit NF4 (with and without double quantization).

    ``shapes`` is a ``ModelMap`` (its module when there is one, else its leaves), an ``nn.Module``,
    or an iterable of ``(name, shape, quantizable)``. What bitsandbytes does decides the numbers:
    every ``nn.Linear`` except the output embedding (and what it is tied to) is quantized; embeddings,
    norms, biases and other parameters stay bf16. 4-bit packs two values a byte with one fp32 absmax
    per 64 values; double quantization stores that absmax as 8-bit with one fp32 scale per 256
    blocks, plus the 256-entry fp32 code and the offset; 8-bit (LLM.int8) stores int8 and one fp32
    scale per output row. Tensors are counted unrounded (the allocator adds at most 511 bytes each).
    """
    items = list(_weight_items(shapes))
    out = {"bf16": 0, "8bit": 0, "4bit": 0, "4bit_double_quant": 0}
    for _, shape, quantizable in items:
        n = math.prod(shape)
        out["bf16"] += 2 * n
        if not quantizable:
            for key in ("8bit", "4bit", "4bit_double_quant"):
                out[key] += 2 * n
            continue
        rows = shape[0]
        out["8bit"] += n + 4 * rows
        packed = (n + 1) // 2
        blocks = math.ceil(n / 64)
        out["4bit"] += packed + 4 * blocks + 4 * 16  # absmax fp32 + the 16-entry NF4 code
        nested = math.ceil(blocks / 256)
        out["4bit_double_quant"] += packed + blocks + 4 * nested + 4 * 256 + 4 * 16 + 4
    return out


def _weight_items(shapes: Any):
    module = getattr(shapes, "module", None)
    if module is None and hasattr(shapes, "named_parameters"):
        module = shapes
    if module is not None:
        import torch.nn as nn

        output = module.get_output_embeddings() if hasattr(module, "get_output_embeddings") else None
        skipped = {id(p) for p in output.parameters()} if output is not None else set()
        quantizable = set()
        for sub in module.modules():
            if type(sub) is nn.Linear or type(sub).__name__ == "Conv1D":
                if id(sub.weight) not in skipped:
                    quantizable.add(id(sub.weight))
        for name, p in module.named_parameters():
            yield name, tuple(p.shape), id(p) in quantizable
        return
    leaves = getattr(shapes, "leaves", None)
    if leaves is not None:
        for leaf in leaves:
            yield leaf.name, tuple(leaf.shape), leaf.lora_type == "linear" and leaf.short_name != "lm_head"
        return
    for name, shape, quantizable in shapes:
        yield name, tuple(shape), bool(quantizable)


def adapter_dtype_bytes() -> int:
    """Bytes per adapter value as PEFT really allocates it.

    ``get_peft_model``'s ``autocast_adapter_dtype=True`` (the default) upcasts LoRA weights created
    in bf16 or fp16 to fp32, so the adapter is fp32 whatever the base model's dtype.
    """
    return 4


# ------------------------------------------------------------------------------------ planning
def plan_memory(
    config: Any,
    lora_config: Any,
    settings: MemorySettings,
    *,
    model_label: str,
    build_model: Callable[[Any], Any] | None = None,
    search: bool = True,
) -> MemoryPlan:
    """Predict the peak memory of a LoRA/QLoRA training step of ``config``'s model under ``lora_config``.

    ``config`` is a transformers ``PretrainedConfig``; ``lora_config`` a ``peft.LoraConfig`` as
    lora-registry emits it. ``build_model(config) -> nn.Module`` builds model types transformers
    lacks (default: transformers' Auto classes on meta, as ``lora_registry.loading.build_model``).
    With ``settings.gpu`` the plan says whether it fits and, unless ``search`` is off, the largest
    sequence length at this batch and the largest batch at this length.
    """
    if not isinstance(settings, MemorySettings):
        raise ConfigError(f"settings must be a MemorySettings, not {type(settings).__name__}")
    _check_quant_available(settings.quant)
    planner = _Planner(config, lora_config, build_model, model_label)
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
        raise ConfigError(
            f"--quant {quant} needs bitsandbytes: pip install 'lora-registry[qlora]'"
        ) from None


class _Planner:
    """Simulations of one model and LoRA config, cached per (settings, depth)."""

    def __init__(self, config, lora_config, build_model, label):
        self.config = config
        self.lora_config = lora_config
        self.build_model = build_model
        self.label = label
        self.cache: dict[tuple, _StepResult] = {}
        self.depth = _depth_plan(config)

    # -------------------------------------------------------------- one plan
    def plan(self, settings: MemorySettings) -> MemoryPlan:
        total_layers, depths, note = self.depth
        result = None
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
                    note = (f"{total_layers} layers extrapolated exactly from simulations of "
                            f"{window[0]}, {window[1]} and {window[2]}")
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

    def _simulate(self, settings: MemorySettings, depth: int) -> "_StepResult":
        key = (settings.seq_len, settings.batch, settings.gradient_checkpointing, settings.quant,
               settings.dtype, settings.recipe, settings.packed, depth)
        if key not in self.cache:
            self.cache[key] = simulate_step(self.config, self.lora_config, settings, depth=depth,
                                            build_model=self.build_model)
        return self.cache[key]

    # -------------------------------------------------------------- searches
    def largest(self, settings: MemorySettings, what: str, total: int) -> int | None:
        """The largest seq_len (on the ``SEQ_STEP`` grid) or batch whose plan is not ``does-not-fit``.

        Memory grows close to linearly in both, so secant steps land next to the answer in a few
        plans; a walk of single steps then makes it exact (the plan there fits, one step more does not).
        """
        step = SEQ_STEP if what == "seq_len" else 1
        limit = (1 << 24) // step
        seen: dict[int, int] = {}

        def over(n: int) -> int:  # bytes above the card (<= 0: it fits)
            if n not in seen:
                plan = self.plan(replace(settings, **{what: n * step}, gpu=None))
                seen[n] = plan.reserved + plan.context_bytes - total
            return seen[n]

        if over(1) > 0:
            return None
        a = max(1, getattr(settings, what) // step)
        b = a * 2 if a > 1 else 2
        fa, fb = over(a), over(b)
        for _ in range(8):
            if fb == fa:
                break
            c = int(b - fb * (b - a) / (fb - fa))
            c = max(1, min(c, limit))
            if c in (a, b):
                break
            a, fa, b, fb = b, fb, c, over(c)
        n = b
        while n > 1 and over(n) > 0:
            n -= 1
        while n < limit and over(n + 1) <= 0:
            n += 1
        return n * step


@dataclass
class _StepResult:
    allocated: int  # the caching allocator's allocated peak (block sizes)
    reserved: int
    tracked: int  # the tracker's peak: live storages, each rounded to 512 bytes
    breakdown: dict[str, int]
    phase: str
    phases: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    trainable: int = 0
    notes: list[str] = field(default_factory=list)


def _extrapolate(results: Sequence[_StepResult], depths: Sequence[int], total: int) -> _StepResult | None:
    """Linear extrapolation of per-phase peaks from equally spaced depths; ``None`` if they are not linear."""
    (r1, r2, r3), (d1, d2, d3) = results, depths
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
    # segments come and go in whole 2 MiB / 20 MiB units: extrapolate reserved from the two deepest runs
    reserved = max(allocated, r3.reserved + round((total - d3) / (d3 - d2) * (r3.reserved - r2.reserved)))
    return _StepResult(allocated, reserved, tracked, breakdown, phase, phases,
                       r1.trainable + round(steps * (r2.trainable - r1.trainable)), r1.notes)


def _depth_plan(config) -> tuple[int, tuple[int, ...], str]:
    """``(layers, depths to simulate, note)``: three equally spaced depths for a uniform or periodic stack."""
    text = _text_config(config)
    n = getattr(text, "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        return 0, (0,), "the model has no num_hidden_layers: simulated as built"
    period = 1
    types = getattr(text, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == n and len(set(map(str, types))) > 1:
        period = _period(list(map(str, types)))
        if period is None:
            return n, (n,), "the layer types follow no repeating pattern, so every layer was simulated"
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


def _text_config(config):
    getter = getattr(config, "get_text_config", None)
    if callable(getter):
        try:
            return getter(decoder=True)
        except TypeError:
            return getter()
    return config


def _assumptions(config, settings: MemorySettings, result: _StepResult, note: str) -> list[str]:
    s = settings
    out = [
        f"attention: {result.notes[0] if result.notes else 'as transformers runs it'}",
        ("packed rows, no padding" if s.packed else
         "padded batch: every row padded to seq_len; with more than one row a padding mask is passed"
         if s.batch > 1 else "one row, no padding"),
        {"peft": "recipe peft: get_peft_model on the model as loaded (adapter fp32 by PEFT's autocast_adapter_dtype), "
                 "torch.optim.AdamW (foreach), no autocast",
         "trl": "recipe trl: " + ("prepare_model_for_kbit_training (non-quantized weights upcast to fp32), "
                                  if s.quant != "none" else "") + f"{s.dtype} autocast around forward and loss, "
                "outputs converted to fp32 (accelerate), fused AdamW"}[s.recipe],
        f"base weights {s.dtype}" + {"none": "", "8bit": ", Linear layers LLM.int8 (bitsandbytes)",
                                     "4bit": ", Linear layers NF4 with double quantization (bitsandbytes), "
                                             f"compute {s.dtype}"}[s.quant],
        "gradient checkpointing: every layer, non-reentrant (transformers' default)" if s.gradient_checkpointing
        else "no gradient checkpointing",
        "steady state: the second of two steps, zero_grad(set_to_none=True); the loss is transformers' "
        "own (logits upcast to fp32)",
        "allocations rounded as the CUDA caching allocator rounds them (512 bytes; segments of 2 MiB, 20 MiB or "
        "2 MiB multiples); weights allocated one tensor at a time, no empty_cache",
        f"cuBLAS workspaces: {_CUBLAS_HANDLES} x {_CUBLAS_WORKSPACE // MIB} MiB (Hopper); "
        f"CUDA context allowance {CONTEXT_BYTES / GIB:.1f} GiB (outside max_memory_reserved)",
        note,
    ]
    limit = getattr(_text_config(config), "max_position_embeddings", None)
    if isinstance(limit, int) and s.seq_len > limit:
        out.append(f"seq_len {s.seq_len} is beyond the model's max_position_embeddings ({limit}): planned anyway")
    out.extend(result.notes[1:])
    return out


def _gib(n: int | float) -> str:
    return f"{n / GIB:.2f} GiB"


# ----------------------------------------------------------------------------- the simulation
def simulate_step(
    config: Any,
    lora_config: Any,
    settings: MemorySettings,
    *,
    depth: int | None = None,
    build_model: Callable[[Any], Any] | None = None,
    device: str = "meta",
    target: str = "cuda",
) -> _StepResult:
    """Run two training steps of the LoRA model and return the tracked peak (one depth, no extrapolation).

    ``device="cpu"`` runs the same code on real (random) tensors: the test suite checks that the
    tracker sees the same bytes there as on meta. ``target`` is the device whose kernels are
    imitated on meta (``"cuda"``: flash / memory-efficient attention and their workspaces; ``"cpu"``:
    what torch runs on CPU, for that check).
    """
    from .loading import quiet as _quiet

    _quiet_bitsandbytes()
    with _quiet():
        return _simulate_step(config, lora_config, settings, depth, build_model, device, target)


def _quiet_bitsandbytes() -> None:
    """bitsandbytes logs a warning about optional CPU kernels on import (peft imports it): not our user's concern."""
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    logging.getLogger("bitsandbytes.cextension").setLevel(logging.ERROR)


def _simulate_step(config, lora_config, settings, depth, build_model, device, target) -> _StepResult:
    import torch

    model = _build(config, settings, depth, build_model, device)
    kernels: dict[str, int] = {}
    route = target if device == "meta" else None
    autocast = getattr(torch, DTYPES[settings.dtype]) if settings.recipe == "trl" else None

    def recompute_context():
        # checkpointing recomputes a layer in backward, where the forward's function modes are gone: the
        # recomputation gets its own (as torch.utils.checkpoint restores autocast for its recomputation)
        import contextlib

        return contextlib.nullcontext(), _Modes(route, kernels, autocast)

    peft_model, optimizer, extra_notes = _prepare(model, lora_config, settings, device, recompute_context)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    tracker = _Tracker(cuda_workspaces=(target == "cuda" and device == "meta"))
    tracker.register_model(peft_model)
    inputs = _inputs(settings, device, _text_config(config))
    for tensor in inputs.values():
        if isinstance(tensor, torch.Tensor):
            tracker.register(tensor, "other")
    router = _AttentionRouter(route, kernels)
    try:
        with router, tracker:
            for step in range(2):
                tracker.start_step(step)
                _train_step(peft_model, optimizer, inputs, settings, tracker, route, kernels)
    except LoraRegistryError:
        raise
    except Exception as exc:
        import os

        if os.environ.get("LORA_REGISTRY_DEBUG"):
            raise
        op = getattr(tracker.op, "__name__", None) or str(tracker.op)
        raise ModelLoadError(f"{_label(config)}: the training step cannot run on {device} (at op {op}): "
                             f"{_op_of(exc)}") from None
    allocated, reserved = _replay(tracker.events)
    notes = [router.describe()] + extra_notes
    phase = max(tracker.phase_peaks, key=lambda p: tracker.phase_peaks[p][0])
    tracked, breakdown = tracker.phase_peaks[phase]
    return _StepResult(allocated, reserved, tracked, dict(breakdown), phase, dict(tracker.phase_peaks), trainable, notes)


def _label(config) -> str:
    return getattr(config, "model_type", None) or type(config).__name__


def _op_of(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _build(config, settings: MemorySettings, depth: int | None, build_model, device: str):
    import torch

    config = copy.deepcopy(config)
    text = _text_config(config)
    dtype = getattr(torch, DTYPES[settings.dtype])
    if depth is not None and depth > 0 and getattr(text, "num_hidden_layers", None) not in (None, depth):
        text.num_hidden_layers = depth
        types = getattr(text, "layer_types", None)
        if isinstance(types, (list, tuple)):
            text.layer_types = list(types)[:depth]
    for c in {id(config): config, id(text): text}.values():
        try:
            c.dtype = dtype
        except Exception:
            pass
        c.use_cache = False
        try:  # transformers' default where torch has SDPA; the router then picks the CUDA kernel
            c._attn_implementation = "sdpa"
        except Exception:
            pass
    if build_model is not None:
        with torch.device("meta"):
            model = build_model(config)
    else:
        from .loading import build_model as default_build

        try:
            model = default_build(config)
        except ModelLoadError as exc:
            if "attention implementation" not in str(exc):
                raise
            # a model without SDPA support (Gemma 2's softcapping): transformers runs eager attention there too
            for c in {id(config): config, id(text): text}.values():
                c._attn_implementation = "eager"
            model = default_build(config)
    model = model.to(dtype)
    if device != "meta":
        model = model.to_empty(device=device)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.02)
            _reinit_buffers(model)
    if settings.quant != "none":
        model = _quantize(model, settings, dtype, device)
    return model


def _reinit_buffers(model) -> None:
    # to_empty leaves buffers (rotary inv_freq) uninitialised: recompute what the modules compute at init
    import torch

    for module in model.modules():
        init = getattr(module, "rope_init_fn", None)
        if init is not None and hasattr(module, "inv_freq"):
            inv_freq, scaling = init(module.config, module.inv_freq.device)
            module.inv_freq.copy_(inv_freq)
            if hasattr(module, "original_inv_freq"):
                module.original_inv_freq = inv_freq
            module.attention_scaling = scaling
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point() and not torch.isfinite(buf).all():
                buf.zero_()


def _quantize(model, settings: MemorySettings, dtype, device: str):
    """Replace Linear layers with bitsandbytes ones, as ``from_pretrained(quantization_config=...)`` does."""
    import torch
    import bitsandbytes as bnb
    from transformers import BitsAndBytesConfig
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear
    from transformers.quantizers.base import get_keys_to_not_convert

    if settings.quant == "4bit":
        qconfig = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                     bnb_4bit_compute_dtype=dtype)
    else:
        qconfig = BitsAndBytesConfig(load_in_8bit=True)
    skip = set(get_keys_to_not_convert(model))
    skip.update(qconfig.llm_int8_skip_modules or [])
    skip.update(getattr(model, "_keep_in_fp32_modules", None) or [])
    originals = {name: module.weight for name, module in model.named_modules()
                 if type(module) is torch.nn.Linear or type(module).__name__ == "Conv1D"}
    replace_with_bnb_linear(model, modules_to_not_convert=sorted(skip), quantization_config=qconfig)
    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            source = originals[name]
            data = source.data if device != "meta" else torch.empty(source.shape, dtype=dtype, device="meta")
            if type(module).__name__ == "Linear4bit" and getattr(module, "source_cls", None).__name__ == "Conv1D":
                data = data.t().contiguous()
            param = bnb.nn.Params4bit(data.to(dtype), requires_grad=False, quant_type="nf4",
                                      compress_statistics=True, blocksize=64, module=module)
            module.weight = param._quantize(device)
        elif isinstance(module, bnb.nn.Linear8bitLt):
            source = originals[name]
            data = source.data if device != "meta" else torch.empty(source.shape, dtype=torch.float16, device="meta")
            param = bnb.nn.Int8Params(data.to(torch.float16), requires_grad=False, has_fp16_weights=False)
            module.weight = param._quantize(device)
        if getattr(module, "bias", None) is not None and isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            if module.bias.device.type != device:
                module.bias = torch.nn.Parameter(torch.zeros(module.bias.shape, dtype=dtype, device=device),
                                                 requires_grad=False)
            else:
                module.bias.data = module.bias.data.to(dtype)
    model.is_loaded_in_4bit = settings.quant == "4bit"
    model.is_loaded_in_8bit = settings.quant == "8bit"
    model.is_quantized = True
    model.quantization_method = "bitsandbytes"
    model.hf_quantizer = None
    return model


def _prepare(model, lora_config, settings: MemorySettings, device: str, recompute_context=None):
    """The recipe: checkpointing, k-bit preparation, ``get_peft_model``, the optimizer."""
    import torch
    from peft import get_peft_model

    notes: list[str] = []
    gc = settings.gradient_checkpointing
    kwargs: dict[str, Any] = {"use_reentrant": False}  # transformers 5's default
    if recompute_context is not None:
        kwargs["context_fn"] = recompute_context
    if settings.recipe == "trl" and settings.quant != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                gradient_checkpointing_kwargs=kwargs)
    elif gc:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if gc and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    model.train()
    lora_config = copy.deepcopy(lora_config)
    lora_config.lora_dropout = getattr(lora_config, "lora_dropout", 0.0)
    peft_model = get_peft_model(model, lora_config)
    if device != "meta":
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if p.requires_grad:
                    p.normal_(0, 0.02)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the LoRA config makes no parameter trainable: nothing to plan")
    if settings.recipe == "trl":
        optimizer = _FusedAdamW(params) if device == "meta" else torch.optim.AdamW(params, lr=1e-4, fused=True)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=True)
    return peft_model, optimizer, notes


class _FusedAdamW:
    """``torch.optim.AdamW(fused=True)`` for meta tensors (torch refuses fused on meta).

    The fused kernel allocates nothing besides the states: ``exp_avg``, ``exp_avg_sq`` and a
    device ``step`` scalar per parameter, created at the first step.
    """

    def __init__(self, params):
        self.params = list(params)
        self.state: dict[Any, dict[str, Any]] = {}

    def step(self):
        import torch

        for p in self.params:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": torch.zeros((), dtype=torch.float32, device=p.device),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            p.grad = None


def _inputs(settings: MemorySettings, device: str, text) -> dict[str, Any]:
    import torch

    b, n = settings.batch, settings.seq_len
    vocab = int(getattr(text, "vocab_size", 0) or 32000)
    if device == "meta":
        ids = torch.empty((b, n), dtype=torch.long, device="meta")
    else:
        ids = torch.randint(0, vocab, (b, n), device=device)
    inputs: dict[str, Any] = {"input_ids": ids, "labels": ids.clone()}
    if b > 1 and not settings.packed:
        # a padded batch: transformers turns the 2-D padding mask into this 4-D boolean one, so SDPA gets a mask
        mask = torch.ones((b, 1, n, n), dtype=torch.bool, device=device).tril_()
        inputs["attention_mask"] = mask
    return inputs


def _train_step(model, optimizer, inputs, settings: MemorySettings, tracker, route, kernels) -> None:
    import torch

    tracker.phase = "forward"
    if settings.recipe == "trl":
        with _Modes(None, kernels, getattr(torch, DTYPES[settings.dtype])):
            out = model(**inputs)
            loss = out.loss
        # accelerate's convert_outputs_to_fp32: the model's outputs come back in fp32
        # (alive until the trainer's compute_loss returns, before backward: a transient at the forward's end)
        if getattr(out, "logits", None) is not None:
            out.logits.float()
    else:
        out = model(**inputs)
        loss = out.loss
    del out
    tracker.phase = "backward"
    loss.backward()
    del loss
    tracker.phase = "optimizer"
    optimizer.step()
    tracker.mark_optimizer_states(optimizer)
    tracker._peak()  # a fused step allocates nothing once its states exist, but its phase has a peak
    optimizer.zero_grad(set_to_none=True)
    tracker.phase = "between"


# ---------------------------------------------------------------------------------- the tracker
def _round(nbytes: int) -> int:
    """What the CUDA caching allocator reserves for a request (``round_size``): multiples of 512, 0 stays 0."""
    if nbytes <= 0:
        return 0
    return ((nbytes + _MIN_BLOCK - 1) // _MIN_BLOCK) * _MIN_BLOCK


class _Tracker:
    """Adds up live storages op by op; snapshots the per-category totals at each phase's peak.

    Built lazily (see ``__new__``) so that this module imports without torch.
    """

    def __new__(cls, *args, **kwargs):
        impl = _tracker_class()
        return impl(*args, **kwargs)


_TRACKER_CLASS = None


def _tracker_class():
    global _TRACKER_CLASS
    if _TRACKER_CLASS is not None:
        return _TRACKER_CLASS
    import torch
    from torch.utils._pytree import tree_flatten

    from torch.utils._python_dispatch import TorchDispatchMode as base

    class Tracker(base):
        def __init__(self, cuda_workspaces: bool = False):
            super().__init__()
            self.live: dict[int, list] = {}  # storage key -> [bytes, category]
            self.refs: dict[int, Any] = {}
            self.totals = dict.fromkeys(CATEGORIES, 0)
            self.total = 0
            self.phase = "setup"
            self.step = 0
            self.phase_peaks: dict[str, tuple[int, dict[str, int]]] = {}
            self.events: list[tuple] = []
            self.cuda_workspaces = cuda_workspaces
            self.op = None
            self.data_checks = 0

        # ------------------------------------------------------------ bookkeeping
        def register(self, tensor, category: str, retag: bool = False) -> None:
            if tensor is None or not isinstance(tensor, torch.Tensor):
                return
            storage = tensor.untyped_storage()
            key = storage._cdata
            entry = self.live.get(key)
            if entry is not None:
                if retag and entry[1] != category:
                    self.totals[entry[1]] -= entry[0]
                    self.totals[category] += entry[0]
                    entry[1] = category
                return
            size = _round(storage.nbytes())
            self.live[key] = [size, category]
            self.totals[category] += size
            self.total += size
            self.events.append(("a", key, size))
            self.refs[key] = weakref.ref(storage, lambda _ref, key=key: self._free(key))

        def _free(self, key: int) -> None:
            entry = self.live.pop(key, None)
            self.refs.pop(key, None)
            if entry is None:
                return
            self.totals[entry[1]] -= entry[0]
            self.total -= entry[0]
            self.events.append(("f", key))

        def register_model(self, model) -> None:
            for _, p in model.named_parameters():
                self.register(p, "adapter_weights" if p.requires_grad else "base_weights")
                for t in _quant_tensors(p):
                    self.register(t, "base_weights")
                if p.requires_grad:
                    p.register_post_accumulate_grad_hook(lambda q: self.register(q.grad, "gradients", True))
            for _, b in model.named_buffers():
                self.register(b, "base_weights")
            if self.cuda_workspaces:
                self.events.append(("a", "cublas", _CUBLAS_WORKSPACE * _CUBLAS_HANDLES))
                self.totals["other"] += _CUBLAS_WORKSPACE * _CUBLAS_HANDLES
                self.total += _CUBLAS_WORKSPACE * _CUBLAS_HANDLES

        def mark_optimizer_states(self, optimizer) -> None:
            # only states already tracked: foreach AdamW keeps its step counts on the CPU, off the GPU's books
            for state in optimizer.state.values():
                for value in state.values():
                    if isinstance(value, torch.Tensor) and value.untyped_storage()._cdata in self.live:
                        self.register(value, "optimizer_states", True)

        def start_step(self, step: int) -> None:
            self.step = step

        def _peak(self, extra: int = 0) -> None:
            if self.step != 1 or self.phase not in ("forward", "backward", "optimizer"):
                return
            total = self.total + extra
            best = self.phase_peaks.get(self.phase)
            if best is None or total > best[0]:
                totals = dict(self.totals)
                totals["other"] += extra
                self.phase_peaks[self.phase] = (total, totals)

        # ------------------------------------------------------------ dispatch
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.op = func
            if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
                # a data-dependent check (transformers' "is the mask all ones?", "is this batch packed?"):
                # meta has no data; answer as for full, unpadded rows
                self.data_checks += 1
                return True if args[0].dtype == torch.bool else 0
            if getattr(func, "__name__", "").startswith("int8_vectorwise_quant") and args[0].device.type == "meta":
                # LLM.int8's outlier columns depend on the data: none on meta (a few fp16 columns on a GPU)
                args = (args[0], 0.0)
                kwargs = {}
            if getattr(func, "__name__", "").startswith("int8_mixed_scaled_mm") and args[0].device.type == "meta":
                a, ca, cb = args[0], args[1], args[2]
                out = (torch.empty((*ca.shape[:-1], cb.shape[0]), dtype=a.dtype, device="meta"),
                       torch.empty((0,), dtype=a.dtype, device="meta"))
            else:
                out = func(*args, **(kwargs or {}))
            category = "other" if self.phase == "optimizer" else "activations"
            flat, _ = tree_flatten(out)
            for t in flat:
                if isinstance(t, torch.Tensor) and t.device.type != "cpu" or (
                        isinstance(t, torch.Tensor) and t.device.type == "cpu" and not self.cuda_workspaces):
                    self.register(t, category)
            extra = _workspace(func, args, kwargs or {}) if self.cuda_workspaces else 0
            if extra:
                self.events.append(("t", extra))
            self._peak(extra)
            return out

    _TRACKER_CLASS = Tracker
    return Tracker


def _quant_tensors(p):
    """The tensors a bitsandbytes parameter carries besides its data (absmax, nested state, code, SCB)."""
    import torch

    state = getattr(p, "quant_state", None)
    found = []
    if state is not None:
        for name in ("absmax", "code", "offset"):
            found.append(getattr(state, name, None))
        nested = getattr(state, "state2", None)
        if nested is not None:
            found.extend([getattr(nested, "absmax", None), getattr(nested, "code", None)])
    scb = getattr(p, "SCB", None)
    if scb is not None:
        found.append(scb)
    return [t for t in found if isinstance(t, torch.Tensor)]


def _workspace(func, args, kwargs) -> int:
    """Bytes a CUDA kernel allocates inside the op and frees before it returns (meta kernels allocate none)."""
    name = getattr(func, "__name__", "")
    if name.startswith("_scaled_dot_product_flash_attention_backward"):
        # flash_api.cpp mha_bwd: softmax_d and the fp32 dq accumulator, on rounded sizes; dk/dv expanded for GQA
        q, k = args[1], args[2]
        b, h, lq, d = q.shape
        hk, lk = k.shape[1], k.shape[2]
        lq_r = -(-lq // 128) * 128
        d_r = -(-d // (32 if d <= 128 else 64)) * (32 if d <= 128 else 64)
        extra = _round(b * h * lq_r * 4) + _round(b * lq_r * h * d_r * 4)
        if hk != h:
            extra += 2 * _round(b * lk * h * d * q.element_size())
        return extra
    if name.startswith("_efficient_attention_backward") or name.startswith("_scaled_dot_product_efficient_attention_backward"):
        q = args[1]
        b, h, lq, d = q.shape
        return _round(b * h * lq * d * 4)  # the fp32 grad_q accumulator of the cutlass kernel
    if name.startswith("gemm_4bit"):
        a, shape = args[0], args[2]
        m = a.numel() // a.shape[-1]
        if m > 1536:  # bitsandbytes' CUDA gemm_4bit: dequantize then F.linear past M = 1536
            n_out, k_in = shape[0], shape[1]
            blocks = -(-n_out * k_in // args[4])
            extra = _round(n_out * k_in * a.element_size())
            if kwargs.get("absmax_8bit") is not None or (len(args) > 7 and args[7] is not None):
                extra += 2 * _round(blocks * 4)
            return extra
    return 0


# ---------------------------------------------------------------------------------- attention
class _AttentionRouter:
    """On meta, send ``F.scaled_dot_product_attention`` to the kernel the target device would run.

    On meta torch would run the math kernel (the full L x L scores). On CUDA, SDPA runs flash
    attention for fp16/bf16 without a mask (head_dim <= 256, GQA native), the memory-efficient
    kernel with a mask (transformers repeats the KV heads for it), else math.
    """

    def __init__(self, target: str | None, kernels: dict[str, int] | None = None):
        self.target = target
        self.kernels = kernels if kernels is not None else {}
        self.mode = None

    def __enter__(self):
        if self.target is None:
            return self
        from torch.overrides import TorchFunctionMode

        router = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if getattr(func, "__name__", "") == "scaled_dot_product_attention" and args and \
                        getattr(args[0], "device", None) is not None and args[0].device.type == "meta":
                    return router.sdpa(*args, **kwargs)  # a mode is off inside its own handler
                return func(*args, **kwargs)

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            self.mode.__exit__(*exc)
            self.mode = None
        return False

    def describe(self) -> str:
        if not self.kernels:
            return "as transformers runs it (no SDPA call seen)" if self.target else "as torch runs it on this device"
        names = {"flash": "flash attention (SDPA, is_causal, no L x L scores)",
                 "efficient": "memory-efficient SDPA with the padding mask",
                 "math": "the math SDPA kernel (full L x L scores)",
                 "cpu": "torch's CPU flash kernel"}
        return ", ".join(names[k] for k in self.kernels)

    def sdpa(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        import torch
        import torch.nn.functional as F

        ops = torch.ops.aten
        if self.target == "cpu":  # what SDPA runs on CPU, for the real-tensor check
            self.kernels["cpu"] = 1
            return ops._scaled_dot_product_flash_attention_for_cpu(  # GQA is native there
                q, k, v, dropout_p, is_causal, attn_mask=_float_mask(attn_mask, q.dtype), scale=scale)[0]
        low = q.dtype in (torch.float16, torch.bfloat16)
        d = q.shape[-1]
        same_heads = q.shape[-3] == k.shape[-3]
        if low and attn_mask is None and d <= 256 and k.shape[-1] == d == v.shape[-1]:
            self.kernels["flash"] = 1
            pad = (-d) % 8
            if pad:
                q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
            out = ops._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False,
                                                          scale=scale if scale is not None else d ** -0.5)[0]
            return out[..., :d] if pad else out
        if same_heads or not enable_gqa:
            self.kernels["efficient"] = 1
            bias = attn_mask
            bias = _float_mask(attn_mask, q.dtype)
            if bias is not None:
                last = bias.shape[-1]
                if last % 16:  # mem-efficient attention wants the bias' last dim aligned to 16
                    bias = F.pad(bias, (0, 16 - last % 16))[..., :last]
                bias = bias.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
            grad = q.requires_grad or k.requires_grad or v.requires_grad
            return ops._scaled_dot_product_efficient_attention(q, k, v, bias, grad, dropout_p, is_causal,
                                                               scale=scale)[0]
        self.kernels["math"] = 1
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)


def _float_mask(mask, dtype):
    """SDPA's ``convert_boolean_attn_mask``: a boolean mask becomes a new additive mask in ``dtype``, per call."""
    import torch

    if mask is None or mask.dtype != torch.bool:
        return mask
    zero = torch.scalar_tensor(0.0, dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.scalar_tensor(float("-inf"), dtype=dtype, device=mask.device))


class _Modes:
    """The function modes of a forward: attention routing (on meta) and emulated autocast (recipe trl)."""

    def __init__(self, route: str | None, kernels: dict[str, int], autocast_dtype=None):
        self.router = _AttentionRouter(route, kernels)
        self.autocast = _Autocast(autocast_dtype) if autocast_dtype is not None else None

    def __enter__(self):
        self.router.__enter__()
        if self.autocast is not None:
            self.autocast.__enter__()
        return self

    def __exit__(self, *exc):
        if self.autocast is not None:
            self.autocast.__exit__(*exc)
        self.router.__exit__(*exc)
        return False


class _Autocast:
    """``torch.autocast`` as CUDA applies it, for meta tensors (autocast is keyed by device, and meta has none).

    Matmul-like functions run in ``dtype`` (their floating inputs cast, casts of leaf parameters
    cached for the region, as autocast caches them); the fp32 list runs in fp32.
    """

    LOWER = frozenset({"linear", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "baddbmm", "addmm", "addbmm",
                       "addmv", "mv", "einsum", "conv1d", "conv2d", "conv3d", "scaled_dot_product_attention", "prelu",
                       "chain_matmul", "addr", "conv_transpose1d", "conv_transpose2d"})
    FP32 = frozenset({"acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p",
                      "reciprocal", "rsqrt", "sinh", "tan", "pow", "__pow__", "softplus", "layer_norm", "group_norm",
                      "norm", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "kl_div",
                      "binary_cross_entropy_with_logits", "cdist", "logsumexp", "softmax", "log_softmax",
                      "cumsum", "cumprod", "prod", "sum", "cross_entropy"})

    def __init__(self, dtype):
        self.dtype = dtype
        self.mode = None
        self.cache: dict[int, Any] = {}

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        autocast = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                name = getattr(func, "__name__", "")
                if name in autocast.LOWER:
                    args, kwargs = autocast.cast(args, kwargs, autocast.dtype, True)
                elif name in autocast.FP32:
                    import torch

                    args, kwargs = autocast.cast(args, kwargs, torch.float32, False)
                return func(*args, **kwargs)

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        self.cache.clear()
        return False

    def cast(self, args, kwargs, dtype, lower: bool):
        import torch

        def one(t):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dtype == dtype:
                return t
            if t.dtype == torch.float64:  # autocast leaves double alone
                return t
            leaf = t.is_leaf and t.requires_grad
            if leaf and id(t) in self.cache:
                return self.cache[id(t)]
            out = t.to(dtype)
            if leaf:
                self.cache[id(t)] = out
            return out

        return tuple(one(a) if not isinstance(a, (list, tuple)) else type(a)(one(x) for x in a) for a in args), \
            {k: one(v) for k, v in kwargs.items()}


# ------------------------------------------------------------------------ the caching allocator
def _replay(events: Sequence[tuple]) -> tuple[int, int]:
    """Replay an allocation trace through a model of the CUDA caching allocator: (allocated peak, reserved peak).

    Best fit among cached free blocks of the pool (small: requests up to 1 MiB), new segments of
    2 MiB (small), 20 MiB (requests under 10 MiB) or the request rounded up to 2 MiB; a block is
    split when the rest is at least 512 bytes (small) or more than 1 MiB (large), and freed blocks
    merge with free neighbours. The allocated statistic counts whole blocks, as the allocator does.
    Segments are never released (no ``empty_cache``, no out-of-memory retry).
    """
    import bisect

    free: dict[bool, list[tuple[int, int, int]]] = {True: [], False: []}  # (size, segment, offset), sorted
    offsets: list[list[int]] = []  # per segment: sorted block offsets
    blocks: list[dict[int, list]] = []  # per segment: offset -> [size, allocated]
    where: dict[Any, tuple[bool, int, int]] = {}
    allocated = reserved = peak_alloc = peak_reserved = 0

    for event in events:
        kind = event[0]
        if kind == "t":  # a workspace inside one op: counts towards the allocated peak only
            peak_alloc = max(peak_alloc, allocated + event[1])
            continue
        if kind == "f":
            loc = where.pop(event[1], None)
            if loc is None:
                continue
            small, seg, off = loc
            table, order = blocks[seg], offsets[seg]
            size = table[off][0]
            allocated -= size
            table[off][1] = False
            i = bisect.bisect_left(order, off)
            if i + 1 < len(order):  # merge the next block
                nxt = order[i + 1]
                if not table[nxt][1]:
                    free[small].remove((table[nxt][0], seg, nxt))
                    size += table.pop(nxt)[0]
                    order.pop(i + 1)
            if i > 0:  # merge into the previous block
                prv = order[i - 1]
                if not table[prv][1]:
                    free[small].remove((table[prv][0], seg, prv))
                    del table[off]
                    order.pop(i)
                    off, size = prv, table[prv][0] + size
            table[off] = [size, False]
            bisect.insort(free[small], (size, seg, off))
            continue
        _, key, size = event
        if size == 0:
            continue
        small = size <= _SMALL_SIZE
        pool = free[small]
        i = bisect.bisect_left(pool, (size, -1, -1))
        if i < len(pool):
            bsize, seg, off = pool.pop(i)
        else:
            if small:
                segment = _SMALL_BUFFER
            elif size < _MIN_LARGE_ALLOC:
                segment = _LARGE_BUFFER
            else:
                segment = -(-size // _ROUND_LARGE) * _ROUND_LARGE
            seg, off, bsize = len(blocks), 0, segment
            blocks.append({0: [segment, False]})
            offsets.append([0])
            reserved += segment
            peak_reserved = max(peak_reserved, reserved)
        table, order = blocks[seg], offsets[seg]
        rest = bsize - size
        if (small and rest >= _MIN_BLOCK) or (not small and rest > _SMALL_SIZE):
            table[off] = [size, True]
            table[off + size] = [rest, False]
            bisect.insort(order, off + size)
            bisect.insort(pool, (rest, seg, off + size))
            used = size
        else:
            table[off] = [bsize, True]
            used = bsize
        where[key] = (small, seg, off)
        allocated += used
        peak_alloc = max(peak_alloc, allocated)
    return peak_alloc, max(peak_reserved, peak_alloc)
