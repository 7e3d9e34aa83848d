"""The Hugging Face hub: hub ids with a revision, the local cache, and bounded downloads.

The cache is read first and without any request (``try_to_load_from_cache``); only a file that is
not cached is downloaded. All network use goes through huggingface_hub (its shared client, so
``HTTP(S)_PROXY``, ``HF_ENDPOINT`` and the token work exactly as for ``hf_hub_download``); this
module only bounds the time a call may take and turns each failure into one precise
``ModelLoadError`` line. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, one_line, short_repr

#: seconds one download (a config, or a model's remote code) may take against a failing or silent hub:
#: with the imports before it, a command line run ends within 20 s
HUB_TIMEOUT = 15.0
#: seconds one request may wait for the hub's answer (huggingface_hub's HF_HUB_ETAG_TIMEOUT, if lower)
REQUEST_TIMEOUT = 10.0
#: waits before the second and third try after a server error (5xx): the hub's blips are short
SERVER_ERROR_RETRIES = (1.0, 2.0)
#: the most code files one model may pull in through auto_map and relative imports
MAX_CODE_FILES = 64

_COMMIT = re.compile(r"[0-9a-f]{40}")
# transformers' own patterns (dynamic_module_utils.get_relative_imports), so the same files are fetched
_RELATIVE_IMPORTS = (
    re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE),
    re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE),
)


def parse_hub_id(text: str) -> tuple[str, str | None]:
    """``"owner/name"`` -> ``("owner/name", None)``; ``"owner/name@rev"`` -> ``("owner/name", "rev")``.

    ``rev`` is a branch, a tag or a commit hash. Raises ``ModelLoadError`` for anything else.
    """
    repo_id, at, revision = text.partition("@")
    if repo_id.count("/") != 1 or not _valid_repo_id(repo_id):
        raise ModelLoadError(f"{text!r} is not a valid hub id (owner/name or owner/name@revision), path or model_type")
    if at:
        _check_revision(revision, text)
        return repo_id, revision
    return repo_id, None


def with_revision(source: Any, revision: str | None) -> Any:
    """``source`` with ``revision`` attached (``owner/name`` -> ``owner/name@revision``): the CLI's ``--revision``.

    A revision applies only to a hub id; one given twice must agree.
    """
    if revision is None:
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or "/" not in source or Path(source).expanduser().exists():
        what = source if isinstance(source, str) else f"a {type(source).__name__}"
        raise ModelLoadError(f"{what}: a revision applies only to a hub id (owner/name)")
    _check_revision(revision, source)
    repo_id, given = parse_hub_id(source)
    if given is not None and given != revision:
        raise ModelLoadError(f"{source}: two revisions given, {given!r} in the id and {revision!r}")
    return f"{repo_id}@{revision}"


def cached_file(repo_id: str, filename: str = "config.json", revision: str | None = None) -> Path | None:
    """``filename`` of ``repo_id`` at ``revision`` in the local Hugging Face cache, or ``None``; no request.

    ``revision`` is a branch or tag (read through ``refs/<revision>``) or a commit hash (its snapshot
    folder); ``None`` means ``main``. A pure file-system lookup: ``hf_hub_download(local_files_only=True)``
    still builds request headers, and huggingface_hub fetches its user-agent registry while doing so.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:  # an unreadable cache is an empty one
        return None
    return Path(found) if isinstance(found, str) else None


def config_file(source: str) -> Path:
    """The ``config.json`` of the hub id ``source`` (``owner/name[@revision]``): from the cache, else downloaded."""
    return hub_file(source, "config.json")


def hub_file(source: str, filename: str) -> Path:
    """``filename`` of the hub id ``source`` (``owner/name[@revision]``): from the cache, else downloaded.

    The download is bounded and fails in one precise line, as ``download_config`` does.
    """
    repo_id, revision = parse_hub_id(source)
    cached = cached_file(repo_id, filename, revision)
    if cached is not None:
        return cached
    return _fetch(repo_id, filename, revision, source, time.monotonic() + HUB_TIMEOUT)


