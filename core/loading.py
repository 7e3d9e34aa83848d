"""Turn whatever the user passed as MODEL into a module built on the meta device."""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, RemoteCodeError, one_line, short_repr

# Size fields checked before transformers sees them: a negative layer count would build an empty model.
_SIZE_FIELDS = (
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "head_dim",
    "num_local_experts",
    "n_routed_experts",
    "num_experts",
    "moe_intermediate_size",
)
# Counts that set how many modules get built: every layer (and per-expert module) is instantiated on
# the meta device, so an absurd count would run for hours instead of failing. Far above any real model.
# The other spellings (GPT-2's n_layer, T5's num_layers, BART's encoder_layers) get only the upper bound.
_COUNT_FIELDS = (
    "num_hidden_layers",
    "num_local_experts",
    "n_routed_experts",
    "num_experts",
    "n_layer",
    "n_layers",
    "num_layers",
    "num_decoder_layers",
    "encoder_layers",
    "decoder_layers",
)
_COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to inspect: the module, its config (if any), its model_type and a display label."""

    model: Any
    config: Any
    model_type: str
    label: str
    #: what loading assumed or noticed (one line each), carried into the map's warnings
    warnings: tuple[str, ...] = ()
    #: ``{adapter: target_parameters}`` of the adapters a given PEFT model already has (a further adapter must agree)
    peft_target_parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the module as given, wrappers included: the tree is read through them (FSDP keeps full shapes in its wrapper)
    held: Any = None


@dataclass(frozen=True)
class ConfigSource:
    """MODEL as text, read without torch or transformers: its label, its ``config.json`` data, and what keys a cache entry.

    ``data`` is the parsed ``config.json`` (``None`` for a bare model_type, whose defaults only
    transformers knows); ``key`` identifies the config's content for the cache.
    """

    label: str
    data: Mapping[str, Any] | None
    key: Mapping[str, Any] = field(default_factory=dict)


def load_model(
    source: Any, *, trust_remote_code: bool = False, plugin_manager: Any = None, revision: str | None = None
) -> LoadedModel:
    """Build (or unwrap) MODEL on the meta device.

    ``source`` may be an ``nn.Module`` (as a training stack holds it: compiled, DDP/FSDP-wrapped,
    activation-checkpointed, PEFT-wrapped; the bare model inside is used), a ``PretrainedConfig``,
    a path to a directory holding ``config.json`` or to a ``config.json``, a hub id
    (``owner/name[@revision]``, read from the local HF cache, else downloaded), or a model_type
    transformers knows. ``revision`` (a branch, tag or commit) applies to a hub id. No weights are ever
    loaded. A model_type transformers does not know is built by the plugin that answers
    ``lora_registry_build_model`` in ``plugin_manager``. A config with ``quantization_config`` is built
    unquantized, and the ``LoadedModel`` warns what that assumes.
    """
    if revision is not None:
        from .hub import with_revision

        source = with_revision(source, revision)
    if isinstance(source, str) and "/" in source and not _looks_like_path(source) and not local_config_file(source):
        from .hub import config_file

        config_file(source)  # a hub id's config (cache, else download) before torch is imported: failing costs less
    import torch

    if isinstance(source, torch.nn.Module):
        from .peft_compat import adapter_target_parameters
        from .tree import wrapper_chain

        chain = wrapper_chain(source)
        model = chain[-1]  # DDP, FSDP and PeftModel hide the model's .config
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", "") or ""
        adapters = adapter_target_parameters(chain)
        return LoadedModel(
            model, config, model_type, type(model).__name__, peft_target_parameters=adapters, held=source
        )
    from transformers import PretrainedConfig

    if isinstance(source, PretrainedConfig):
        noted = tuple(filter(None, [quantization_note(source.model_type, source)]))
        return LoadedModel(build_model(source, trust_remote_code), source, source.model_type, source.model_type, noted)
    source = _source_text(source)
    config = load_config(source, trust_remote_code=trust_remote_code, plugin_manager=plugin_manager)
    if isinstance(config, PluginModel):
        return LoadedModel(config.model, getattr(config.model, "config", None), config.model_type, source)
    notes: list[str | None] = []
    if isinstance(config, NativeConfig):
        notes.append(f"{source}: {config.note}")
        config = config.config
    notes.append(quantization_note(source, config))
    model = build_model(config, trust_remote_code)
    return LoadedModel(model, config, config.model_type, source, tuple(n for n in notes if n))


def _source_text(source: Any) -> str:
    """MODEL given as a path or text, as text; anything else (or blank) is the one-line error."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source.strip():
        raise ModelLoadError(f"MODEL must be a path, hub id, model_type, config or module, not {source!r}")
    return source


