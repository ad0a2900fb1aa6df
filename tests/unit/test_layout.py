"""The layering of the packages, read from the source with `ast`: every import points down.

    config -> contracts -> tables -> (staleness) -> sinks -> agents -> streams -> streams/cli.py

`streams/cli.py` assembles the `runway` command: the one module that may import both the product
and `tools/` (the demo, benchmarks, traffic generator, schema docs), which the product never
imports. Imports inside functions and under `TYPE_CHECKING` count like any other.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = (
    "config",
    "contracts",
    "tables",
    "sinks",
    "agents",
    "streams",
    "registry",
    "retrain",
    "autoscale",
    "staleness",
    "stack",
)
PROJECT = (*PRODUCT, "tools")
CLI = "streams.cli"

# What each package may import of the project (besides itself).
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "contracts": {"config"},
    "tables": {"config", "contracts"},
    "staleness": {"config", "contracts", "tables"},  # pure verdicts over the join's state
    "sinks": {"config", "contracts", "tables", "staleness"},
    "agents": {"config", "contracts", "tables", "staleness", "sinks"},
    "stack": {"config", "contracts"},  # the local services and `runway` child processes
    # The worker runtime, all but streams/cli.py: nothing of the services built on it.
    "streams": {"config", "contracts", "tables", "staleness", "sinks", "agents", "stack"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(packages: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


def imports(name: str, path: Path) -> set[str]:
    """Every project module `name` imports (absolute or relative, at any depth of the code)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from package import module` imports the module too
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PROJECT}


def top(module: str) -> str:
    return module.split(".")[0]


GRAPH = {name: imports(name, path) for name, path in modules(PROJECT)}


def test_the_packages_are_found() -> None:
    assert {top(name) for name in GRAPH} == set(PROJECT)
    assert CLI in GRAPH and "contracts.codec" in GRAPH and "tools.demo" in GRAPH


def test_the_product_never_imports_a_tool() -> None:
    offending = {
        name: sorted(m for m in deps if top(m) == "tools")
        for name, deps in GRAPH.items()
        if top(name) in PRODUCT and name != CLI
    }
    assert {name: deps for name, deps in offending.items() if deps} == {}


def test_nothing_imports_the_cli() -> None:
    assert sorted(name for name, deps in GRAPH.items() if CLI in deps) == []


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_those_below(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    offending = {
        name: sorted(m for m in deps if top(m) not in allowed)
        for name, deps in GRAPH.items()
        if top(name) == package and name != CLI
    }
    assert {name: deps for name, deps in offending.items() if deps} == {}


def test_packages_import_each_other_without_cycles() -> None:
    """Between packages (the CLI aside, it is the top): a cycle would make `down` meaningless."""
    edges: dict[str, set[str]] = {package: set() for package in PROJECT}
    for name, deps in GRAPH.items():
        if name != CLI:
            edges[top(name)].update(top(m) for m in deps if top(m) != top(name) and m != CLI)
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join((*path, package))}"
        if package in done:
            return
        for dep in sorted(edges[package]):
            visit(dep, (*path, package))
        done.add(package)

    for package in PROJECT:
        visit(package, ())


def test_every_package_is_installed_type_checked_and_in_the_image() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(config["tool"]["setuptools"]["packages"]) == sorted(PROJECT)
    assert sorted(config["tool"]["mypy"]["packages"]) == sorted(PROJECT)
    for package in PROJECT:
        assert (ROOT / package / "__init__.py").is_file()
    copied = re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert sorted(copied) == sorted(PROJECT)
