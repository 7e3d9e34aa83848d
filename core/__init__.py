"""lora-registry: which modules of a model to adapt with LoRA, and what it will cost.

Map abstract roles (``attention-q``, ``ffn-gate``, ``experts-down``, ...) onto the concrete
module and parameter names of any transformers model, and emit a PEFT ``LoraConfig`` that
adapts exactly those, with the trainable-parameter count known in advance::

    import lora_registry as lr
    r = lr.resolve("llama", roles="q,v,ffn")
    r.lora_config(r=8, lora_alpha=16, ranks={"ffn": 4})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    LoraRegistryError,
    ModelLoadError,
    PluginError,
    RegistryError,
    RemoteCodeError,
    RoleError,
)
from .hookspecs import HOOKSPEC_VERSION, Decline, Null, hookimpl

__all__ = [
    "HOOKSPEC_VERSION",
    "AdapterPlan",
    "ConfigError",
    "Cost",
    "Decline",
    "LoraRegistryError",
    "LoraSettings",
    "MemoryPlan",
    "MemorySettings",
    "ModelLoadError",
    "ModelMap",
    "ModuleTree",
    "Null",
    "PluginError",
    "PluginHost",
    "RegistryError",
    "RemoteCodeError",
    "Resolution",
    "RoleError",
    "__version__",
    "get_plugin_host",
    "get_plugin_manager",
    "hookimpl",
    "inspect",
    "resolve",
]

if TYPE_CHECKING:  # pragma: no cover
    from .host import PluginHost, get_plugin_host, get_plugin_manager
    from .inspection import ModelMap, inspect
    from .memory import MemoryPlan, MemorySettings
    from .plan import AdapterPlan, Cost
    from .resolution import Resolution, resolve
    from .settings import LoraSettings
    from .tree import ModuleTree

    __version__: str

# torch and transformers load only when a model is actually inspected, so `--help`,
# `roles` and `plugins` stay fast: these names are imported on first use.
_LAZY = {
    "inspect": "inspection",
    "ModelMap": "inspection",
    "resolve": "resolution",
    "Resolution": "resolution",
    "get_plugin_host": "host",
    "get_plugin_manager": "host",
    "PluginHost": "host",
    "LoraSettings": "settings",
    "AdapterPlan": "plan",
    "Cost": "plan",
    "ModuleTree": "tree",
    "MemorySettings": "memory",
    "MemoryPlan": "memory",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from .host import own_version

        return own_version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lora_registry' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