def download_config(repo_id: str, revision: str | None = None, *, label: str | None = None) -> Path:
    """Download ``config.json`` of ``repo_id`` at ``revision`` into the Hugging Face cache; its path there.

    Takes at most ``HUB_TIMEOUT`` seconds. Each failure is one ``ModelLoadError`` line: a gated repo
    (request access, set a token), a repo or revision that does not exist, no ``config.json`` there,
    a server error, an unreachable or silent hub, offline mode with nothing cached.
    """
    label = label or _label(repo_id, revision)
    return _fetch(repo_id, "config.json", revision, label, time.monotonic() + HUB_TIMEOUT)


def download_remote_code(repo_id: str, revision: str | None, config_data: dict, *, label: str | None = None) -> Path:
    """Fetch the Python files ``config_data["auto_map"]`` needs; the snapshot folder that holds them and config.json.

    Only the configuration and model classes (``AutoConfig``, ``AutoModel*``) are followed, and every
    relative import of their files, recursively (transformers' ``get_relative_imports`` rule). The files
    come from the commit the cached ``config.json`` belongs to, so ``AutoConfig.from_pretrained(folder,
    trust_remote_code=True)`` finds them without a request. A ``"other/repo--module.Class"`` reference is
    fetched from that repo's ``main``, the revision transformers asks for. Cached files cost no request.
    Call this only when the user trusts the remote code: the files are meant to run.
    """
    label = label or _label(repo_id, revision)
    config = cached_file(repo_id, "config.json", revision) or download_config(repo_id, revision, label=label)
    folder = config.parent
    commit = folder.name if _COMMIT.fullmatch(folder.name) else revision
    deadline = time.monotonic() + HUB_TIMEOUT
    pending = [
        (repo or repo_id, None if repo else commit, module + ".py")
        for repo, module in _code_references(config_data.get("auto_map"), label)
    ]
    seen: set[tuple[str, str]] = set()
    while pending:
        repo, rev, filename = pending.pop(0)
        if (repo, filename) in seen:
            continue
        seen.add((repo, filename))
        if len(seen) > MAX_CODE_FILES:
            raise ModelLoadError(
                f"{label}: the remote code imports more than {MAX_CODE_FILES} files; not fetching them"
            )
        path = cached_file(repo, filename, rev) or _fetch(repo, filename, rev, label, deadline)
        parent = filename.rpartition("/")[0]
        for module in _relative_imports(path):
            pending.append((repo, rev, f"{parent}/{module}.py" if parent else f"{module}.py"))
    return folder


# --------------------------------------------------------------------------- fetching


def _fetch(repo_id: str, filename: str, revision: str | None, label: str, deadline: float) -> Path:
    """One file into the cache through huggingface_hub, within ``deadline``, or one precise error."""
    if _offline():
        raise ModelLoadError(_not_cached(label, repo_id, filename, revision))

    def download() -> str:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils.tqdm import silent_tqdm

        with _hub_silenced():
            _check_metadata(repo_id, filename, revision, deadline)
            return hf_hub_download(
                repo_id, filename, revision=revision, etag_timeout=_request_timeout(deadline), tqdm_class=silent_tqdm
            )

    try:
        return Path(_within(deadline, download))
    except _TimedOut:
        raise ModelLoadError(
            f"{label}: {_endpoint()} did not deliver {filename} within {HUB_TIMEOUT:g} s; "
            "check the network and HTTPS_PROXY, or pass a local path"
        ) from None
    except Exception as exc:
        raise _error(exc, label, repo_id, filename, revision) from None


def _check_metadata(repo_id: str, filename: str, revision: str | None, deadline: float) -> None:
    """One HEAD request, without huggingface_hub's own retries: they take 26-29 s on a server error and
    about 400 s on a silent hub. Its errors are the precise ones; two more tries after a 5xx only."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError

    url = hf_hub_url(repo_id, filename, revision=revision)
    for wait in (*SERVER_ERROR_RETRIES, None):
        try:
            metadata = get_hf_file_metadata(url, timeout=_request_timeout(deadline))
            break
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if wait is None or status < 500 or time.monotonic() + wait + 1 > deadline:
                raise
            time.sleep(wait)
    if metadata.commit_hash is None or metadata.etag is None:
        raise FileMetadataError("no X-Repo-Commit or ETag header")


def _within(deadline: float, call: Callable[[], Any]) -> Any:
    """``call()`` in a worker thread, or ``_TimedOut`` at ``deadline``: huggingface_hub's own download
    retries (a body that stops mid-way) cannot be bounded by a setting. A worker left behind ends by
    huggingface_hub's own limits and is a daemon, so it never holds the process open."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="lora-registry-hub", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise _TimedOut
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _TimedOut(Exception):
    pass


