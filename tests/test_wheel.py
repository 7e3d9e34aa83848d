"""Packaging: the sdist and wheel hold one namespace, lora_registry, with registry.toml, py.typed and every
module; an editable install maps core/ and plugins/ onto it and sees edits without reinstalling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

from helpers import ROOT
from lora_registry.host import BUILTIN_PLUGINS

#: what a source checkout needs to build lora-registry (the founders' top-level layout plus the build files)
PROJECT_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "registry.toml", "core", "plugins")


def test_sdist_and_wheel_contents(tmp_path):
    # `python -m build` makes the sdist, then the wheel from the unpacked sdist: both are checked
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = tmp_path.glob("lora_registry-*.whl")
    (sdist,) = tmp_path.glob("lora_registry-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped_registry = archive.read("lora_registry/registry.toml")
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "lora_registry/py.typed" in names and shipped_registry == (ROOT / "registry.toml").read_bytes()
    # every module of the source tree ships, under its package name, and nothing else does
    sources = {f"lora_registry/{p.relative_to(ROOT / 'core')}" for p in (ROOT / "core").rglob("*.py")}
    sources |= {f"lora_registry/plugins/{p.relative_to(ROOT / 'plugins')}" for p in (ROOT / "plugins").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == sources
    for plugin in BUILTIN_PLUGINS:
        assert f"lora_registry/plugins/{plugin}.py" in names
    assert {name.split("/")[0] for name in names} == {"lora_registry", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "lora-registry = lora_registry.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
    for needed in (
        "registry.toml",
        "setup.py",
        "core/py.typed",
        "tests/test_wheel.py",
        "examples/llama-3.1-8b/config.json",
    ):
        assert needed in members, needed
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]


def test_editable_install_maps_the_folders_and_sees_edits(tmp_path):
    project = tmp_path / "project"
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    venv = _venv_with_our_dependencies(tmp_path)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    probe = (
        "import json, lora_registry, lora_registry.plugins.llama as llama\n"
        "from lora_registry.registry import builtin_registry_path, load_registry\n"
        "print(json.dumps({'init': lora_registry.__file__, 'plugin': llama.__file__,\n"
        "    'registry': str(builtin_registry_path()), 'version': lora_registry.__version__,\n"
        "    'edited': getattr(lora_registry.errors, 'EDITED', None),\n"
        "    'meaning': load_registry().roles['router']}))\n"
    )

    def look() -> dict:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    before = look()
    assert Path(before["init"]) == project / "core" / "__init__.py"
    assert Path(before["plugin"]) == project / "plugins" / "llama.py"
    assert Path(before["registry"]) == project / "registry.toml"
    assert before["version"] == "1.0.0" and before["edited"] is None
    # edits to a module and to registry.toml show without reinstalling
    with open(project / "core" / "errors.py", "a") as handle:
        handle.write("\nEDITED = 'yes'\n")
    registry = project / "registry.toml"
    registry.write_text(registry.read_text().replace(before["meaning"], "edited meaning", 1))
    after = look()
    assert after["edited"] == "yes" and after["meaning"] == "edited meaning"
    # the console script runs from the editable install too
    script = subprocess.run(
        [str(venv / "bin" / "lora-registry"), "roles", "--json"], capture_output=True, text=True, timeout=300
    )
    assert script.returncode == 0 and json.loads(script.stdout)["roles"]["router"] == "edited meaning"


def _venv_with_our_dependencies(tmp_path: Path) -> Path:
    """A venv without pip that sees this interpreter's packages (pip, setuptools, torch, ...) but not lora_registry.

    ``--system-site-packages`` would give the base interpreter's packages, not this environment's;
    a site directory of links to everything here except lora-registry's own entries gives these.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    deps = tmp_path / "deps"
    deps.mkdir()
    ours = ("lora_registry", "__editable__.lora_registry", "__editable___lora_registry")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(ours):
            os.symlink(entry, deps / entry.name)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # addsitedir also runs the .pth files there (setuptools' distutils shim among them)
    (site / "deps.pth").write_text(f"import site; site.addsitedir({str(deps)!r})\n")
    return venv