@dataclass(frozen=True)
class PluginModel:
    """A model a plugin built for a model_type transformers does not know."""

    model: Any
    model_type: str
    plugin: str


@dataclass(frozen=True)
class NativeConfig:
    """A config for a class transformers ships, standing in for a checkpoint's own code (``note`` says so, unlabelled)."""

    config: Any
    note: str


#: quant_method values whose quantized Linear layers PEFT's LoRA dispatchers adapt (``peft_compat.LORA_DISPATCHERS``)
_PEFT_ADAPTS = frozenset({"bitsandbytes", "gptq", "awq", "hqq", "torchao", "aqlm", "eetq"})


def quantization_note(label: str, config: Any) -> str | None:
    """One warning saying what resolving a quantized checkpoint's config assumes, or ``None`` when it is not quantized.

    The model is built from the config alone, unquantized: names, shapes and counts are those of
    the dequantized weights. PEFT adapts bitsandbytes, GPTQ, AWQ, HQQ and torchao layers under the
    same names at those shapes; fp8, MXFP4 and compressed-tensors checkpoints are assumed loaded
    dequantized (gpt-oss loaded natively keeps its MXFP4 experts packed at half width).
    """
    quant = getattr(config, "quantization_config", None)
    if quant is None:
        return None
    if not isinstance(quant, Mapping):
        to_dict = getattr(quant, "to_dict", None)
        quant = to_dict() if callable(to_dict) else {}
    method = str(quant.get("quant_method") or "unknown")
    note = (
        f"{label}: its quantization_config ({method}) was not applied: the model was built unquantized, so names, "
        "shapes and parameter counts are those of the dequantized weights"
    )
    if method == "mxfp4":
        note += (
            "; loaded natively, gpt-oss keeps its MXFP4 experts packed at half width, which PEFT cannot adapt, "
            "so the emitted target_parameters and counts assume loading with Mxfp4Config(dequantize=True)"
        )
    elif method == "fp8":
        note += "; they assume the checkpoint is loaded dequantized (FineGrainedFP8Config(dequantize=True))"
    elif method == "compressed-tensors":
        note += "; they assume the checkpoint is loaded decompressed (CompressedTensorsConfig(run_compressed=False))"
    elif method in _PEFT_ADAPTS:
        note += f"; PEFT adapts {method}-quantized Linear layers under these names, at these logical shapes"
    else:
        note += f"; they assume the checkpoint is loaded dequantized (PEFT has no LoRA layer for {method} layers)"
    kept = quant.get("modules_to_not_convert") or quant.get("ignore") or quant.get("llm_int8_skip_modules")
    if isinstance(kept, (list, tuple)) and kept:
        shown = ", ".join(str(k) for k in kept[:4]) + (f" and {len(kept) - 4} more" if len(kept) > 4 else "")
        note += f" (left unquantized by the checkpoint either way: {shown})"
    return note


def build_with_plugin(plugin_manager: Any, model_type: str, data: dict, label: str) -> PluginModel | None:
    """Ask plugins' ``lora_registry_build_model`` for ``model_type``; ``None`` when none builds it."""
    if plugin_manager is None:
        return None
    from .host import as_host

    built = as_host(plugin_manager).build_model(model_type, data, label)
    return PluginModel(built[0], model_type, built[1]) if built is not None else None


@dataclass(frozen=True)
class ModelRecipe:
    """How to build MODEL afresh on the meta device: its config, and the function that builds a model from it.

    ``config`` is a transformers ``PretrainedConfig``, or the ``config.json`` dict of a model type a
    plugin builds; ``build(config)`` returns a new ``nn.Module`` on the meta device. The memory
    simulation builds from changed copies of the config (fewer layers, another dtype).
    """

    label: str
    model_type: str
    config: Any
    build: Callable[[Any], Any]