_silenced = 0
_silenced_lock = threading.Lock()
_saved_level = logging.WARNING


@contextlib.contextmanager
def _hub_silenced() -> Iterator[None]:
    """huggingface_hub logs nothing while a download runs (retry warnings, server warnings): an error
    costs one line on stderr. Counted, so overlapping downloads restore the level once, at the end."""
    from huggingface_hub.utils import logging as hub_logging

    global _silenced, _saved_level
    with _silenced_lock:
        if _silenced == 0:
            _saved_level = hub_logging.get_verbosity()
            hub_logging.set_verbosity(logging.CRITICAL + 1)
        _silenced += 1
    try:
        yield
    finally:
        with _silenced_lock:
            _silenced -= 1
            if _silenced == 0:
                hub_logging.set_verbosity(_saved_level)


def _request_timeout(deadline: float) -> float:
    return max(0.5, min(_request_limit(), deadline - time.monotonic()))


def _request_limit() -> float:
    from huggingface_hub import constants

    return min(REQUEST_TIMEOUT, float(constants.HF_HUB_ETAG_TIMEOUT))


def _offline() -> bool:
    """huggingface_hub's offline mode, or HF_HUB_OFFLINE set since it was imported: never a request then."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {
        "1",
        "true",
        "yes",
        "on",
    }


# --------------------------------------------------------------------------- errors


def _error(exc: BaseException, label: str, repo_id: str, filename: str, revision: str | None) -> ModelLoadError:
    """The one line for a failed download: what went wrong and what to do."""
    import httpx2
    from huggingface_hub.errors import (
        DisabledRepoError,
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = _endpoint()
    page = f"{endpoint}/{repo_id}"
    # the repo the label names, or another one (a remote-code reference "other/repo--module.Class")
    repo = "the repo" if label.partition("@")[0] == repo_id else repo_id
    if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
        exc = exc.__cause__  # huggingface_hub's "cannot find it in the cache" wraps the actual reason
    if isinstance(exc, GatedRepoError):
        if _status(exc) == 403 or _sent_token(exc):
            return ModelLoadError(
                f"{label}: gated repo, and the token in use has no access to it; request access at {page} "
                "(or set HF_TOKEN to a token of an account that has it)"
            )
        return ModelLoadError(
            f"{label}: gated repo; request access at {page}, then set HF_TOKEN or run `hf auth login`"
        )
    if isinstance(exc, RepositoryNotFoundError):
        if _sent_token(exc):
            return ModelLoadError(f"{label}: no repo {repo_id} on {endpoint}, or the token in use cannot see it")
        return ModelLoadError(
            f"{label}: no repo {repo_id} on {endpoint} (if it is private, set HF_TOKEN or run `hf auth login`)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ModelLoadError(f"{label}: {repo} has no branch, tag or commit {revision or 'main'!r}")
    if isinstance(exc, RemoteEntryNotFoundError):
        needed = "" if filename == "config.json" else " (the remote code needs it)"
        return ModelLoadError(f"{label}: {repo} has no {filename} at revision {revision or 'main'!r}{needed}")
    if isinstance(exc, DisabledRepoError):
        return ModelLoadError(f"{label}: {repo_id} is disabled on {endpoint}")
    if isinstance(exc, OfflineModeIsEnabled):
        return ModelLoadError(_not_cached(label, repo_id, filename, revision))
    if isinstance(exc, HfHubHTTPError):
        status = _status(exc)
        if status >= 500:
            return ModelLoadError(f"{label}: the hub answered {status} (server error) for {filename}; try again later")
        if status == 401:
            return ModelLoadError(
                f"{label}: the hub refused the token in use (401); fix HF_TOKEN or run `hf auth login`"
            )
        if status == 429:
            return ModelLoadError(f"{label}: the hub is rate-limiting this machine (429); try again later")
        reason = f": {one_line(exc.server_message, 200)}" if exc.server_message else ""
        return ModelLoadError(f"{label}: the hub answered {status} for {filename}{reason}")
    if isinstance(exc, FileMetadataError):
        return ModelLoadError(
            f"{label}: {endpoint} does not answer like a Hugging Face hub (no X-Repo-Commit or ETag header); "
            "check HF_ENDPOINT and the proxy settings"
        )
    if isinstance(exc, httpx2.ProxyError):
        return ModelLoadError(
            f"{label}: the proxy could not reach {endpoint} ({one_line(exc, 200)}); check HTTPS_PROXY"
        )
    if isinstance(exc, httpx2.TimeoutException):
        return ModelLoadError(
            f"{label}: {endpoint} did not answer within {_request_limit():g} s; "
            "check the network and HTTPS_PROXY, or pass a local path"
        )
    if isinstance(exc, httpx2.TransportError):
        return ModelLoadError(
            f"{label}: the hub at {endpoint} is not reachable ({one_line(exc, 200)}); "
            "check the network and HTTPS_PROXY, or pass a local path"
        )
    if isinstance(exc, OSError):  # the cache folder cannot be written: disk full, read-only
        reason = exc.strerror or one_line(exc, 200)
        return ModelLoadError(f"{label}: cannot store {filename} in the Hugging Face cache: {reason}")
    return ModelLoadError(f"{label}: downloading {filename} failed: {exc.__class__.__name__}: {one_line(exc, 200)}")


def _not_cached(label: str, repo_id: str, filename: str, revision: str | None) -> str:
    command = f"hf download {repo_id} {filename}" + (f" --revision {revision}" if revision else "")
    return (
        f"{label}: {filename} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
        f"run `{command}` where the hub is reachable, or pass a local path"
    )


def _status(exc: Any) -> int:
    response = getattr(exc, "response", None)
    return response.status_code if response is not None else 0


def _sent_token(exc: Any) -> bool:
    response = getattr(exc, "response", None)
    try:
        return response is not None and "authorization" in response.request.headers
    except RuntimeError:  # a response built without its request
        return False


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


# --------------------------------------------------------------------------- names and code


def _code_references(auto_map: Any, label: str) -> list[tuple[str | None, str]]:
    """``(repo or None, module)`` for each configuration and model class ``auto_map`` names."""
    if not isinstance(auto_map, dict):
        raise ModelLoadError(
            f"{label}: auto_map must be an object mapping Auto classes to code, not {short_repr(auto_map)}"
        )
    found = []
    for key, value in auto_map.items():
        if not (key == "AutoConfig" or key.startswith("AutoModel")):
            continue  # tokenizers and processors are never built here
        for reference in value if isinstance(value, (list, tuple)) else [value]:
            if reference is None:
                continue
            repo, _, target = reference.rpartition("--") if isinstance(reference, str) else ("", "", "")
            module, dot, name = target.partition(".")
            if not (dot and name and re.fullmatch(r"[\w\-]+", module)) or (repo and not _valid_repo_id(repo)):
                raise ModelLoadError(
                    f"{label}: auto_map[{key!r}] is not a module.Class reference: {short_repr(reference)}"
                )
            found.append((repo or None, module))
    return found


def _relative_imports(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    names = {name for pattern in _RELATIVE_IMPORTS for name in pattern.findall(text)}
    return sorted(name for name in names if re.fullmatch(r"[\w\-.]+", name) and ".." not in name)


def _valid_repo_id(repo_id: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def _check_revision(revision: str, source: str) -> None:
    if (
        not revision
        or revision != revision.strip()
        or any(c.isspace() or ord(c) < 32 for c in revision)
        or ".." in revision
        or revision.startswith("/")
        or revision.endswith("/")
    ):
        raise ModelLoadError(f"{source}: {revision!r} is not a branch, tag or commit name")


def _label(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id
