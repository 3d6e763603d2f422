"""Imports point one way: the API side (app/) never reaches into the workers, the domain
never reaches into HTTP, the benchmarks and the development tools never reach into the test
suite, and no two modules need each other.

The graph is read from the source with `ast`, imports inside functions included: an import
moved into a function to dodge a circle is still a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "workers", "benchmarks", "devtools")
# What the test suite imports, and nothing it does not ship with imports back.
NOT_FROM_TESTS = ("benchmarks", "devtools")
# The domain: what the API calls and the workers call alike, with no HTTP in it.
DOMAIN = ("app.services", "app.access", "app.platform_rules")


def module_paths() -> dict[str, Path]:
    """Every module under the source packages, by dotted name (migrations are history)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            if "migrations" in relative.parts:
                continue
            parts = list(relative.parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Each dotted name `module` imports, anywhere in its body; `from a import b` names
    `a.b` (b may be a submodule) and the resolver below falls back to `a`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}"


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in, if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    modules = module_paths()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {resolve(name, modules) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_source() -> None:
    graph = import_graph()
    # A wrong root or a parser that sees nothing would pass every check below.
    assert "app.dispatch" in graph["workers.sweeper"]
    assert "app.db" in graph["app.services.posts"]
    assert "devtools.scratch" in graph["benchmarks.publish_burst"]


def test_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_app_imports_nothing_from_workers() -> None:
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == "workers")
        for module, targets in import_graph().items()
        if module.split(".")[0] == "app"
    }
    offenders = {module: targets for module, targets in offenders.items() if targets}
    assert not offenders, f"app/ must not import workers/: {offenders}"


def test_benchmarks_and_devtools_import_nothing_from_tests() -> None:
    # `tests` is not in the graph (it may import everything), so the names are read raw.
    offenders = {
        module: sorted(
            name
            for name in imported_names(module, path)
            if name == "tests" or name.startswith("tests.")
        )
        for module, path in module_paths().items()
        if module.split(".")[0] in NOT_FROM_TESTS
    }
    offenders = {module: names for module, names in offenders.items() if names}
    assert not offenders, f"benchmarks/ and devtools/ must not import tests/: {offenders}"


def test_no_import_circle() -> None:
    found = cycles(import_graph())
    assert not found, f"modules that import each other (directly or round a loop): {found}"


def test_the_domain_does_not_import_the_api() -> None:
    offenders = {
        module: sorted(t for t in targets if t == "app.api" or t.startswith("app.api."))
        for module, targets in import_graph().items()
        if any(module == d or module.startswith(f"{d}.") for d in DOMAIN)
    }
    offenders = {module: targets for module, targets in offenders.items() if targets}
    assert not offenders, f"the domain raises app.errors, never app.api: {offenders}"


def task_name_literals(path: Path) -> Iterator[str]:
    """The `crier.*` literals in the places a task name goes: a `*_TASK` constant, a beat
    entry's "task", a `name=` keyword (shared_task) or send_task's first argument."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        values: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id.endswith("_TASK") for t in targets):
                values.append(node.value)  # type: ignore[arg-type]
        elif isinstance(node, ast.Dict):
            values += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "task"
            ]
        elif isinstance(node, ast.Call):
            values += [kw.value for kw in node.keywords if kw.arg == "name"]
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "send_task" and node.args:
                values.append(node.args[0])
        for value in values:
            if isinstance(value, ast.Constant) and str(value.value).startswith("crier."):
                yield value.value


def test_each_task_name_is_spelled_once() -> None:
    spelled: dict[str, list[str]] = {}
    for module, path in module_paths().items():
        for name in task_name_literals(path):
            spelled.setdefault(name, []).append(module)
    # A parser that found nothing would pass; the publish task is always there.
    assert "crier.publish_target" in spelled
    repeated = {name: where for name, where in spelled.items() if len(where) > 1}
    assert not repeated, f"task names spelled more than once: {repeated}"
