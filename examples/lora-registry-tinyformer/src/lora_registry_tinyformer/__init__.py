"""Tinyformer, and the lora-registry plugin that understands it (an example third-party plugin)."""

__version__ = "0.1.0"
