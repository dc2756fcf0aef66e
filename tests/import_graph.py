"""The project's import graph, read from the source with `ast` (nothing is imported): which project module
imports which, at the top of the file or inside a function, and which third-party modules each imports."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bottom to top: a layer imports only itself and those before it
LAYERS = ("workers", "sweep", "analysis", "orthosweep")
PACKAGES = LAYERS + ("testing",)


@dataclass
class Module:
    name: str
    path: Path
    top: set[str] = field(default_factory=set)  # project modules imported at module level
    lazy: dict[str, int] = field(default_factory=dict)  # project module -> line, imported inside a function
    external_top: set[str] = field(default_factory=set)  # top-level names of third-party imports at module level


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest project module that `name` (a dotted import target) names or lies in."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = here.split(".") if is_package else here.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _from_targets(targets: list[str], names: set[str]) -> list[str]:
    """`from pkg import a, b`: the submodules a, b where they are modules, else pkg itself."""
    base, members = targets[0], targets[1:]
    modules = [t for t in members if t in names]
    return modules + ([base] if len(modules) < len(members) else [])


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def read_graph() -> dict[str, Module]:
    paths = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    names = {module_name(p) for p in paths}
    graph: dict[str, Module] = {}
    for path in paths:
        here = module_name(path)
        mod = Module(here, path)
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _in_type_checking(node, parents):
                continue
            nested = any(isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef)) for a in _ancestors(node, parents))
            targets = _targets(node, here, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                targets = _from_targets(targets, names)
            for target in targets:
                resolved = _resolve(target, names)
                if resolved is None:
                    if not nested and target and target.split(".")[0] not in PACKAGES:
                        mod.external_top.add(target.split(".")[0])
                    continue
                if resolved == here:
                    continue
                if nested:
                    mod.lazy.setdefault(resolved, node.lineno)
                else:
                    mod.top.add(resolved)
        graph[here] = mod
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for mod in graph.values():
        for target in list(mod.top):
            parts = target.split(".")
            mod.top.update(p for p in (".".join(parts[:n]) for n in range(1, len(parts))) if p in graph)
        mod.top.discard(mod.name)
    return graph


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]):
    while node in parents:
        node = parents[node]
        yield node


def top_closure(graph: dict[str, Module], name: str) -> set[str]:
    """Every project module that importing `name` runs (module-level imports only), `name` and the packages
    it lies in included (importing a.b.c runs a/__init__ and a/b/__init__ first)."""
    parts = name.split(".")
    seen, stack = set(), [p for p in (".".join(parts[:n]) for n in range(1, len(parts) + 1)) if p in graph]
    while stack:
        m = stack.pop()
        if m in seen:
            continue
        seen.add(m)
        stack.extend(graph[m].top - seen)
    return seen


def external_closure(graph: dict[str, Module], name: str) -> set[str]:
    return set().union(*(graph[m].external_top for m in top_closure(graph, name)))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out
