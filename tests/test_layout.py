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


# The layers of docs/architecture.md, lowest first. A module may import its own layer
# and any layer below it, never one above: lazy and TYPE_CHECKING imports count too.
LAYERS = [
    {"lmops", "lmops.errors", "lmops.home", "lmops.progress", "lmops.text", "lmops.tracking",
     "lmops.ray_runtime", "lmops.side_process", "lmops.prefect_api", "lmops.prefect_api_server",
     "lmops.corpus", "lmops.run_heartbeat"},  # utilities
    {"lmops.config"},
    {"lmops.tokenizer", "lmops.models"},
    {"lmops.data"},
    {"lmops.training", "lmops.evaluation"},
    {"lmops.safety", "lmops.serving"},
    {"model_registry"},
    {"pipelines"},
]  # fmt: skip


def _group(module: str) -> str:
    top, *rest = module.split(".")
    return f"lmops.{rest[0]}" if top == "lmops" and rest else top


def _project_imports():
    """(file, line, importing group, imported group) for every project import."""
    import ast

    for folder in ("platform/lmops", "model_registry", "pipelines"):
        for py in (REPO / folder).rglob("*.py"):
            parts = py.relative_to(REPO).with_suffix("").parts
            here = _group(".".join(parts[1:] if parts[0] == "platform" else parts))
            for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in ("lmops", "model_registry", "pipelines"):
                        yield py, node.lineno, here, _group(name)


def test_every_import_points_down_the_layers():
    rank = {g: i for i, layer in enumerate(LAYERS) for g in layer}
    for py, line, here, there in _project_imports():
        for group in (here, there):
            assert group in rank, f"{py}:{line}: {group} has no layer in LAYERS"
        assert rank[there] <= rank[here], f"{py}:{line}: {here} imports {there}, a layer above"
