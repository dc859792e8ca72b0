"""Structure checks a reader can repeat: imports in the product and the benchmarks go one way.

Every module of `homeowner_dagster/` and `bench/` is read with `ast` (imports at module level and
inside functions alike, and `importlib.import_module("literal")`), so an import tucked into a
function to dodge a circle still counts. Two rules:

- no import circle among `homeowner_dagster` modules;
- no product or benchmark module imports the tests (`homeowner_dagster_tests`, or a `test_*`
  module of ours).

An edge goes to the module named: `from a.b import c` is an edge to `a.b.c` when that is a
module, else to `a.b`. Importing `a.b.c` also runs `a/__init__.py` and `a/b/__init__.py`, but
that is Python's way with packages, not an edge (a package's `__init__` may re-export its
submodules). The CLI's command table names its command modules as strings for
`importlib.import_module(variable)`: those are loaded on demand, not imported, and not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("collector_paused")  # see conftest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "homeowner_dagster"
TESTS = "homeowner_dagster_tests"
WALKED = (PACKAGE, "bench")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (or name, when it is not a module of the tree)
    line: int


def module_files(root: Path, folders: Iterable[str] = WALKED) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `folders` (a package is its __init__)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import `module` makes, wherever in the file it stands."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path, node)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = candidate in known or alias.name.startswith("test_")
                found.append(Import(module, candidate if is_module else base, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(module, node.args[0].value, node.lineno))
    return found


def import_graph(
    root: Path, folders: Iterable[str] = WALKED
) -> tuple[dict[str, Path], list[Import]]:
    files = module_files(root, folders)
    known = set(files)
    return files, [imp for name, path in files.items() for imp in imports_of(name, path, known)]


def circles(edges: Iterable[Import], package: str = PACKAGE) -> list[list[Import]]:
    """One import circle per strongly connected group of `package` modules (Tarjan), each as
    the imports that go round it, shortest first from the group's first module."""
    inside = [e for e in edges if _within(e.source, package) and _within(e.target, package)]
    graph: dict[str, list[Import]] = {}
    for edge in inside:
        if edge.source != edge.target:
            graph.setdefault(edge.source, []).append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph.get(node, []):
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_round_trip(group, graph) for group in sorted(groups)]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _round_trip(group: list[str], graph: dict[str, list[Import]]) -> list[Import]:
    """The shortest way from the group's first module back to itself (breadth first)."""
    start, members = group[0], set(group)
    came_by: dict[str, Import] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph.get(node, []):
            if edge.target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, came_by[path[0].source])
                return path
            if edge.target in members and edge.target not in came_by:
                came_by[edge.target] = edge
                queue.append(edge.target)
    raise AssertionError(f"no way round {group}")  # a strongly connected group always has one


def describe(circle: list[Import]) -> str:
    """`a (a.py:3) -> b (b.py:7) -> a`: each module and the line of its import of the next."""
    steps = [f"{edge.source} (line {edge.line})" for edge in circle]
    return " -> ".join(steps + [circle[0].source])


def test_no_import_circle_in_the_product() -> None:
    _, edges = import_graph(ROOT)
    found = circles(edges)
    assert not found, f"{len(found)} import circle(s) in {PACKAGE}/:\n" + "\n".join(
        describe(circle) for circle in found
    )


def is_test_code(module: str) -> bool:
    """The tests package, or a `test_*` module of ours or on the path (`import test_load` after
    a sys.path insert). Libraries' own helpers (`dagster._core.test_utils`) are not ours."""
    parts = module.split(".")
    ours = len(parts) == 1 or parts[0] in (TESTS, *WALKED)
    return parts[0] == TESTS or (ours and parts[-1].startswith("test_"))


def test_no_product_or_benchmark_module_imports_a_test_module() -> None:
    _, edges = import_graph(ROOT)
    offending = sorted(
        {f"{e.source} (line {e.line}) imports {e.target}" for e in edges if is_test_code(e.target)}
    )
    assert not offending, "product or bench imports test code:\n" + "\n".join(offending)


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    """A package with a circle hidden in a function (a -> b at module level, b -> a inside a
    function), a relative import, a leaf, and a bench script importing a test module."""
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("import json\n")
    (package / "a.py").write_text(f"from {PACKAGE}.sub import leaf\nfrom {PACKAGE} import b\n")
    (package / "b.py").write_text("def late():\n    from .a import thing\n    return thing\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench_x.py").write_text(f"from {TESTS}.test_load import prepare\n")
    return tmp_path


def test_the_walk_finds_a_circle_hidden_in_a_function(small_tree: Path) -> None:
    """The checks above can fail: the walk sees a function-level import and names the circle."""
    _, edges = import_graph(small_tree)
    found = circles(edges)
    assert [describe(c) for c in found] == [
        f"{PACKAGE}.a (line 2) -> {PACKAGE}.b (line 2) -> {PACKAGE}.a"
    ]
    targets = {(e.source, e.target) for e in edges}
    assert (f"{PACKAGE}.sub", f"{PACKAGE}.sub.leaf") in targets  # `from . import leaf`
    assert [e.source for e in edges if is_test_code(e.target)] == ["bench.bench_x"]
    assert not is_test_code("dagster._core.test_utils")
