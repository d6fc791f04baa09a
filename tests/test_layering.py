"""The architecture's import rules, checked on the source (docs/testing.md, "Layering").

The graph is read from the files with `ast`, so every `import` counts: module level, inside a
function (the command line's lazy imports) and under `if TYPE_CHECKING:` (those are kept
apart only for circles, which they cannot cause at run time). A module importing
`a.b.c` depends on `a.b.c`, not on its parents' `__init__`, as import-linter counts it.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "components")
CLIENTS = ("psycopg", "psycopg_pool", "redis", "boto3", "botocore")


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    type_checking: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterable[Edge]:
    def visit(node: ast.AST, type_checking: bool) -> Iterable[Edge]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                yield from visit(stmt, True)
            for stmt in node.orelse:
                yield from visit(stmt, type_checking)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(module, alias.name, node.lineno, type_checking)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # `from pkg import module` names a module
                yield Edge(module, sub if sub in known else base, node.lineno, type_checking)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_checking)

    yield from visit(tree, False)


@functools.cache
def graph() -> tuple[Edge, ...]:
    files = {
        _module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if p.is_file()
    }
    known = set(files)
    edges: list[Edge] = []
    for name, path in sorted(files.items()):
        tree = ast.parse(path.read_text(), str(path))
        edges.extend(_imports(tree, name, path.name == "__init__.py", known))
    return tuple(edges)


def modules() -> set[str]:
    return {e.importer for e in graph()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(importers: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    """Direct imports of a `forbidden` package (or module) by one of `importers`."""
    wanted, banned = set(importers), tuple(forbidden)
    return sorted(
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in graph()
        if e.importer in wanted and any(_within(e.imported, b) for b in banned)
    )


def reachable(start: str) -> dict[str, str]:
    """Every module `start` loads, directly or through our own modules: {module: via}."""
    seen: dict[str, str] = {}
    todo = [start]
    ours = modules()
    while todo:
        current = todo.pop()
        for e in graph():
            if e.importer == current and not e.type_checking and e.imported not in seen:
                seen[e.imported] = current
                if e.imported in ours:
                    todo.append(e.imported)
    return seen


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def package_cycles(package: str) -> list[list[str]]:
    edges: dict[str, set[str]] = {}
    for e in graph():
        inside = _within(e.importer, package) and _within(e.imported, package)
        if inside and not e.type_checking and e.imported != e.importer:
            edges.setdefault(e.importer, set()).add(e.imported)
    return cycles(edges)


def in_package(package: str) -> set[str]:
    return {m for m in modules() if _within(m, package)}


# -- the checker itself can fail ---------------------------------------------------------------


def test_the_cycle_finder_finds_a_circle_and_nothing_in_a_tree() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}}) == []


def test_the_graph_sees_lazy_relative_and_type_checking_imports() -> None:
    edges = {(e.importer, e.imported) for e in graph()}
    assert ("runtime.cli", "runtime.backup.commands") in edges  # inside a function
    assert ("runtime.cli", "runtime.sidecar") in edges  # `from runtime import sidecar`
    type_only = {(e.importer, e.imported) for e in graph() if e.type_checking}
    assert ("runtime.monitoring.exposition", "runtime.cache") in type_only


# -- the rules -----------------------------------------------------------------------------------


def test_the_runtime_never_imports_pulumi_or_components() -> None:
    assert violations(in_package("runtime"), ("pulumi", "pulumi_docker", "components")) == []


def test_components_never_import_the_runtime() -> None:
    assert violations(in_package("components"), ("runtime",)) == []


@pytest.mark.parametrize(
    "module", ["runtime.settings", "runtime.errors", "runtime.contracts", "runtime.exits"]
)
def test_settings_errors_and_contracts_load_no_client_library(module: str) -> None:
    loaded = reachable(module)
    clients = {m: via for m, via in loaded.items() if any(_within(m, c) for c in CLIENTS)}
    assert clients == {}, f"{module} loads a client library (module: importer)"


def test_backups_import_no_pool_cache_or_monitoring() -> None:
    pool_and_cache = ("runtime.database", "runtime.replicas", "runtime.cache", "runtime.near_cache")
    banned = (*pool_and_cache, "runtime.monitoring", "psycopg_pool", "redis")
    assert violations(in_package("runtime.backup"), banned) == []


def test_nothing_below_the_command_line_imports_it() -> None:
    importers = in_package("runtime") - {"runtime.__main__"}
    assert violations(importers, ("runtime.cli",)) == []


def test_only_the_command_line_and_its_own_package_import_a_commands_module() -> None:
    found = [
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in graph()
        if e.imported.endswith(".commands")
        and _within(e.imported, "runtime")
        and e.importer not in ("runtime.cli", e.imported.rsplit(".", 1)[0])
    ]
    assert found == []


def _platform_modules() -> set[str]:
    """The modules that say how a service runs: Docker's (`components/docker_platform.py`
    today, `components/docker/` after the move) and Kubernetes', except each wing's
    wiring module (`stack`), which puts the services together."""
    wings = ("components.docker", "components.docker_platform", "components.kubernetes")
    return {
        m
        for m in modules()
        if any(_within(m, w) for w in wings)
        and m not in wings
        and m.rsplit(".", 1)[-1] not in ("stack", "wiring", "__main__")
    } | ({"components.docker_platform"} & modules())


def _service_modules() -> set[str]:
    """The modules that say what runs: a `components.<service>` module declaring a
    ServiceSpec, outside the platform wings."""
    found = set()
    for m in modules():
        parts = m.split(".")
        if len(parts) == 2 and parts[0] == "components" and m not in _platform_modules():
            path = ROOT / "components" / f"{parts[1]}.py"
            if path.exists() and "ServiceSpec(" in path.read_text():
                found.add(m)
    return found


def test_the_platform_and_service_module_sets_are_found() -> None:
    assert {"components.postgres", "components.redis", "components.nginx"} <= _service_modules()
    assert "components.kubernetes.platform" in _platform_modules()
    assert _platform_modules() & {"components.docker_platform", "components.docker.platform"}


def test_a_platform_module_knows_no_service_module() -> None:
    assert violations(_platform_modules(), _service_modules()) == []


def test_no_import_circles_in_the_runtime() -> None:
    assert package_cycles("runtime") == []


def test_no_import_circles_in_components() -> None:
    assert package_cycles("components") == []
