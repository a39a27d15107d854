"""The house rules of src/mbgd, read off the source: layers that import down only, no import circle, no module
over 400 lines, the libraries' private names only in their adapter modules, and README's layout in step with
the packages."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "mbgd"
# What each package may import of mbgd (its docstring says the same in words).
MAY_IMPORT = {
    "runtime": set(),
    "core": set(),
    "studies": {"core", "runtime"},
    "tracking": {"core", "runtime"},
    "reports": {"core", "studies"},
    "pipelines": {"core", "runtime", "studies", "tracking", "reports"},
    "cli": {"core", "runtime", "studies", "tracking", "reports", "pipelines"},
}
ADAPTERS = {"mbgd.tracking.mlflow_internals": "mlflow", "mbgd.studies.optuna_internals": "optuna"}
LIBRARIES = ("mlflow", "optuna", "sqlalchemy")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = ("mbgd", *path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def mbgd_imports(name: str) -> set[str]:
    """Every mbgd module `name` imports, at the top, in a function or for type checking alike."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mbgd":
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            found |= submodules or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
    return found - {"mbgd"}


def package_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else None


def test_every_module_lives_in_a_layer_package_whose_docstring_says_what_it_may_import() -> None:
    loose = [name for name in MODULES if package_of(name) is None and name not in ("mbgd", "mbgd.__main__")]
    assert loose == []
    for package in MAY_IMPORT:
        docstring = ast.get_docstring(ast.parse((SOURCE / package / "__init__.py").read_text())) or ""
        assert "May import:" in docstring, package


def test_imports_point_down_the_layers_only() -> None:
    upward = []
    for name in MODULES:
        package = package_of(name)
        if package is None:
            continue
        for imported in mbgd_imports(name):
            target = package_of(imported)
            if target not in (package, None) and target not in MAY_IMPORT[package]:
                upward.append(f"{name} -> {imported}")
    assert upward == []


def test_no_import_circle() -> None:
    graph = {name: mbgd_imports(name) for name in MODULES}
    state: dict[str, str] = {}
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                circles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_no_module_over_400_lines() -> None:
    long = {
        name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def private_uses(tree: ast.AST) -> list[str]:
    """Private names reached on another object (not self or cls; also through getattr, hasattr or setattr
    with a constant name) or imported from MLflow, Optuna or SQLAlchemy, and their private tables' modules;
    os._exit and a named tuple's _replace are public."""
    uses = []

    def private(dotted: str) -> bool:
        return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner not in ("self", "cls") and ast.unparse(node) != "os._exit" and node.attr != "_replace":
                uses.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("getattr", "hasattr", "setattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and private(name.value):
                uses.append(f"{node.lineno}: {ast.unparse(node.func)}(..., {name.value!r})")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            if private(node.module) or any(private(name) for name in names):
                uses.append(f"{node.lineno}: from {node.module} import ...")
            if any("dbmodels" in name for name in [node.module, *names]):
                uses.append(f"{node.lineno}: {node.module}'s table models")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES and (
                    private(alias.name) or "dbmodels" in alias.name
                ):
                    uses.append(f"{node.lineno}: import {alias.name}")
    return uses


def test_private_library_names_only_in_the_adapter_modules() -> None:
    found = {
        name: uses
        for name, path in MODULES.items()
        if name not in ADAPTERS and (uses := private_uses(ast.parse(path.read_text())))
    }
    assert found == {}


def test_the_private_name_check_finds_what_it_guards() -> None:
    caught = private_uses(
        ast.parse(
            "study._storage\n"
            "from optuna.storages._rdb import models\n"
            "from mlflow.utils.validation import _validate_model_name\n"
            "self._x\n"
            "os._exit(0)\n"
            "getattr(storage, '_backend', storage)\n"
            "import optuna.storages._rdb.models as m\n"
            "from mlflow.store.tracking import dbmodels\n"
            "parts._replace(a=1)\n"
        )
    )
    assert sorted(caught) == [
        "1: study._storage",
        "2: from optuna.storages._rdb import ...",
        "3: from mlflow.utils.validation import ...",
        "6: getattr(..., '_backend')",
        "7: import optuna.storages._rdb.models",
        "8: mlflow.store.tracking's table models",
    ]


def test_no_relative_import_hides_a_layer() -> None:
    relative = [
        f"{name}:{node.lineno}"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_each_adapter_says_which_versions_it_was_verified_on(adapter: str) -> None:
    text = MODULES[adapter].read_text()
    assert re.search(r"^VERIFIED_VERSIONS = ", text, re.M), adapter


def test_readme_layout_names_every_module_with_its_first_docstring_line() -> None:
    spec = importlib.util.spec_from_file_location("layout", ROOT / "tools" / "layout.py")
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- layout: tools/layout.py -->\n```\n", 1)[1].split("```", 1)[0]
    assert block.splitlines() == layout.layout_lines(SOURCE)
