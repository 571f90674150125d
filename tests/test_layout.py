"""The layout must never shadow the stdlib ``platform`` module."""

import importlib
import sysconfig
from pathlib import Path

from conftest import REPO


def test_stdlib_platform_is_the_one_imported():
    import lmops  # noqa: F401
    import model_registry  # noqa: F401
    import pipelines  # noqa: F401

    platform = importlib.import_module("platform")
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert platform.python_version()  # the real module, with its functions


def test_no_package_named_platform():
    assert not (REPO / "platform" / "__init__.py").exists()
    assert not list(REPO.glob("tests/**/platform/__init__.py"))
    assert (REPO / "platform" / "lmops" / "__init__.py").exists()


def test_lmops_is_imported_from_the_platform_folder():
    import lmops

    assert Path(lmops.__file__).resolve().parent == REPO / "platform" / "lmops"


def test_imports_point_one_way():
    """pipelines → model_registry → lmops, never backwards (ARCHITECTURE.md)."""
    import re

    forbidden = {
        "platform/lmops": ("model_registry", "pipelines"),
        "model_registry": ("pipelines",),
    }
    for folder, banned in forbidden.items():
        for py in (REPO / folder).rglob("*.py"):
            for line in py.read_text(encoding="utf-8").splitlines():
                m = re.match(r"\s*(?:from|import)\s+([a-z_]+)", line)
                assert not (m and m.group(1) in banned), f"{py}: {line.strip()}"
