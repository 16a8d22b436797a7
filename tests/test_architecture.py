"""The layers of docs/architecture.md hold: every module has a layer, and no two modules import each
other in a circle, counting imports made inside functions (import-linter's contract in
pyproject.toml checks the direction; `make lint` runs it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("jobs", "processes", "alerts", "monitoring", "runner", "jobtarget_batch", "console")
# The one sanctioned exception: a service enqueues its own app's Celery task.
SANCTIONED = {("jobs.services", "jobs.tasks"), ("processes.services", "processes.tasks")}


def _is_product_module(name: str) -> bool:
    parts = name.split(".")
    return not ({"tests", "migrations"} & set(parts)) and parts[-1] != "settings_test"


def _graph():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    return graph, sorted(module for module in graph.modules if _is_product_module(module))


def _layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    return [name.strip() for layer in config["layers"] for name in layer.replace("|", ":").split(":")]


def test_every_module_belongs_to_a_layer():
    graph, modules = _graph()
    layered = _layers()
    # Packages that only hold a docstring or re-export a module of their own are not layered themselves.
    unplaced = [
        module for module in modules
        if not any(module == layer or module.startswith(layer + ".") for layer in layered)
        and not all(imported.startswith(module + ".") for imported in graph.find_modules_directly_imported_by(module))
    ]
    assert unplaced == [], "add these modules to a layer in pyproject.toml and docs/architecture.md"


def test_no_import_cycle_between_modules():
    graph, modules = _graph()
    edges = {
        module: {
            imported for imported in graph.find_modules_directly_imported_by(module)
            if imported in modules and (module, imported) not in SANCTIONED
        }
        for module in modules
    }
    cycles = [component for component in _strongly_connected(edges) if len(component) > 1]
    assert cycles == []


def test_the_cycle_check_sees_an_import_inside_a_function():
    # The check is only as good as the graph: a function-local import must be in it.
    graph, _ = _graph()
    assert "processes.tasks" in graph.find_modules_directly_imported_by("processes.services")


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components
