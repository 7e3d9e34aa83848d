"""The built wheel holds one namespace, lora_registry, with registry.toml and every built-in plugin."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from helpers import ROOT
from lora_registry.host import BUILTIN_PLUGINS


def test_wheel_contents(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = tmp_path.glob("lora_registry-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lora_registry/registry.toml" in names
    assert "lora_registry/__init__.py" in names and "lora_registry/cli/__init__.py" in names
    for plugin in BUILTIN_PLUGINS:
        assert f"lora_registry/plugins/{plugin}.py" in names
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"core", "plugins"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lora-registry = lora_registry.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
