"""Error types. The CLI turns each into one line on stderr and exit status 2."""

from __future__ import annotations


class LoraRegistryError(Exception):
    """Base class of every error lora-registry raises on purpose."""


class ModelLoadError(LoraRegistryError):
    """MODEL could not be read or built: missing path, bad config, unknown model_type, hub id not cached."""


class RemoteCodeError(ModelLoadError):
    """The config needs remote code and the caller did not pass trust_remote_code."""


class RoleError(LoraRegistryError):
    """An unknown role or alias, or a role the model does not have."""


class ConfigError(LoraRegistryError):
    """Bad LoRA settings: rank, alpha, preset, format, scope, output path."""


class PluginError(LoraRegistryError):
    """A plugin failed, or answered with something invalid."""


class RegistryError(LoraRegistryError):
    """registry.toml (built-in or a plugin's fragment) is malformed."""
