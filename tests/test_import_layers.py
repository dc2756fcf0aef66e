"""The import rules of design.md §2, read from the source (tests/import_graph.py):

- layers import downwards only: `workers` imports neither `sweep` nor `analysis`, `sweep` never imports
  `analysis`, and the product never imports the `testing` scaffolding;
- no module of `sweep/`, `workers/`, `analysis/` imports another in a loop, counting imports inside
  functions, and no package of them imports another package that imports it back;
- a project module is imported inside a function only where importing it at the top would cost start-up
  time: when it brings a module of `STARTUP_COST` the importing module does not already bring.
"""

from __future__ import annotations

from import_graph import LAYERS, cycles, external_closure, read_graph

# third-party modules whose import costs a command noticeable start-up time: `orthosweep --help` imports every
# command module, read-only commands stay near the cost of importing duckdb and pyarrow (bench/cli_startup.py)
# and `import orthosweep` imports none of them until a function is called
STARTUP_COST = frozenset({"torch", "sklearn", "numba", "ray", "matplotlib", "pandas", "scipy", "pydantic",
                          "duckdb", "pyarrow", "numpy", "yaml", "PIL"})

GRAPH = read_graph()
PRODUCT = {n: m for n, m in GRAPH.items() if n.split(".")[0] in LAYERS}


def _edges(package_depth: int | None = None) -> dict[str, set[str]]:
    def key(name: str) -> str:
        return name if package_depth is None else ".".join(name.split(".")[:package_depth])

    edges: dict[str, set[str]] = {}
    for m in PRODUCT.values():
        for target in m.top | set(m.lazy):
            if target in PRODUCT and key(target) != key(m.name):
                if key(m.name).startswith(key(target) + "."):
                    continue  # a module inside a package runs the package's __init__ first: not a loop
                edges.setdefault(key(m.name), set()).add(key(target))
    return edges


def test_layers_import_downwards_only() -> None:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [f"{m.name} imports {t}" for m in PRODUCT.values() for t in m.top | set(m.lazy)
              if t.split(".")[0] == "testing"
              or (t.split(".")[0] in rank and rank[t.split(".")[0]] > rank[m.name.split(".")[0]])]
    assert not upward, "imports against the layers (analysis -> sweep -> workers):\n" + "\n".join(upward)


def test_no_module_imports_another_in_a_loop() -> None:
    loops = cycles(_edges())
    assert not loops, "import cycles between modules:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_no_package_imports_another_in_a_loop() -> None:
    loops = cycles(_edges(package_depth=2))
    assert not loops, "import cycles between packages:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_project_imports_inside_functions_only_defer_start_up_cost() -> None:
    needless = []
    for m in PRODUCT.values():
        own = external_closure(GRAPH, m.name)
        for target, line in sorted(m.lazy.items()):
            if not (external_closure(GRAPH, target) - own) & STARTUP_COST:
                needless.append(f"{m.path.relative_to(m.path.parents[len(m.name.split('.')) - 1])}:{line} "
                                f"imports {target} inside a function")
    assert not needless, "move these imports to the top of the file (they defer nothing costly):\n" + \
        "\n".join(needless)
