"""The library as type checkers and editors see it: every public name annotated, mypy infers no ``Any``
for them in a user's script, and ``dir(lora_registry)`` lists the lazily imported names."""

from __future__ import annotations

import inspect
import os
import re
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

import lora_registry as lr
from helpers import ROOT

#: a user's script: each ``reveal_type`` line's expected type (mypy's spelling); none may involve ``Any``
USER_SCRIPT = """
    import lora_registry as lr
    from lora_registry import AdapterPlan, Cost, LoraRegistryError, LoraSettings, ModelMap, Resolution

    m = lr.inspect("examples/llama-3.1-8b", fast=True)
    r = lr.resolve(m, "q,v,ffn", layers="0-7")
    settings = LoraSettings.from_preset(None, r=8, ranks={"ffn": 4})
    plan = r.plan(settings)

    reveal_type(lr.inspect)  # def (model: str | os.PathLike[str] | transformers
    reveal_type(lr.resolve)  # def (model: str | os.PathLike[str] | transformers
    reveal_type(m)  # lora_registry.inspection.ModelMap
    reveal_type(m.leaves)  # tuple[lora_registry.tree.Leaf, ...]
    reveal_type(m.roles)  # typing.Mapping[str, str | None]
    reveal_type(m.null_reasons)  # typing.Mapping[str, str]
    reveal_type(m.config)  # typing.Mapping[str, int | float | str | bool | None]
    reveal_type(m.module)  # torch.nn.modules.module.Module
    reveal_type(m.parameter_totals())  # dict[str, int]
    reveal_type(r)  # lora_registry.resolution.Resolution
    reveal_type(r.modules)  # dict[str, list[str]]
    reveal_type(r.parameters)  # dict[str, list[str]]
    reveal_type(r.warnings)  # list[str]
    reveal_type(r.target_modules())  # list[str] | str
    reveal_type(r.target_parameters())  # list[str]
    reveal_type(r.lora_config(r=8, lora_alpha=16, ranks={"ffn": 4}))  # peft.tuners.lora.config.LoraConfig
    reveal_type(r.trainable_parameters(r=8))  # int
    reveal_type(r.cost(r=8))  # lora_registry.plan.Cost
    reveal_type(settings)  # lora_registry.settings.LoraSettings
    reveal_type(settings.extra)  # typing.Mapping[str, object]
    reveal_type(plan)  # lora_registry.plan.AdapterPlan
    reveal_type(plan.lora_config())  # peft.tuners.lora.config.LoraConfig
    reveal_type(plan.adapter_config())  # str
    reveal_type(plan.target_modules)  # list[str] | str
    reveal_type(plan.leaf_ranks)  # dict[str, int]
    reveal_type(plan.cost.total)  # int
    reveal_type(plan.cost.share)  # float | None
    reveal_type(plan.cost.memory("bf16"))  # dict[str, int]
    reveal_type(lr.get_plugin_host())  # lora_registry.host.PluginHost
    reveal_type(lr.__version__)  # str

    def total(resolution: Resolution, model_map: ModelMap, p: AdapterPlan, c: Cost) -> int:
        try:
            return resolution.trainable_parameters() + model_map.base_parameters + c.total
        except lr.RoleError as exc:
            reveal_type(exc)  # lora_registry.errors.RoleError
            return len(str(exc))
        except LoraRegistryError:
            return 0
"""


def test_mypy_sees_the_public_api_without_any(tmp_path):
    """mypy, with --strict's checks and --disallow-any-expr on the script, passes and infers the documented types.

    The JSON documents (``to_dict()``) and ``LoraConfig`` keyword dicts (``lora_kwargs()``) are
    ``dict[str, Any]`` by design, as ``json.loads`` is, so the script does not use them. The strict
    flags sit in the script itself, so every other module is checked with the project's own options
    and the project's ``.mypy_cache`` (warm after ``mypy`` ran, as in CI) serves torch, transformers and PEFT.
    """
    from mypy import api

    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    expected = [line.split("# ", 1)[1].strip() for line in script.read_text().splitlines() if "reveal_type(" in line]
    args = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache")]
    args += ["--python-executable", sys.executable, "--no-error-summary", str(script)]
    source_tree = _mypy_path(tmp_path)
    old = os.environ.get("MYPYPATH")
    try:
        if source_tree:
            os.environ["MYPYPATH"] = source_tree
        stdout, stderr, status = api.run(args)
    finally:
        if old is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = old
    notes = [line for line in stdout.splitlines() if ": note: Revealed type is" in line]
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert not errors and status == 0, stdout + stderr
    revealed = [re.search(r'Revealed type is "(.*)"$', note).group(1) for note in notes]
    assert len(revealed) == len(expected)
    for got, want in zip(revealed, expected):
        assert "Any" not in got, got
        assert got.startswith(want), (got, want)


def _mypy_path(tmp_path: Path) -> str | None:
    """None when lora_registry is installed as a package (mypy reads it and its py.typed from site-packages);
    for a source or editable install, a folder where ``lora_registry`` links core/ and ``lora_registry/plugins``
    plugins/, since mypy does not follow setuptools' editable import hook."""
    if ROOT / "core" not in Path(lr.__file__).resolve().parents:
        return None
    package = tmp_path / "mypy-path" / "lora_registry"
    package.mkdir(parents=True)
    for entry in (ROOT / "core").iterdir():
        os.symlink(entry, package / entry.name)
    os.symlink(ROOT / "plugins", package / "plugins")
    return str(package.parent)


PUBLIC_CLASSES = ("ModelMap", "Resolution", "AdapterPlan", "Cost", "LoraSettings", "PluginHost", "ModuleTree")
PUBLIC_FUNCTIONS = ("inspect", "resolve", "get_plugin_host", "get_plugin_manager")


def _callables():
    for name in PUBLIC_FUNCTIONS:
        yield name, getattr(lr, name)
    for cls_name in PUBLIC_CLASSES:
        cls = getattr(lr, cls_name)
        for attr, value in vars(cls).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            if isinstance(value, property):
                value = value.fget
            elif isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
            if inspect.isfunction(value):
                yield f"{cls_name}.{attr}", value


@pytest.mark.parametrize("name,function", list(_callables()), ids=[name for name, _ in _callables()])
def test_every_public_function_and_method_is_annotated(name, function):
    signature = inspect.signature(function)
    missing = [
        p.name for p in signature.parameters.values() if p.name not in ("self", "cls") and p.annotation is p.empty
    ]
    assert not missing, f"{name}: parameters without a type: {missing}"
    assert signature.return_annotation is not signature.empty, f"{name}: no return type"


def test_dir_lists_the_lazily_imported_names():
    names = dir(lr)
    assert set(lr.__all__) <= set(names)
    for lazy in ("inspect", "resolve", "ModelMap", "Resolution", "LoraSettings", "AdapterPlan", "__version__"):
        assert lazy in names
    for name in lr.__all__:
        assert getattr(lr, name) is not None
    assert lr.__version__ == version("lora-registry")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lr.nope  # noqa: B018
