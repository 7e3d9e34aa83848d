"""The simulation behind ``plan``: one LoRA/QLoRA training step run on the ``meta`` device, its memory counted.

transformers builds the model (bitsandbytes layers replace its Linear layers for QLoRA), PEFT
applies the LoRA config, and two training steps (forward, loss, backward, AdamW step) run under a
``TorchDispatchMode`` that adds up every live storage as the CUDA caching allocator rounds it. On
meta, what a GPU would do differently is imitated: ``F.scaled_dot_product_attention`` goes to the
kernel CUDA runs (flash or memory-efficient, with their workspaces), autocast is emulated (it is
keyed by device, and meta has none), data-dependent checks are answered as for full rows. The
allocation trace is replayed through a model of the caching allocator for the reserved estimate.

``simulate_step(..., device="cpu", target="cpu")`` runs the same code on real (random) tensors:
the test suite checks that the tracker sees the same bytes there as on meta.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import ConfigError, LoraRegistryError, ModelLoadError
from .memory import CATEGORIES, DTYPES, MIB, MemorySettings, text_config

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
CUBLAS_WORKSPACE = 32 * MIB
CUBLAS_HANDLES = 2


@dataclass
class StepResult:
    """What one simulated training step used: the allocator's peaks, the tracker's per-phase peaks and breakdowns."""

    allocated: int  # the caching allocator's allocated peak (whole blocks)
    reserved: int
    tracked: int  # the tracker's peak: live storages, each rounded to 512 bytes
    breakdown: dict[str, int]
    phase: str
    phases: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    trainable: int = 0
    notes: list[str] = field(default_factory=list)


def simulate_step(
    config: Any,
    lora_config: Any,
    settings: MemorySettings,
    *,
    depth: int | None = None,
    build_model: Callable[[Any], Any] | None = None,
    device: str = "meta",
    target: str = "cuda",
    models: dict[tuple, Any] | None = None,
) -> StepResult:
    """Run two training steps of the LoRA model and return the tracked peak (one depth, no extrapolation).

    ``device="cpu"`` runs the same code on real (random) tensors: the test suite checks that the
    tracker sees the same bytes there as on meta. ``target`` is the device whose kernels are
    imitated on meta (``"cuda"``: flash / memory-efficient attention and their workspaces; ``"cpu"``:
    what torch runs on CPU, for that check). ``models`` caches the built, quantized, PEFT-wrapped
    model between calls for the same ``config`` and ``lora_config`` (a plan's searches change only
    the length and batch, which the model does not depend on); each step still gets a new optimizer.
    """
    from .loading import quiet

    with quiet():
        return _simulate_step(config, lora_config, settings, depth, build_model, device, target, models)


class _Prepared:
    """A model ready to train (built, quantized, wrapped by PEFT) and what its checkpointed recomputation needs."""

    def __init__(self, route: str | None, autocast: Any) -> None:
        self.route = route
        self.autocast = autocast
        self.kernels: dict[str, int] = {}  # the attention kernels the current run saw
        self.peft_model: Any = None
        self.params: list[Any] = []
        self.notes: list[str] = []

    def recompute_context(self) -> tuple[Any, Any]:
        # checkpointing recomputes a layer in backward, where the forward's function modes are gone: the
        # recomputation gets its own (as torch.utils.checkpoint restores autocast for its recomputation)
        return contextlib.nullcontext(), _Modes(self.route, self.kernels, self.autocast)


def _simulate_step(config, lora_config, settings, depth, build_model, device, target, models) -> StepResult:
    route = target if device == "meta" else None
    autocast = getattr(torch, DTYPES[settings.dtype]) if settings.recipe == "trl" else None
    key = (depth, settings.dtype, settings.quant, settings.recipe, settings.gradient_checkpointing, device, target)
    tracker = _Tracker(cuda_workspaces=(target == "cuda" and device == "meta"))
    prepared = models.get(key) if models is not None else None
    stage = "build the model"
    try:
        if prepared is None:
            prepared = _Prepared(route, autocast)
            model = _build(config, settings, depth, build_model, device)
            stage = "apply the LoRA config"
            prepared.peft_model, prepared.params, prepared.notes = _prepare(
                model, lora_config, settings, device, prepared.recompute_context
            )
            if models is not None:
                models[key] = prepared
        prepared.kernels.clear()
        router = _AttentionRouter(route, prepared.kernels)
        optimizer = _optimizer(prepared.params, settings, device)
        trainable = sum(p.numel() for p in prepared.params)
        tracker.register_model(prepared.peft_model)
        inputs = _inputs(settings, device, text_config(config))
        for tensor in inputs.values():
            if isinstance(tensor, torch.Tensor):
                tracker.register(tensor, "other")
        stage = "run the training step"
        with _autocast_accepts_meta(device == "meta"), router, tracker:
            for step in range(2):
                tracker.start_step(step)
                _train_step(prepared.peft_model, optimizer, inputs, settings, tracker, route, prepared.kernels)
    except LoraRegistryError:
        raise
    except Exception as exc:
        import os

        if os.environ.get("LORA_REGISTRY_DEBUG"):
            raise
        where = f" (at op {getattr(tracker.op, '__name__', None) or tracker.op})" if tracker.op is not None else ""
        raise ModelLoadError(f"{_label(config)}: cannot {stage} on {device}{where}: {_op_of(exc)}") from None
    finally:
        tracker.detach()
    allocated, reserved = _replay(tracker.events)
    notes = [router.describe()] + prepared.notes
    phase = max(tracker.phase_peaks, key=lambda p: tracker.phase_peaks[p][0])
    tracked, breakdown = tracker.phase_peaks[phase]
    return StepResult(allocated, reserved, tracked, dict(breakdown), phase, dict(tracker.phase_peaks), trainable, notes)


@contextlib.contextmanager
def _autocast_accepts_meta(active: bool) -> Iterator[None]:
    """``torch.autocast(device_type="meta", ...)`` as a no-op while the simulation runs.

    PEFT's ``ParamWrapper`` (LoRA on 3-D expert tensors) folds its delta inside
    ``torch.autocast(device_type=W.device.type, enabled=False)``; torch has no autocast for meta
    and refuses the device type, though turning autocast *off* changes nothing there.
    """
    if not active:
        yield
        return
    original = torch.autocast

    class MetaAutocast(original):  # type: ignore[valid-type,misc]
        def __init__(self, device_type: str, *args: Any, **kwargs: Any) -> None:
            self.on_meta = device_type == "meta"
            if not self.on_meta:
                super().__init__(device_type, *args, **kwargs)

        def __enter__(self) -> Any:
            return None if self.on_meta else super().__enter__()

        def __exit__(self, *exc: Any) -> Any:
            return False if self.on_meta else super().__exit__(*exc)

    torch.autocast = MetaAutocast  # type: ignore[misc]
    try:
        yield
    finally:
        torch.autocast = original  # type: ignore[misc]


def _label(config: Any) -> str:
    if isinstance(config, Mapping):
        return str(config.get("model_type") or "model")
    return getattr(config, "model_type", None) or type(config).__name__


def _op_of(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _build(
    config: Any, settings: MemorySettings, depth: int | None, build_model: Callable[[Any], Any] | None, device: str
) -> Any:
    """A fresh model of ``depth`` layers on meta (then ``device``), in the run's dtype, quantized as asked."""

    from .loading import build_model as default_build

    build = build_model or default_build
    dtype = getattr(torch, DTYPES[settings.dtype])
    config = copy.deepcopy(config)
    if isinstance(config, Mapping):  # a plugin's config.json: only the layer count is ours to change
        if depth and isinstance(config.get("num_hidden_layers"), int):
            config = {**config, "num_hidden_layers": depth}
        with torch.device("meta"):
            model = build(config)
    else:
        text = text_config(config)
        if depth and getattr(text, "num_hidden_layers", None) not in (None, depth):
            text.num_hidden_layers = depth
            types = getattr(text, "layer_types", None)
            if isinstance(types, (list, tuple)):
                text.layer_types = list(types)[:depth]
        configs = list({id(config): config, id(text): text}.values())
        for c in configs:
            c.dtype = dtype
            c.use_cache = False
            c._attn_implementation = "sdpa"  # transformers' default where torch has SDPA; the router picks the kernel
        try:
            with torch.device("meta"):
                model = build(config)
        except Exception as exc:
            if "attention implementation" not in str(exc):
                raise
            # a model without SDPA support (Gemma 2's softcapping): transformers runs eager attention there too
            for c in configs:
                c._attn_implementation = "eager"
            with torch.device("meta"):
                model = build(config)
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

    for module in model.modules():
        init = getattr(module, "rope_init_fn", None)
        if init is not None and hasattr(module, "inv_freq"):
            inv_freq, scaling = init(module.config, module.inv_freq.device)
            module.inv_freq.copy_(inv_freq)
            if hasattr(module, "original_inv_freq"):
                module.original_inv_freq = inv_freq
            module.attention_scaling = scaling
        for buf in module.buffers(recurse=False):
            if buf is not None and buf.is_floating_point() and not torch.isfinite(buf).all():
                buf.zero_()


