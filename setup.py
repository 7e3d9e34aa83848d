"""Build step pyproject.toml cannot declare: ship the top-level registry.toml inside the lora_registry package.

setuptools packages only files under a package's own folder, and registry.toml sits at the
project's top (next to core/, which installs as lora_registry). An editable install needs no copy:
``lora_registry.registry.builtin_registry_path`` reads the top-level file from a source tree.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """build_py from a clean package folder, plus registry.toml."""

    def run(self) -> None:
        package = Path(self.build_lib, "lora_registry")
        if not self.editable_mode:
            # setuptools reuses build/lib between builds: a module deleted from core/ must not ship
            shutil.rmtree(package, ignore_errors=True)
        super().run()
        if not self.editable_mode:
            self.copy_file("registry.toml", str(package / "registry.toml"))


setup(cmdclass={"build_py": BuildPy})