def load_recipe(
    source: Any, *, trust_remote_code: bool = False, plugin_manager: Any = None, revision: str | None = None
) -> ModelRecipe:
    """MODEL's ``ModelRecipe``, read without building it where the config says enough.

    ``source`` is anything ``load_model`` accepts. A built module is rebuilt from its own class
    and config (a PEFT-wrapped one without its adapters); a module without a transformers config
    cannot be, and is a ``ModelLoadError``.
    """
    if revision is not None:
        from .hub import with_revision

        source = with_revision(source, revision)
    import torch
    from transformers import PretrainedConfig

    if isinstance(source, torch.nn.Module):
        from .tree import unwrap

        model = unwrap(source)  # the bare model inside compile, DDP, FSDP, PEFT, ...
        config = getattr(model, "config", None)
        cls = type(model)
        if not isinstance(config, PretrainedConfig) or not hasattr(cls, "_from_config"):
            raise ModelLoadError(
                f"{cls.__name__}: this module has no transformers config to build it again from; "
                "pass its config or config.json"
            )
        return ModelRecipe(cls.__name__, config.model_type, config, functools.partial(_build_class, cls))
    if isinstance(source, PretrainedConfig):
        build = functools.partial(build_model, trust_remote_code=trust_remote_code)
        return ModelRecipe(source.model_type, source.model_type, source, build)
    source = _source_text(source)
    config = load_config(source, trust_remote_code=trust_remote_code, plugin_manager=plugin_manager)
    if isinstance(config, PluginModel):
        found = read_source(source)
        data = dict(found.data) if found is not None and found.data is not None else {"model_type": config.model_type}
        return ModelRecipe(
            source, config.model_type, data, functools.partial(_build_with_plugin, plugin_manager, config, source)
        )
    build = functools.partial(build_model, trust_remote_code=trust_remote_code)
    return ModelRecipe(source, config.model_type, config, build)


def _build_class(cls: Any, config: Any) -> Any:
    import torch

    with quiet(), torch.device("meta"):
        return cls._from_config(config)


def _build_with_plugin(plugin_manager: Any, built: PluginModel, label: str, data: Mapping[str, Any]) -> Any:
    found = build_with_plugin(plugin_manager, built.model_type, dict(data), label)
    if found is None:  # the plugin built it a moment ago: it must still answer
        raise ModelLoadError(f"{label}: plugin {built.plugin!r} no longer builds {built.model_type!r}")
    return found.model


def read_source(source: str, *, revision: str | None = None) -> ConfigSource | None:
    """MODEL read without torch or transformers, for the fast path and the cache; ``None`` if it cannot be.

    A folder or ``config.json`` path and a hub id (its ``config.json`` from the local cache, else
    downloaded; ``revision`` as ``owner/name@revision`` does) give their data; a bare name (a
    model_type) gives only its key. Anything odd gives ``None``: the normal path then words the error.
    """
    import hashlib

    if revision is not None:
        from .hub import with_revision

        source = with_revision(source, revision)

    if not isinstance(source, str) or not source.strip():
        return None
    try:
        file = local_config_file(source)
    except ModelLoadError:
        return None  # the normal path words it
    if file is None and not _looks_like_path(source) and "/" in source:
        from .hub import config_file

        file = config_file(source)  # the cache, else a download (no torch); its failures are the user's, in one line
    if file is None:
        if _looks_like_path(source) or not source.replace("_", "").replace("-", "").isalnum():
            return None
        return ConfigSource(source, None, {"model_type": source})
    try:
        raw = file.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    key: dict[str, Any] = {"config": hashlib.sha256(raw).hexdigest()}
    if "auto_map" in data:  # remote code: the code files are part of what gets built
        key["code"] = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(file.parent.glob("*.py")) if p.is_file()
        }
    return ConfigSource(source, data, key)