def _quantize(model: Any, settings: MemorySettings, dtype: Any, device: str) -> Any:
    """Replace Linear layers with bitsandbytes ones, as ``from_pretrained(quantization_config=...)`` does.

    The modules kept are the quantizer's own choice (``HfQuantizer.get_modules_to_not_convert``:
    ``get_keys_to_not_convert``, ``llm_int8_skip_modules``, ``_keep_in_fp32_modules``); the layers are
    transformers' ``replace_with_bnb_linear``; the weights are quantized by bitsandbytes itself
    (on meta through its fake kernels).
    """
    import bitsandbytes as bnb
    from transformers import BitsAndBytesConfig
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear
    from transformers.quantizers.base import get_keys_to_not_convert

    if settings.quant == "4bit":
        qconfig = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    else:
        qconfig = BitsAndBytesConfig(load_in_8bit=True)
    skip = set(get_keys_to_not_convert(model))
    skip.update(qconfig.llm_int8_skip_modules or [])
    skip.update(getattr(model, "_keep_in_fp32_modules", None) or [])
    originals = {
        name: (module.weight, type(module).__name__ == "Conv1D")
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear or type(module).__name__ == "Conv1D"
    }
    replace_with_bnb_linear(model, modules_to_not_convert=sorted(skip), quantization_config=qconfig)
    for name, module in model.named_modules():
        if not isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            continue
        source, conv1d = originals[name]
        data = source.data if device != "meta" else torch.empty(source.shape, dtype=dtype, device="meta")
        if conv1d:  # GPT-2's Conv1D stores [in, out]; the Linear that replaces it [out, in]
            data = data.t().contiguous()
        if isinstance(module, bnb.nn.Linear4bit):
            nf4 = bnb.nn.Params4bit(
                data.to(dtype),
                requires_grad=False,
                quant_type="nf4",
                compress_statistics=True,
                blocksize=64,
                module=module,
            )
            module.weight = nf4._quantize(device)
        else:
            int8 = bnb.nn.Int8Params(data.to(torch.float16), requires_grad=False, has_fp16_weights=False)
            module.weight = int8._quantize(device)
        if module.bias is not None:
            if module.bias.device.type != device:  # built on meta by replace_with_bnb_linear
                module.bias = torch.nn.Parameter(
                    torch.zeros(module.bias.shape, dtype=dtype, device=device), requires_grad=False
                )
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
    from peft import get_peft_model

    notes: list[str] = []
    gc = settings.gradient_checkpointing
    kwargs: dict[str, Any] = {"use_reentrant": False}  # transformers 5's default
    if recompute_context is not None:
        kwargs["context_fn"] = recompute_context
    if settings.recipe == "trl" and settings.quant != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gc, gradient_checkpointing_kwargs=kwargs
        )
    elif gc:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if gc and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    model.train()
    peft_model = get_peft_model(model, copy.deepcopy(lora_config))  # PEFT fills in the config it is given
    if device != "meta":
        with torch.no_grad():
            for p in peft_model.parameters():
                if p.requires_grad:
                    p.normal_(0, 0.02)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the LoRA config makes no parameter trainable: nothing to plan")
    return peft_model, params, notes


