"""The hub: revisions online and from the cache, one precise line per failure, bounded time, proxies,
remote code fetched only when trusted.

Every run talks to a real HTTP server in this process (``hubserver.FakeHub``, answering as the hub
does) through ``HF_ENDPOINT``, with a fresh ``HF_HOME``; the command line runs as a real subprocess
(huggingface_hub reads its settings when imported). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import TINY, Run, assert_one_line_error, cli, subprocess_env
from hubserver import FakeHub, ForwardProxy, self_signed_certificate
from lora_registry import hub as lr_hub
from lora_registry.errors import ModelLoadError

#: q,v at r8 on TINY, per layer: q is 64 -> 64, v is 64 -> 32 (2 key-value heads); THREE has a third layer
QV_PER_LAYER = 8 * (64 + 64) + 8 * (64 + 32)
QV_2_LAYERS, QV_3_LAYERS = 2 * QV_PER_LAYER, 3 * QV_PER_LAYER
THREE = {**TINY, "num_hidden_layers": 3}
_SCRIPT = Path(sys.executable).with_name("lora-registry")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "lora_registry"]


def run_cli(*runs, timeout: float = 120) -> list[Run]:
    """``lora-registry ARGS`` for each ``(args, env)``, side by side, as the installed script runs."""
    procs = [
        subprocess.Popen([*CLI, *map(str, args)], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for args, env in runs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(Run(proc.returncode, out, err))
    return results


def hub_env(hub: FakeHub, home: Path, **extra: str | None) -> dict[str, str]:
    """A fresh environment whose hub is ``hub`` and whose HF cache lies in ``home``."""
    return subprocess_env(**{"HF_HOME": str(home), "HF_ENDPOINT": hub.url, **extra})


def resolve_args(model: str, *more: str) -> list[str]:
    return ["resolve", model, "--roles", "q,v", "-f", "json", *more]


def trainable(run: Run) -> int:
    assert run.code == 0, run
    return json.loads(run.stdout)["trainable_parameters"]


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: a connection is refused at once
    return port


def point_huggingface_hub_at(hub: FakeHub, home: Path, monkeypatch) -> None:
    """In this process, what HF_ENDPOINT=hub.url and HF_HOME=home would have made of huggingface_hub's settings."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # the user-agent registry is fetched from it
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))  # and kept there
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture(autouse=True)
def _only_127_0_0_1(monkeypatch):
    """In this process, a name other than 127.0.0.1 or localhost is never even looked up."""
    lookup = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1", b"localhost"):
            raise OSError(f"test tried to reach {host!r}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


@pytest.fixture
def hub():
    with FakeHub(tokens=("hf_reader", "hf_granted")) as server:
        yield server


# ============================================================================ revisions


def test_revision_by_branch_tag_and_commit_online_then_from_the_cache(hub, tmp_path):
    main = hub.add_repo("acme/tiny", {"config.json": TINY})
    hub.commit("acme/tiny", {"config.json": THREE}, branch="three-layers", tag="v1.0")
    cases = {  # HF_HOME -> (CLI arguments, resolve path the hub must see, expected q,v parameters)
        "main": (resolve_args("acme/tiny"), "/resolve/main/", QV_2_LAYERS),
        "branch": (resolve_args("acme/tiny", "--revision", "three-layers"), "/resolve/three-layers/", QV_3_LAYERS),
        "tag": (resolve_args("acme/tiny@v1.0"), "/resolve/v1.0/", QV_3_LAYERS),
        "commit": (["inspect", f"acme/tiny@{main}", "--json"], f"/resolve/{main}/", None),
    }
    homes = {name: tmp_path / name for name in cases}
    online = run_cli(*[(args, hub_env(hub, homes[name])) for name, (args, _, _) in cases.items()])
    for (name, (_, path, expected)), run in zip(cases.items(), online):
        if expected is not None:
            assert trainable(run) == expected, name
        else:
            assert run.code == 0 and json.loads(run.stdout)["model"] == f"acme/tiny@{main}", run
        assert hub.count("HEAD", path + "config.json") >= 1 and hub.count("GET", path + "config.json") == 1, name
    # HEAD + HEAD + GET per download (ours, bounded, then hf_hub_download's): never main for another revision
    assert hub.count(contains="/resolve/") == 3 * len(cases)
    # Again, in the same caches: every revision is read from the cache (refs/<branch or tag>, snapshots/<sha>),
    # online or offline, by the command line and by the library's revision=; not one request.
    hub.reset()
    library = (
        "import lora_registry as lr; m = lr.inspect('acme/tiny', revision='v1.0'); print(m.model, m.base_parameters)"
    )
    cached = run_cli(
        *[(args, hub_env(hub, homes[name])) for name, (args, _, _) in cases.items()],
        *[(args, hub_env(hub, homes[name], HF_HUB_OFFLINE="1")) for name, (args, _, _) in cases.items()],
    )
    for (name, (_, _, expected)), run in zip(list(cases.items()) * 2, cached):
        assert run.code == 0 and not run.stderr, (name, run)
        if expected is not None:
            assert trainable(run) == expected, name
    done = subprocess.run(
        [sys.executable, "-c", library], env=hub_env(hub, homes["tag"]), text=True, capture_output=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split()[0] == "acme/tiny@v1.0", done.stderr
    assert hub.count() == 0, hub.requests


def test_revision_given_twice_or_to_a_non_hub_model_is_one_line():
    for args, message in [
        (
            ["resolve", "llama", "--roles", "q", "--revision", "v1"],
            "error: llama: a revision applies only to a hub id (owner/name)",
        ),
        (
            ["inspect", "acme/tiny@v1", "--revision", "v2"],
            "error: acme/tiny@v1: two revisions given, 'v1' in the id and 'v2'",
        ),
        (["inspect", "acme/tiny@"], "error: acme/tiny@: '' is not a branch, tag or commit name"),
        (["compare", "acme/tiny", "--revision", "a b"], "error: acme/tiny: 'a b' is not a branch, tag or commit name"),
        (
            ["scaffold", "mistral", "--revision", "v1"],
            "error: mistral: a revision applies only to a hub id (owner/name)",
        ),
        (
            ["explain", "adapter_config.json", "acme/tiny@v1", "--revision", "v2"],
            "error: acme/tiny@v1: two revisions given, 'v1' in the id and 'v2'",
        ),
        (
            ["inspect", "acme/a/b"],
            "error: 'acme/a/b' is not a valid hub id (owner/name or owner/name@revision), path or model_type",
        ),
    ]:
        run = cli(*args)
        assert assert_one_line_error(run) == message


def test_hub_ids_and_the_cache_lookup(tmp_path, monkeypatch):
    assert lr_hub.parse_hub_id("Qwen/Qwen3-8B") == ("Qwen/Qwen3-8B", None)
    assert lr_hub.parse_hub_id("Qwen/Qwen3-8B@two-layers") == ("Qwen/Qwen3-8B", "two-layers")
    assert lr_hub.parse_hub_id("acme/x@refs/pr/1") == ("acme/x", "refs/pr/1")
    for bad in ("Qwen3-8B", "a/b/c", "a--b/c", "acme/x@", "acme/x@a..b", "/x@main"):
        with pytest.raises(ModelLoadError):
            lr_hub.parse_hub_id(bad)
    assert lr_hub.with_revision("acme/x", None) == "acme/x"
    assert lr_hub.with_revision("acme/x", "v1") == lr_hub.with_revision("acme/x@v1", "v1") == "acme/x@v1"
    # the layout huggingface_hub writes: refs/<branch or tag> holds the commit, snapshots/<commit>/ the files
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--acme--x"
    old, new = "1" * 40, "2" * 40
    for commit, layers in ((old, 2), (new, 3)):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text(json.dumps({**TINY, "num_hidden_layers": layers}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(old)
    (repo / "refs" / "v2").write_text(new)
    assert lr_hub.cached_file("acme/x") == repo / "snapshots" / old / "config.json"
    assert lr_hub.cached_file("acme/x", revision="v2") == repo / "snapshots" / new / "config.json"
    assert lr_hub.cached_file("acme/x", revision=new) == repo / "snapshots" / new / "config.json"
    assert lr_hub.cached_file("acme/x", revision="v3") is None
    assert lr_hub.cached_file("acme/x", "modeling_x.py") is None


def test_the_fake_hub_answers_huggingface_hubs_own_client(hub, tmp_path, monkeypatch):
    """The fake is only worth what huggingface_hub makes of it: its own calls, its own exception types."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RemoteEntryNotFoundError, RevisionNotFoundError

    point_huggingface_hub_at(hub, tmp_path, monkeypatch)
    main = hub.add_repo("acme/tiny", {"config.json": TINY})
    tagged = hub.commit("acme/tiny", {"config.json": THREE}, branch="three-layers", tag="v1.0")
    hub.add_repo("acme/gated", {"config.json": TINY}, gated=True)
    api = HfApi(endpoint=hub.url, token=False)
    assert api.model_info("acme/tiny").sha == main and api.model_info("acme/tiny", revision="v1.0").sha == tagged
    path = hf_hub_download("acme/tiny", "config.json", revision="three-layers", cache_dir=tmp_path, token=False)
    assert Path(path) == tmp_path / "models--acme--tiny" / "snapshots" / tagged / "config.json"
    assert (tmp_path / "models--acme--tiny" / "refs" / "three-layers").read_text() == tagged
    for repo, file, revision, error in (
        ("acme/gated", "config.json", None, GatedRepoError),
        ("acme/tiny", "nope.json", None, RemoteEntryNotFoundError),
        ("acme/tiny", "config.json", "nope", RevisionNotFoundError),
    ):
        with pytest.raises(error):
            hf_hub_download(repo, file, revision=revision, cache_dir=tmp_path, token=False)


# ============================================================================ one line per failure


def test_each_failure_is_one_precise_line(hub, tmp_path):
    hub.add_repo("acme/tiny", {"config.json": TINY})
    hub.add_repo("acme/gated", {"config.json": TINY}, gated=True, granted={"hf_granted"})
    hub.add_repo("acme/private", {"config.json": TINY}, private=True, granted={"hf_granted"})
    hub.add_repo("acme/weights-only", {"model.safetensors": b"\0" * 16})
    hub.add_repo("acme/down", {"config.json": TINY})
    hub.repos["acme/down"].status = 500
    url, closed = hub.url, free_port()
    cases = [  # (CLI arguments, extra environment, the exact stderr line)
        (
            ["acme/gated"],
            {},
            f"acme/gated: gated repo; request access at {url}/acme/gated, then set HF_TOKEN or run `hf auth login`",
        ),
        (
            ["acme/gated"],
            {"HF_TOKEN": "hf_reader"},
            f"acme/gated: gated repo, and the token in use has no access to it; request access at {url}/acme/gated "
            "(or set HF_TOKEN to a token of an account that has it)",
        ),
        (
            ["acme/absent"],
            {},
            f"acme/absent: no repo acme/absent on {url} (if it is private, set HF_TOKEN or run `hf auth login`)",
        ),
        (
            ["acme/private"],
            {"HF_TOKEN": "hf_reader"},
            f"acme/private: no repo acme/private on {url}, or the token in use cannot see it",
        ),
        (
            ["acme/tiny"],
            {"HF_TOKEN": "hf_revoked"},
            "acme/tiny: the hub refused the token in use (401); fix HF_TOKEN or run `hf auth login`",
        ),
        (["acme/weights-only"], {}, "acme/weights-only: the repo has no config.json at revision 'main'"),
        (["acme/tiny@nope"], {}, "acme/tiny@nope: the repo has no branch, tag or commit 'nope'"),
        (["acme/down"], {}, "acme/down: the hub answered 500 (server error) for config.json; try again later"),
        (
            ["acme/tiny"],
            {"HF_ENDPOINT": f"http://127.0.0.1:{closed}"},
            f"acme/tiny: the hub at http://127.0.0.1:{closed} is not reachable (",
        ),
        (
            ["acme/tiny", "--revision", "v2"],
            {"HF_HUB_OFFLINE": "1"},
            "acme/tiny@v2: config.json is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "run `hf download acme/tiny config.json --revision v2` where the hub is reachable, or pass a local path",
        ),
    ]
    runs = run_cli(
        *[(resolve_args(*args), hub_env(hub, tmp_path / str(i), **env)) for i, (args, env, _) in enumerate(cases)]
    )
    for (_, _, expected), run in zip(cases, runs):
        line = assert_one_line_error(run)
        if expected.endswith("("):  # the reason after it is the operating system's wording
            assert line.startswith("error: " + expected) and "check the network and HTTPS_PROXY" in line, line
        else:
            assert line == "error: " + expected
    # offline: not one request; the granted token gets the gated and the private config (the token is checked)
    assert hub.count(contains="/v2/") == 0
    granted = run_cli(
        *[
            (resolve_args(repo), hub_env(hub, tmp_path / f"granted-{i}", HF_TOKEN="hf_granted"))
            for i, repo in enumerate(("acme/gated", "acme/private"))
        ]
    )
    assert [trainable(run) for run in granted] == [QV_2_LAYERS] * 2


# ============================================================================ bounded time


def test_a_failing_or_silent_hub_costs_seconds_not_minutes(hub, tmp_path):
    # huggingface_hub alone retries a 500 for 26-29 s and waits out a silent hub for about 400 s
    hub.add_repo("acme/down", {"config.json": TINY})
    hub.repos["acme/down"].status = 500
    with FakeHub() as silent, FakeHub() as stalled:
        silent.hang = "all"  # accepts, never answers
        stalled.add_repo("acme/tiny", {"config.json": TINY})
        stalled.hang = "GET"  # answers HEAD, then never sends the file
        start = time.monotonic()
        procs = [
            subprocess.Popen(
                [*CLI, *resolve_args(model)],
                env=hub_env(server, tmp_path / name),
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for name, server, model in (
                ("500", hub, "acme/down"),
                ("silent", silent, "acme/tiny"),
                ("stalled", stalled, "acme/tiny"),
            )
        ]
        runs, elapsed = [], []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            runs.append(Run(proc.returncode, out, err))
            elapsed.append(time.monotonic() - start)
    server_error, no_answer, no_file = runs
    assert_one_line_error(server_error, "the hub answered 500 (server error)")
    assert hub.count("HEAD") == 3 and hub.count("GET", "/resolve/") == 0  # ours: 3 tries in 3 s, no hf retry loop
    assert_one_line_error(no_answer, f"acme/tiny: {silent.url} did not answer within 10 s")
    assert_one_line_error(no_file, f"acme/tiny: {stalled.url} did not deliver config.json within 15 s")
    # the three ran side by side: each elapsed time includes starting Python and importing torch
    assert elapsed[0] < 15 and elapsed[1] < 20 and elapsed[2] < 20, elapsed
    print(f"\nwall times: 500 {elapsed[0]:.1f} s, silent hub {elapsed[1]:.1f} s, stalled download {elapsed[2]:.1f} s")


# ============================================================================ proxies


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_hub_reachable_only_through_the_proxy(tmp_path, scheme):
    # HF_ENDPOINT names a port nothing listens on; only the proxy knows the way (a proxy-only network)
    tls = None
    if scheme == "https":
        tls = self_signed_certificate(tmp_path)
        if tls is None:
            pytest.skip("no openssl command to make a certificate for the https hub")
    closed = free_port()
    with FakeHub(tls=tls) as server, ForwardProxy({closed: server.port}) as proxy:
        server.add_repo("acme/tiny", {"config.json": TINY})
        endpoint = f"{scheme}://127.0.0.1:{closed}"
        env = subprocess_env(
            HF_HOME=str(tmp_path / "hf"),
            HF_ENDPOINT=endpoint,
            HTTP_PROXY=proxy.url,
            HTTPS_PROXY=proxy.url,
            SSL_CERT_FILE=tls[0] if tls else None,
        )
        direct = subprocess_env(
            HF_HOME=str(tmp_path / "direct"), HF_ENDPOINT=endpoint, SSL_CERT_FILE=tls[0] if tls else None
        )
        through, without = run_cli((resolve_args("acme/tiny"), env), (resolve_args("acme/tiny"), direct))
        assert trainable(through) == QV_2_LAYERS
        assert_one_line_error(without, "is not reachable")
        if scheme == "http":  # plain requests, each through the proxy
            assert f"GET {endpoint}/acme/tiny/resolve/main/config.json" in proxy.requests, proxy.requests
            assert all(line.split()[1].startswith(endpoint) for line in proxy.requests)
        else:  # one CONNECT tunnel per connection, the requests inside it encrypted
            assert proxy.requests and all(line == f"CONNECT 127.0.0.1:{closed}" for line in proxy.requests)
        assert server.count("GET", "/acme/tiny/resolve/main/config.json") == 1


# ============================================================================ redirects


def test_renamed_repo_and_lfs_like_redirects_are_followed(hub, tmp_path):
    hub.add_repo("acme/tiny", {"config.json": TINY})
    hub.rename("acme/old-name", "acme/tiny")
    hub.add_repo("acme/lfs", {"config.json": THREE}, lfs={"config.json"})
    renamed, lfs = run_cli(
        (resolve_args("acme/old-name"), hub_env(hub, tmp_path / "renamed")),
        (resolve_args("acme/lfs"), hub_env(hub, tmp_path / "lfs")),
    )
    assert trainable(renamed) == QV_2_LAYERS and trainable(lfs) == QV_3_LAYERS
    assert hub.count("HEAD", "/acme/old-name/resolve/main/config.json") >= 1  # answered 307, relative Location
    assert hub.count("GET", "/acme/tiny/resolve/main/config.json") == 1
    assert hub.count("GET", "/cdn/") == 1  # the file itself from the other origin, as from the hub's CDN


# ============================================================================ remote code

CONFIGURATION = """
from pathlib import Path

from transformers import PretrainedConfig

Path({marker!r}).write_text("remote code ran")


class AcmeConfig(PretrainedConfig):
    model_type = "acme_remote"

    def __init__(self, hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=128, **kwargs):
        self.hidden_size, self.intermediate_size = hidden_size, intermediate_size
        self.num_hidden_layers, self.vocab_size = num_hidden_layers, vocab_size
        super().__init__(**kwargs)
"""
MODELING = """
from torch import nn
from transformers import PreTrainedModel

from .configuration_acme import AcmeConfig
from .layers_acme import AcmeBlock


class AcmeForCausalLM(PreTrainedModel):
    config_class = AcmeConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(AcmeBlock(config) for _ in range(config.num_hidden_layers))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
"""
LAYERS = """
from torch import nn

from .activations_acme import ACT


class AcmeAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        d = config.hidden_size
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d, bias=False) for _ in range(4))


class AcmeBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self_attn = AcmeAttention(config)
        self.mlp = nn.Sequential(nn.Linear(config.hidden_size, config.intermediate_size, bias=False), ACT,
                                 nn.Linear(config.intermediate_size, config.hidden_size, bias=False))
"""
#: the code files a model needs (auto_map's two, then their relative imports) and two it does not
CODE = {
    "configuration_acme.py": CONFIGURATION,
    "modeling_acme.py": MODELING,
    "layers_acme.py": LAYERS,
    "activations_acme.py": "from torch import nn\n\nACT = nn.SiLU()\n",
    "tokenization_acme.py": "raise SystemExit('never fetched')\n",
    "unused.py": "raise SystemExit('never fetched')\n",
}
REMOTE = {
    "model_type": "acme_remote",
    "architectures": ["AcmeForCausalLM"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "vocab_size": 128,
}


def test_remote_code_by_hub_id_is_fetched_only_with_the_flag(hub, tmp_path):
    marker = tmp_path / "MARKER"
    code = {**CODE, "configuration_acme.py": CONFIGURATION.format(marker=str(marker))}
    auto_map = {
        "AutoConfig": "configuration_acme.AcmeConfig",
        "AutoModelForCausalLM": "modeling_acme.AcmeForCausalLM",
        "AutoTokenizer": ["tokenization_acme.AcmeTokenizer", None],
    }
    hub.add_repo("acme/remote", {"config.json": {**REMOTE, "auto_map": auto_map}, **code})
    # the same code in its own repo, named from another model's config: "acme/code--module.Class"
    hub.add_repo("acme/code", code)
    elsewhere = {key: f"acme/code--{value}" for key, value in auto_map.items() if key != "AutoTokenizer"}
    hub.add_repo("acme/remote-ref", {"config.json": {**REMOTE, "auto_map": elsewhere}})
    # without the flag: the config is read (it says remote code is needed), no code is fetched, none runs
    refused = run_cli(
        *[
            (resolve_args(model), hub_env(hub, tmp_path / model.replace("/", "-")))
            for model in ("acme/remote", "acme/remote-ref")
        ]
    )
    for run in refused:
        assert_one_line_error(run, "asks for remote code (auto_map)", "--trust-remote-code")
    assert hub.count(contains=".py") == 0 and not marker.exists()
    # with it: exactly the files the model needs, then the model built on the meta device
    hub.reset()
    trusted = run_cli(
        *[
            (resolve_args(model, "--trust-remote-code"), hub_env(hub, tmp_path / model.replace("/", "-")))
            for model in ("acme/remote", "acme/remote-ref")
        ]
    )
    for run in trusted:
        assert run.code == 0, run
        doc = json.loads(run.stdout)
        assert doc["target_modules"] == ["q_proj", "v_proj"] and doc["trainable_parameters"] == 2 * 2 * 8 * (64 + 64)
    assert marker.read_text() == "remote code ran"
    needed = {"configuration_acme.py", "modeling_acme.py", "layers_acme.py", "activations_acme.py"}
    fetched = {line.rsplit("/", 1)[1] for line in hub.files_requested() if line.startswith("GET") and ".py" in line}
    assert fetched == needed, hub.files_requested()
    # afterwards the cache serves both models offline, with no request
    hub.reset()
    offline = run_cli(
        *[
            (
                resolve_args(model, "--trust-remote-code"),
                hub_env(hub, tmp_path / model.replace("/", "-"), HF_HUB_OFFLINE="1"),
            )
            for model in ("acme/remote", "acme/remote-ref")
        ]
    )
    assert [trainable(run) for run in offline] == [2 * 2 * 8 * (64 + 64)] * 2
    assert hub.count() == 0, hub.requests


def test_a_missing_remote_code_file_is_one_line(hub, tmp_path):
    auto_map = {"AutoConfig": "configuration_acme.AcmeConfig", "AutoModelForCausalLM": "modeling_acme.AcmeForCausalLM"}
    files = {k: v for k, v in CODE.items() if k != "layers_acme.py"}
    files["configuration_acme.py"] = CONFIGURATION.format(marker=str(tmp_path / "MARKER"))
    commit = hub.add_repo("acme/broken-code", {"config.json": {**REMOTE, "auto_map": auto_map}, **files})
    (run,) = run_cli((resolve_args("acme/broken-code", "--trust-remote-code"), hub_env(hub, tmp_path / "hf")))
    assert assert_one_line_error(run) == (
        f"error: acme/broken-code: the repo has no layers_acme.py at revision '{commit}' (the remote code needs it)"
    )
    assert not (tmp_path / "MARKER").exists()  # nothing ran before every file was there


def test_an_uncached_hub_id_takes_the_fast_path_on_its_first_call(hub, tmp_path):
    # The config is downloaded without torch, then a plugin's module tree answers: no model is built.
    from helpers import probe_cli

    hub.add_repo("acme/tiny", {"config.json": TINY})
    env = {**hub_env(hub, tmp_path / "home"), "LORA_REGISTRY_NO_CACHE": "1"}
    first = probe_cli(*resolve_args("acme/tiny"), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[-1] == "LOADED=", first.stderr
    assert json.loads(first.stdout)["trainable_parameters"] == QV_2_LAYERS
    assert hub.count("GET", "/acme/tiny/resolve/main/config.json") == 1


def test_fast_map_reads_the_revision_it_is_given(hub, tmp_path, monkeypatch):
    # fast_map(..., revision=) reads that revision's config.json, not main's (the library's own lookup).
    hub.add_repo("acme/tiny", {"config.json": TINY})
    hub.commit("acme/tiny", {"config.json": THREE}, branch="three-layers")
    point_huggingface_hub_at(hub, tmp_path / "home", monkeypatch)
    import lora_registry as lr
    from lora_registry.inspection import fast_map

    host = lr.get_plugin_host(entry_points=False)
    main, three = fast_map("acme/tiny", host), fast_map("acme/tiny", host, revision="three-layers")
    assert (main.config["num_hidden_layers"], three.config["num_hidden_layers"]) == (2, 3)
    assert three.model == "acme/tiny@three-layers"


def test_load_recipe_reads_the_revision_it_is_given(hub, tmp_path, monkeypatch):
    # load_recipe(..., revision=) (the memory simulation's rebuild) reads that revision's config, not main's.
    hub.add_repo("acme/tiny", {"config.json": TINY})
    hub.commit("acme/tiny", {"config.json": THREE}, branch="three-layers")
    point_huggingface_hub_at(hub, tmp_path / "home", monkeypatch)
    from lora_registry.loading import load_recipe

    main, three = load_recipe("acme/tiny"), load_recipe("acme/tiny", revision="three-layers")
    assert (main.config.num_hidden_layers, three.config.num_hidden_layers) == (2, 3)
    assert three.label == "acme/tiny@three-layers"