def load_config(
    source: str, *, trust_remote_code: bool = False, plugin_manager: Any = None, revision: str | None = None
):
    """Read a config from a path, the hub (cache first), or transformers' defaults for a model_type.

    Returns a ``PluginModel`` instead where a plugin builds a model_type transformers lacks, and a
    ``NativeConfig`` where the config's ``architectures`` names a class transformers ships for it.
    ``revision`` (a branch, tag or commit) applies to a hub id, as ``owner/name@revision`` does.
    """
    if revision is not None:
        from .hub import with_revision

        source = with_revision(source, revision)
    file = local_config_file(source)
    if file is not None:
        return config_from_file(file, trust_remote_code, plugin_manager=plugin_manager)
    if _looks_like_path(source):
        raise ModelLoadError(f"{source}: no such file or directory")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if source in CONFIG_MAPPING:
        from transformers import AutoConfig

        try:
            with quiet():
                return AutoConfig.for_model(source)
        except Exception as exc:  # transformers' own validators reject some of their defaults
            raise ModelLoadError(f"{source}: transformers cannot make its default config: {one_line(exc)}") from None
    if "/" in source:
        from . import hub

        repo_id, hub_revision = hub.parse_hub_id(source)
        return config_from_file(
            hub.config_file(source),
            trust_remote_code,
            label=source,
            plugin_manager=plugin_manager,
            fetch_code=lambda data: hub.download_remote_code(repo_id, hub_revision, data, label=source),
        )
    built = build_with_plugin(plugin_manager, source, {"model_type": source}, source)
    if built is not None:
        return built
    close = difflib.get_close_matches(source, list(CONFIG_MAPPING.keys()), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ModelLoadError(f"{source!r} is not a path, a hub id, or a model_type transformers knows{hint}")


def config_from_file(
    file: Path,
    trust_remote_code: bool,
    label: str | None = None,
    plugin_manager: Any = None,
    fetch_code: Callable[[dict], Path] | None = None,
):
    """Parse a ``config.json`` with precise errors; remote code only with ``trust_remote_code``.

    A model_type transformers does not know goes to the plugins' ``lora_registry_build_model``
    first (an installed plugin is trusted code; a config's ``auto_map`` is not). ``fetch_code(data)``,
    called only once remote code is trusted and needed, returns the folder holding the code files
    (a hub id's snapshot, where ``hub.download_remote_code`` put them).
    """
    label = label or str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{label}: cannot read config ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{label}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{label}: config.json must hold a JSON object, not {type(data).__name__}")
    model_type = data.get("model_type")
    if model_type is None:
        raise ModelLoadError(f"{label}: config.json has no model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelLoadError(f"{label}: model_type must be a non-empty string, not {model_type!r}")
    check_config_fields(data, label)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type in CONFIG_MAPPING:
        # Native classes win even where the config carries auto_map (Phi-3's does): no remote code runs.
        try:
            with quiet():
                return CONFIG_MAPPING[model_type].from_dict(data)
        except Exception as exc:  # transformers raises many types for bad fields
            raise ModelLoadError(f"{label}: invalid {model_type} config: {one_line(exc)}") from None
    built = build_with_plugin(plugin_manager, model_type, data, label)
    if built is not None:
        return built
    native = _native_stand_in(data, label)
    if "auto_map" in data and trust_remote_code:
        folder = file.parent if fetch_code is None else fetch_code(data)
        _check_remote_files(data, folder, label, native)
        from transformers import AutoConfig

        try:
            with quiet():
                return AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
        except Exception as exc:
            raise ModelLoadError(f"{label}: remote config failed: {one_line(exc)}") from None
    if native is not None:
        return native
    if "auto_map" in data:
        raise RemoteCodeError(
            f"{label}: model_type {model_type!r} is not in transformers and its config asks for remote code "
            "(auto_map); that code would run on this machine, so pass --trust-remote-code if you trust it"
        )
    raise ModelLoadError(
        f"{label}: unknown model_type {model_type!r} (not in transformers, no installed plugin builds it, no auto_map)"
    )


def _native_stand_in(data: dict, label: str) -> NativeConfig | None:
    """A config for the class ``architectures`` names where transformers ships it (Kimi-K2's ``DeepseekV3ForCausalLM``).

    The checkpoint's own code (``auto_map``) is not run; the note says the names are those of
    transformers' class. ``None`` when no listed class is one transformers ships.
    """
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    for arch in data.get("architectures") or []:
        try:
            cls = getattr(transformers, arch, None)
        except Exception:  # transformers' lazy module can fail to import a class's dependencies
            cls = None
        config_class = getattr(cls, "config_class", None)
        native_type = getattr(config_class, "model_type", None)
        if not hasattr(cls, "_from_config") or not native_type or native_type not in CONFIG_MAPPING:
            continue
        fields = {k: v for k, v in data.items() if k not in ("model_type", "auto_map")}
        try:
            with quiet():
                config = CONFIG_MAPPING[native_type].from_dict(fields)
        except Exception as exc:
            raise ModelLoadError(f"{label}: invalid config for {arch}: {one_line(exc)}") from None
        note = f"model_type {data['model_type']!r} is not in transformers: built with transformers' {arch}, the class its architectures names"
        if "auto_map" in data:
            note += (
                f"; the checkpoint's own code (auto_map) was not run, so the names are those of {arch}: load the "
                "model with that class for the emitted config to apply (--trust-remote-code runs the checkpoint's "
                "code instead)"
            )
        return NativeConfig(config, note)
    return None


def _check_remote_files(data: dict, folder: Path, label: str, native: NativeConfig | None) -> None:
    """Remote code given the flag: each module ``auto_map`` names for the configuration and model classes
    (what building needs; not a tokenizer's) must be in the folder, else one line naming it."""
    auto_map = data.get("auto_map")
    if not isinstance(auto_map, dict):
        return
    for key, reference in auto_map.items():
        if key != "AutoConfig" and not str(key).startswith("AutoModel"):
            continue
        references = reference if isinstance(reference, list) else [reference]
        for ref in references:
            if not isinstance(ref, str) or "--" in ref or "." not in ref:
                continue  # code in another repository: transformers fetches it
            module_file = ref.rsplit(".", 1)[0].replace(".", "/") + ".py"
            if not (folder / module_file).is_file():
                raise ModelLoadError(
                    f"{label}: --trust-remote-code: the config's auto_map names {module_file}, which is not in "
                    f"{folder}; put the checkpoint's code files beside config.json"
                    + (" or drop the flag to build transformers' own class" if native is not None else "")
                )


def check_config_fields(data: dict, label: str, prefix: str = "") -> None:
    """Refuse wrong-typed, non-positive or absurd size fields in a parsed ``config.json`` (and its sub-configs).

    transformers would build an empty stack from a negative layer count, or run for hours on a
    billion layers; the error names the field (``text_config.num_hidden_layers``).
    """
    for key in _SIZE_FIELDS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ModelLoadError(f"{label}: {prefix}{key} must be a positive whole number, not {short_repr(value)}")
    for key in _COUNT_FIELDS:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > _COUNT_LIMIT:
            raise ModelLoadError(
                f"{label}: {prefix}{key} is {value}, more than {_COUNT_LIMIT:,}; lora-registry builds every "
                "layer and expert (on the meta device), so check the config"
            )
    architectures = data.get("architectures")
    if architectures is not None and (
        not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures)
    ):
        raise ModelLoadError(
            f"{label}: {prefix}architectures must be a list of class names, not {short_repr(architectures)}"
        )
    for key, value in data.items():
        # Sub-configs (text_config, vision_config, ...) size the towers a composite model builds.
        if isinstance(value, dict) and (key.endswith("_config") or "model_type" in value) and len(prefix) < 200:
            check_config_fields(value, label, f"{prefix}{key}.")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No Python warnings and no transformers log lines: a bad config must cost one line on stderr, not three."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(previous)


def build_model(config, trust_remote_code: bool = False):
    """Instantiate the model for ``config`` on the meta device."""
    import torch
    import transformers

    remote = bool(getattr(config, "auto_map", None)) and config.model_type not in _native_model_types()
    if remote and not trust_remote_code:
        raise RemoteCodeError(f"{config.model_type}: building this model runs remote code; pass --trust-remote-code")
    builders = []  # the checkpoint's own class first, then the Auto classes in task order
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None) if isinstance(arch, str) else None
        if cls is not None and hasattr(cls, "_from_config"):
            builders.append(cls._from_config)
    autos = [
        "AutoModelForCausalLM",
        "AutoModelForImageTextToText",
        "AutoModelForSeq2SeqLM",
        "AutoModelForSpeechSeq2Seq",
        "AutoModel",
    ]
    if getattr(config, "is_encoder_decoder", False):
        # Whisper, BART, T5: the full encoder-decoder, not the decoder-only causal-LM class.
        autos = autos[2:4] + autos[:2] + autos[4:]
    elif getattr(config, "vision_config", None) is not None:
        # Mllama, Gemma 3: the vision-language model, not the text-only causal LM inside it.
        autos = [autos[1], autos[0]] + autos[2:]
    for auto_name in autos:
        auto = getattr(transformers, auto_name, None)
        if auto is not None and (remote or type(config) in auto._model_mapping):
            builders.append(functools.partial(auto.from_config, trust_remote_code=True) if remote else auto.from_config)
    if not builders:
        raise ModelLoadError(f"{config.model_type}: transformers has no model class for this model_type")
    first_error = None
    for build in builders:
        try:
            with quiet(), torch.device("meta"):
                return build(config)
        except Exception as exc:  # a config transformers accepted but this class cannot build from
            first_error = first_error or exc
    reason = one_line(first_error) if first_error is not None else "no class accepted it"
    raise ModelLoadError(f"{config.model_type}: cannot build the model from this config: {reason}")


def _native_model_types():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING


def cached_config_file(repo_id: str) -> Path | None:
    """``config.json`` of the hub id ``repo_id`` (``owner/name[@revision]``) in the local Hugging Face cache,
    or ``None``; no request, no torch (``hub.cached_file``)."""
    from .hub import cached_file, parse_hub_id

    repo, revision = parse_hub_id(repo_id)
    return cached_file(repo, "config.json", revision)


def local_config_file(source: str) -> Path | None:
    """The ``config.json`` a local folder or file path names, or ``None`` if ``source`` is neither."""
    path = Path(source).expanduser()
    if path.is_dir():
        file = path / "config.json"
        if not file.is_file():
            raise ModelLoadError(f"{source}: directory has no config.json")
        return file
    return path if path.is_file() else None


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.endswith(".json") or os.sep + os.sep in source