def _optimizer(params: list[Any], settings: MemorySettings, device: str) -> Any:
    """The recipe's AdamW: torch's foreach one (recipe peft), the HF Trainer's fused default (recipe trl)."""
    if settings.recipe == "trl":
        return _FusedAdamW(params) if device == "meta" else torch.optim.AdamW(params, lr=1e-4, fused=True)
    return torch.optim.AdamW(params, lr=1e-4, foreach=True)


class _FusedAdamW:
    """``torch.optim.AdamW(fused=True)`` for meta tensors (torch refuses fused on meta).

    The fused kernel allocates nothing besides the states: ``exp_avg``, ``exp_avg_sq`` and a
    device ``step`` scalar per parameter, created at the first step.
    """

    def __init__(self, params):
        self.params = list(params)
        self.state: dict[Any, dict[str, Any]] = {}

    def step(self):

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


class _Tracker(TorchDispatchMode):
    """Adds up live storages op by op; snapshots the per-category totals at each phase's peak (of the second step)."""

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
        self.hooks: list[Any] = []

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
        self.refs[key] = weakref.ref(storage, functools.partial(self._on_collected, key))

    def _on_collected(self, key: int, _ref: Any) -> None:
        self._free(key)

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
                self.hooks.append(p.register_post_accumulate_grad_hook(self._on_grad))
        for _, b in model.named_buffers():
            self.register(b, "base_weights")
        if self.cuda_workspaces:
            self.events.append(("a", "cublas", CUBLAS_WORKSPACE * CUBLAS_HANDLES))
            self.totals["other"] += CUBLAS_WORKSPACE * CUBLAS_HANDLES
            self.total += CUBLAS_WORKSPACE * CUBLAS_HANDLES

    def _on_grad(self, p) -> None:
        self.register(p.grad, "gradients", True)

    def detach(self) -> None:
        """Remove the gradient hooks from the parameters (a prepared model outlives this tracker)."""
        for handle in self.hooks:
            handle.remove()
        self.hooks.clear()

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
            out = (
                torch.empty((*ca.shape[:-1], cb.shape[0]), dtype=a.dtype, device="meta"),
                torch.empty((0,), dtype=a.dtype, device="meta"),
            )
        else:
            out = func(*args, **(kwargs or {}))
        category = "other" if self.phase == "optimizer" else "activations"
        flat, _ = tree_flatten(out)
        for t in flat:
            if (
                isinstance(t, torch.Tensor)
                and t.device.type != "cpu"
                or (isinstance(t, torch.Tensor) and t.device.type == "cpu" and not self.cuda_workspaces)
            ):
                self.register(t, category)
        extra = _workspace(func, args, kwargs or {}) if self.cuda_workspaces else 0
        if extra:
            self.events.append(("t", extra))
        self._peak(extra)
        return out


