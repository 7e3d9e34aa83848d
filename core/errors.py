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


def one_line(value: object, limit: int = 300) -> str:
    """An exception (or any value) as one line of at most ``limit`` characters; an empty message is its class name."""
    text = " ".join(str(value).split()) or value.__class__.__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 80 characters: a bad value named in an error line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
