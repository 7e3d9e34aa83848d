"""A fake Hugging Face hub and a forward proxy, both real HTTP servers on 127.0.0.1 (the hub over https
too, with ``self_signed_certificate``), for the hub tests.

``FakeHub`` answers the requests huggingface_hub 2.4.0 makes, the way huggingface.co does:

- ``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{file}`` (the revision URL-quoted: ``refs%2Fpr%2F1``)
  with ``X-Repo-Commit``, ``ETag`` (the git blob sha1), ``Content-Length``; a file stored like an LFS
  file answers ``302`` to a second origin (the "CDN") with ``X-Linked-Etag`` and ``X-Linked-Size``;
  a renamed repo answers ``307`` with a relative ``Location``;
- errors with ``X-Error-Code`` and ``X-Error-Message``: ``RepoNotFound`` (401 without a token, 404
  with one, as the hub hides private repos), ``GatedRepo`` (401 without a token, 403 with a token that
  has no access), ``RevisionNotFound``, ``EntryNotFound`` (with ``X-Repo-Commit``), a 401 for a token
  the hub does not know, and any status a test sets (500);
- ``GET /api/models/{repo}[/revision/{rev}]`` (model info) and ``GET /api/agent-harnesses`` (the
  registry huggingface_hub reads while building its user-agent).

It counts every request, and can hang: accept and never answer, until ``close()`` or ``HANG_LIMIT``
seconds, so a test run always ends by itself. ``ForwardProxy`` forwards plain ``http://`` requests
(``HTTP_PROXY``) and ``CONNECT`` tunnels (``HTTPS_PROXY``) to 127.0.0.1 only, counting them.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import select
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

#: the longest a hanging request is held open (the test that uses it has long finished by then)
HANG_LIMIT = 60.0

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Repo:
    """One model repo: its commits (sha -> files), refs (branches and tags -> sha) and access rules."""

    repo_id: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False
    private: bool = False
    granted: set[str] = field(default_factory=set)  # tokens with access to a gated or private repo
    lfs: set[str] = field(default_factory=set)  # files served through the CDN redirect
    status: int | None = None  # every request on this repo answers this status (a failing hub)


class FakeHub:
    """The fake hub; use as a context manager, point ``HF_ENDPOINT`` at ``url``."""

    def __init__(self, tokens=("hf_reader",), tls: tuple[str, str] | None = None):
        """``tokens``: the tokens the hub knows; ``tls``: (certificate, key) files to serve https."""
        self.tokens = set(tokens)
        self.repos: dict[str, Repo] = {}
        self.renamed: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.hang: str | None = None  # None, "all" (every request) or "GET" (HEAD answers, GET never does)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _serve(_HubHandler, self, tls)
        self._cdn = _serve(_HubHandler, self, tls)
        scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.cdn_url = f"{scheme}://127.0.0.1:{self._cdn.server_address[1]}"

    def __enter__(self) -> FakeHub:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release hanging requests and stop both servers."""
        self._stop.set()
        for server in (self._server, self._cdn):
            server.shutdown()
            server.server_close()

    # ----------------------------------------------------------------- content
    def add_repo(
        self, repo_id: str, files: dict, *, gated: bool = False, private: bool = False, granted=(), lfs=()
    ) -> str:
        """A repo whose ``main`` holds ``files`` (name -> bytes, str or a dict written as JSON); its commit sha."""
        self.repos[repo_id] = Repo(repo_id, gated=gated, private=private, granted=set(granted), lfs=set(lfs))
        return self.commit(repo_id, files)

    def commit(self, repo_id: str, files: dict, *, branch: str = "main", tag: str | None = None) -> str:
        """A new commit on ``branch`` (created from main if new): its files plus ``files``; its sha."""
        repo = self.repos[repo_id]
        base = repo.refs.get(branch) or repo.refs.get("main")
        content = {**(repo.commits[base] if base else {}), **{name: _bytes(data) for name, data in files.items()}}
        digest = hashlib.sha1(f"{repo_id} {branch} {len(repo.commits)}".encode())
        for name in sorted(content):
            digest.update(name.encode() + b"\0" + content[name])
        sha = digest.hexdigest()
        repo.commits[sha] = content
        repo.refs[branch] = sha
        if tag is not None:
            repo.refs[tag] = sha
        return sha

    def rename(self, old: str, new: str) -> None:
        """``old`` now redirects (307) to ``new``, as the hub does for a renamed or moved repo."""
        self.renamed[old] = new

    # ----------------------------------------------------------------- requests
    def count(self, method: str | None = None, contains: str = "") -> int:
        """Requests so far, of ``method`` (any if None) whose path contains ``contains``."""
        with self._lock:
            return sum(1 for m, path in self.requests if (method is None or m == method) and contains in path)

    def files_requested(self) -> list[str]:
        """``METHOD /path`` of every request to a repo file, in order."""
        with self._lock:
            return [f"{m} {path}" for m, path in self.requests if "/resolve/" in path or path.startswith("/cdn/")]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, *args) -> None:  # quiet: pytest shows failures, not every request
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    # ----------------------------------------------------------------- routing
    def _answer(self, head: bool) -> None:
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        hub._record(self.command, path)
        if hub.hang == "all" or (hub.hang == "GET" and not head and "/resolve/" in path):
            hub._stop.wait(HANG_LIMIT)  # accepted, never answered
            self.close_connection = True
            return
        if path == "/api/agent-harnesses":
            return self._json(200, {"standardEnvVars": [], "harnesses": {}}, head)
        if path.startswith("/cdn/"):
            return self._blob(hub, path[len("/cdn/") :], head)
        if path.startswith("/api/models/"):
            parts = path[len("/api/models/") :].split("/")
            repo_id, rest = "/".join(parts[:2]), parts[2:]
            revision = unquote("/".join(rest[1:])) if rest[:1] == ["revision"] else "main"
            return self._repo_request(hub, repo_id, revision, None, head, path)
        parts = path.split("/")
        if len(parts) >= 6 and parts[3] == "resolve":
            repo_id = f"{unquote(parts[1])}/{unquote(parts[2])}"
            return self._repo_request(hub, repo_id, unquote(parts[4]), unquote("/".join(parts[5:])), head, path)
        self._error(404, None, "Not Found", head)

    def _repo_request(
        self, hub: FakeHub, repo_id: str, revision: str, filename: str | None, head: bool, path: str
    ) -> None:
        if repo_id in hub.renamed:
            new = hub.renamed[repo_id]
            return self._send(307, {"Location": path.replace(f"/{repo_id}/", f"/{new}/", 1)}, b"", head)
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if token is not None and token not in hub.tokens:
            return self._error(401, None, "Invalid credentials in Authorization header", head)
        repo = hub.repos.get(repo_id)
        if repo is not None and repo.status is not None:
            return self._error(repo.status, None, "Internal Error" if repo.status >= 500 else "Error", head)
        if repo is None or (repo.private and token not in repo.granted):
            return self._error(404 if token else 401, "RepoNotFound", "Repository not found", head)
        if repo.gated and token not in repo.granted:
            if token is None:
                message = (
                    f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in."
                )
            else:
                message = (
                    f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                    f"Visit {hub.url}/{repo_id} to ask for access."
                )
            return self._error(403 if token else 401, "GatedRepo", message, head)
        sha = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        files = repo.commits[sha]
        if filename is None:  # model info
            info = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": repo.private,
                "gated": "manual" if repo.gated else False,
                "siblings": [{"rfilename": n} for n in sorted(files)],
            }
            return self._json(200, info, head)
        if filename not in files:
            return self._error(404, "EntryNotFound", "Entry not found", head, {"X-Repo-Commit": sha})
        data = files[filename]
        headers = {"X-Repo-Commit": sha}
        if filename in repo.lfs:
            oid = hashlib.sha256(data).hexdigest()
            headers.update(
                {
                    "X-Linked-Etag": f'"{oid}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{oid}"',
                    "Location": f"{hub.cdn_url}/cdn/{oid}",
                }
            )
            return self._send(302, headers, b"", head)
        headers.update(
            {"ETag": f'"{_git_blob_sha(data)}"', "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        )
        self._send(200, headers, data, head)

    def _blob(self, hub: FakeHub, oid: str, head: bool) -> None:
        for repo in hub.repos.values():
            for files in repo.commits.values():
                for data in files.values():
                    if hashlib.sha256(data).hexdigest() == oid:
                        return self._send(
                            200, {"ETag": f'"{oid}"', "Content-Type": "application/octet-stream"}, data, head
                        )
        self._error(404, None, "NoSuchKey", head)

    # ----------------------------------------------------------------- writing
    def _error(self, status: int, code: str | None, message: str, head: bool, extra=None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code is not None:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, head, headers)

    def _json(self, status: int, doc, head: bool, headers=None) -> None:
        self._send(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode(), head)

    def _send(self, status: int, headers: dict, body: bytes, head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 that counts what passes through it.

    ``routes`` maps a port the client asks for to the port actually used (a hub reachable only
    through the proxy); every target must be 127.0.0.1 or localhost, anything else gets 502.
    """

    def __init__(self, routes: dict[int, int] | None = None):
        self.routes = dict(routes or {})
        self.requests: list[str] = []  # "GET http://...", "CONNECT host:port"
        self._lock = threading.Lock()
        self._server = _serve(_ProxyHandler, self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def target(self, host: str, port: int) -> tuple[str, int] | None:
        if host not in ("127.0.0.1", "localhost"):
            return None
        return "127.0.0.1", self.routes.get(port, port)

    def _record(self, line: str) -> None:
        with self._lock:
            self.requests.append(line)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        proxy: ForwardProxy = self.server.hub  # type: ignore[attr-defined]
        proxy._record(f"CONNECT {self.path}")
        host, _, port = self.path.rpartition(":")
        target = proxy.target(host.strip("[]"), int(port))
        if target is None:
            self.send_error(502)
            return
        upstream = socket.create_connection(target, timeout=HANG_LIMIT)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], HANG_LIMIT)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()

    def _forward(self) -> None:
        proxy: ForwardProxy = self.server.hub  # type: ignore[attr-defined]
        proxy._record(f"{self.command} {self.path}")
        url = urlsplit(self.path)
        target = proxy.target(url.hostname or "", url.port or 80) if url.scheme == "http" else None
        if target is None:
            self.send_error(502)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*target, timeout=HANG_LIMIT)
        try:
            path = quote(url.path, safe="/%") + (f"?{url.query}" if url.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except OSError:
            self.send_error(502)
            return
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        length_header = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length_header or "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = _forward


def _serve(handler: type[BaseHTTPRequestHandler], owner, tls: tuple[str, str] | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.hub = owner  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True).start()
    return server


def _bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data, indent=2).encode()


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def self_signed_certificate(folder) -> tuple[str, str] | None:
    """(certificate, key) for 127.0.0.1, made with the openssl command; None where it is missing."""
    cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return cert, key