def _quant_tensors(p):
    """The tensors a bitsandbytes parameter carries besides its data (absmax, nested state, code, SCB)."""

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
    if name.startswith("_efficient_attention_backward") or name.startswith(
        "_scaled_dot_product_efficient_attention_backward"
    ):
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
        self.mode: _RouteMode | None = None

    def __enter__(self):
        if self.target is None:
            return self
        self.mode = _RouteMode(self)
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
        names = {
            "flash": "flash attention (SDPA, is_causal, no L x L scores)",
            "efficient": "memory-efficient SDPA with the padding mask",
            "math": "the math SDPA kernel (full L x L scores)",
            "cpu": "torch's CPU flash kernel",
        }
        return ", ".join(names[k] for k in self.kernels)

    def sdpa(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        import torch.nn.functional as F

        ops = torch.ops.aten
        if self.target == "cpu":  # what SDPA runs on CPU, for the real-tensor check
            self.kernels["cpu"] = 1
            return ops._scaled_dot_product_flash_attention_for_cpu(  # GQA is native there
                q, k, v, dropout_p, is_causal, attn_mask=_float_mask(attn_mask, q.dtype), scale=scale
            )[0]
        low = q.dtype in (torch.float16, torch.bfloat16)
        d = q.shape[-1]
        same_heads = q.shape[-3] == k.shape[-3]
        if low and attn_mask is None and d <= 256 and k.shape[-1] == d == v.shape[-1]:
            self.kernels["flash"] = 1
            pad = (-d) % 8
            if pad:
                q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
            out = ops._scaled_dot_product_flash_attention(
                q, k, v, dropout_p, is_causal, False, scale=scale if scale is not None else d**-0.5
            )[0]
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
            return ops._scaled_dot_product_efficient_attention(q, k, v, bias, grad, dropout_p, is_causal, scale=scale)[
                0
            ]
        self.kernels["math"] = 1
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, enable_gqa=enable_gqa
        )


