"""The house is one way down: no module of infolens imports (at any depth, at module level
or inside a function) a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import infolens

SRC = Path(infolens.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps |= {t for t in targets if t in mods and t != name}
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        for dep in sorted(graph[node]):
            if dep in stack:
                found.append([*stack[stack.index(dep) :], dep])
            elif len(stack) < 12:
                visit(dep, [*stack, dep])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_no_import_cycles_below_the_package_and_the_cli() -> None:
    graph = _graph()
    # a package's __init__ re-exports its modules (the root lazily; the click group
    # registers its commands): it sits on top of them by design
    for pkg in {_module(p) for p in SRC.rglob("__init__.py")}:
        graph[pkg] = set()
    assert _cycles(graph) == []
    assert "infolens.score" not in graph["infolens.pipeline"]
    assert "infolens.compare" not in graph["infolens.basefile"]


def test_the_graph_is_read() -> None:  # the check above is not vacuous
    graph = _graph()
    assert "infolens.documents" in graph["infolens.pipeline"]
    assert {"infolens.compare_stats", "infolens.basefile"} <= graph["infolens.compare"]
    assert _cycles({"a": {"b"}, "b": {"a"}}) != []
