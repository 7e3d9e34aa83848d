"""The on-disk cache of ``ModelMap``s: a second ``inspect`` or ``resolve`` of a model answers without torch.

A map is plain data, so it is stored as JSON under the user cache folder
(``$LORA_REGISTRY_CACHE_DIR``, else ``$XDG_CACHE_HOME/lora-registry``, else
``~/.cache/lora-registry``), keyed by everything the map depends on: the config's content (or
the model_type's name, whose defaults come from transformers), the versions of transformers and
PEFT, lora-registry's own version and files, the installed plugins and the merged registry, the
forced plugin and ``trust_remote_code``. ``--no-cache`` or ``$LORA_REGISTRY_NO_CACHE=1`` turn it
off. An entry that is corrupt, of another format or for another key is ignored and rewritten;
an unwritable folder only means no caching.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .host import PluginHost
    from .inspection import ModelHandle, ModelMap
    from .loading import ConfigSource
    from .registry import Registry

CACHE_ENV = "LORA_REGISTRY_CACHE_DIR"
NO_CACHE_ENV = "LORA_REGISTRY_NO_CACHE"
_FORMAT = 1


def enabled() -> bool:
    """False when ``$LORA_REGISTRY_NO_CACHE`` is set."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Where entries live."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lora-registry"


def map_key(source: ConfigSource, host: PluginHost, *, plugin: str | None, trust_remote_code: bool) -> str:
    """The entry name for ``source`` as ``host``'s plugins would map it."""
    from .host import own_version, package_digest

    material = {
        "format": _FORMAT,
        "source": dict(source.key),
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        "lora_registry": [own_version(), package_digest()],
        "plugins": host.fingerprint(),
        "plugin": plugin,
        "trust_remote_code": bool(trust_remote_code),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def load_map(key: str, *, model: str, registry: Registry, handle: ModelHandle | None) -> ModelMap | None:
    """The cached map for ``key`` under label ``model``, or ``None`` (missing, corrupt, foreign)."""
    from .inspection import ModelMap

    path = cache_dir() / "maps" / f"{key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entry, Mapping) or entry.get("format") != _FORMAT or entry.get("key") != key:
            return None
        return ModelMap.from_json(entry["map"], model=model, registry=registry, handle=handle)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, or not ours: it gets rewritten


def store_map(key: str, model_map: ModelMap) -> None:
    """Write the entry through a temporary file and a rename; any failure only means no caching."""
    folder = cache_dir() / "maps"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": _FORMAT, "key": key, "map": model_map.to_json()}, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except (OSError, TypeError, ValueError):
        pass


def _version(distribution: str) -> str | None:
    """A distribution's installed version, without importing it."""
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:
        return None