class _RouteMode(TorchFunctionMode):
    """Sends meta ``scaled_dot_product_attention`` calls to ``_AttentionRouter.sdpa``."""

    def __init__(self, router: _AttentionRouter) -> None:
        super().__init__()
        self.router = router

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (
            getattr(func, "__name__", "") == "scaled_dot_product_attention"
            and args
            and getattr(args[0], "device", None) is not None
            and args[0].device.type == "meta"
        ):
            return self.router.sdpa(*args, **kwargs)  # a mode is off inside its own handler
        return func(*args, **kwargs)


class _AutocastMode(TorchFunctionMode):
    """Casts the inputs of autocast's lower-precision and fp32 op lists (``_Autocast``)."""

    def __init__(self, autocast: _Autocast) -> None:
        super().__init__()
        self.autocast = autocast

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        autocast = self.autocast
        if name in autocast.LOWER:
            args, kwargs = autocast.cast(args, kwargs, autocast.dtype, True)
        elif name in autocast.FP32:
            args, kwargs = autocast.cast(args, kwargs, torch.float32, False)
        return func(*args, **kwargs)


def _float_mask(mask, dtype):
    """SDPA's ``convert_boolean_attn_mask``: a boolean mask becomes a new additive mask in ``dtype``, per call."""

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

    LOWER = frozenset(
        {
            "linear",
            "matmul",
            "__matmul__",
            "__rmatmul__",
            "mm",
            "bmm",
            "baddbmm",
            "addmm",
            "addbmm",
            "addmv",
            "mv",
            "einsum",
            "conv1d",
            "conv2d",
            "conv3d",
            "scaled_dot_product_attention",
            "prelu",
            "chain_matmul",
            "addr",
            "conv_transpose1d",
            "conv_transpose2d",
        }
    )
    FP32 = frozenset(
        {
            "acos",
            "asin",
            "cosh",
            "erfinv",
            "exp",
            "expm1",
            "log",
            "log10",
            "log2",
            "log1p",
            "reciprocal",
            "rsqrt",
            "sinh",
            "tan",
            "pow",
            "__pow__",
            "softplus",
            "layer_norm",
            "group_norm",
            "norm",
            "nll_loss",
            "mse_loss",
            "l1_loss",
            "smooth_l1_loss",
            "kl_div",
            "binary_cross_entropy_with_logits",
            "cdist",
            "logsumexp",
            "softmax",
            "log_softmax",
            "cumsum",
            "cumprod",
            "prod",
            "sum",
            "cross_entropy",
        }
    )

    def __init__(self, dtype):
        self.dtype = dtype
        self.mode: _AutocastMode | None = None
        self.cache: dict[int, Any] = {}

    def __enter__(self):
        self.mode = _AutocastMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            self.mode.__exit__(*exc)
            self.mode = None
        self.cache.clear()
        return False

    def cast(self, args, kwargs, dtype, lower: bool):

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

        return tuple(one(a) if not isinstance(a, (list, tuple)) else type(a)(one(x) for x in a) for a in args), {
            k: one(v) for k, v in kwargs.items()
        }


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
