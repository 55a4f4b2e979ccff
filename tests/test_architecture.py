"""The "never" rules of ARCHITECTURE.md, enforced from the imports of every module (module-level
and inside functions alike), read with `ast` without importing anything."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from curate.stages import STAGES

from conftest import ROOT

# Each stage's package (or module), from the registry: "curate.embed.stage:embed" -> "curate.embed".
STAGE_PACKAGES = tuple(".".join(spec.run.partition(":")[0].split(".")[:2]) for spec in STAGES)
# ARCHITECTURE.md's parts, top to bottom: a module may import its own part and those below it.
LAYERS = [("front ends", ("curate.cli", "curate.console", "flows")),
          ("runners", ("curate.pipeline", "curate.status")),
          ("stages and readers", (*STAGE_PACKAGES, "curate.data", "curate.quarantine")),
          ("records", ("curate.lineage",)),
          ("engine", ("curate.engine", "curate.lock")),
          ("core", ("curate",))]  # everything else


def layer(name: str) -> int:
    return next(i for i, (_, prefixes) in enumerate(LAYERS) if within(name, prefixes))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for top in ("curate", "flows") for p in sorted((ROOT / top).rglob("*.py"))}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports(path: Path, known: set[str]) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import in the file; `from a import b` names the
    module a.b when that is a module."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub, None) if sub in known else (node.module, alias.name))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, str | None]]]:
    mods = modules()
    return {name: imports(path, set(mods)) for name, path in mods.items()}


def offenders(graph: dict[str, list[tuple[str, str | None]]], importers: tuple[str, ...] | None,
              imported: tuple[str, ...], exempt: tuple[str, ...] = ()) -> list[str]:
    """`importer -> imported` for each import of `imported` by a module in `importers` (None: any
    module), outside `exempt`."""
    return [f"{m} -> {target}" for m, edges in graph.items() for target, _ in edges
            if (importers is None or within(m, importers)) and not within(m, exempt) and within(target, imported)]


def test_the_library_knows_no_cli_and_no_prefect(graph):
    assert offenders(graph, ("curate",), ("click", "curate.cli"), exempt=("curate.cli",)) == []
    assert offenders(graph, ("curate",), ("prefect", "flows"), exempt=("curate.cli",)) == []


def test_only_the_cli_prints_and_the_console_knows_no_stage(graph):
    assert offenders(graph, None, ("curate.console",), exempt=("curate.cli",)) == []
    assert {target for target, _ in graph["curate.console"] if target.startswith("curate")} == {"curate.view"}


def test_stages_do_not_import_each_others_stage_module(graph):
    run_modules = {spec.run.partition(":")[0] for spec in STAGES}
    bad = [f"{m} -> {target}" for m, edges in graph.items() for target, _ in edges
           if target in run_modules and within(m, STAGE_PACKAGES)
           and next(p for p in STAGE_PACKAGES if within(target, (p,))) != next(
               (p for p in STAGE_PACKAGES if within(m, (p,))), None)]
    assert bad == []


def test_no_private_name_is_imported_from_another_module(graph):
    bad = [f"{m} -> {target}.{name}" for m, edges in graph.items() for target, name in edges
           if name and name.startswith("_") and not name.startswith("__") and target.startswith(("curate", "flows"))]
    assert bad == []


def test_no_part_imports_a_part_above_it(graph):
    bad = [f"{m} ({LAYERS[layer(m)][0]}) -> {target} ({LAYERS[layer(target)][0]})"
           for m, edges in graph.items() for target, _ in edges
           if target in graph and layer(target) < layer(m)]
    assert bad == []
    assert layer("curate.stages") == layer("curate.workspace") == len(LAYERS) - 1  # the registry is core


def test_flows_reach_stages_only_through_the_pipeline(graph):
    assert offenders(graph, ("flows",), STAGE_PACKAGES) == []


def test_no_import_cycle(graph):
    edges = {m: sorted({t for t, _ in targets if t in graph and t != m}) for m, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_rules_see_every_import(graph):
    """The checks above would pass vacuously if the graph were empty or mis-named."""
    assert len(graph) > 60
    assert ("curate.pipeline", "run_stage") in graph["curate.cli.stage_commands"]  # an import inside a function
    assert ("curate.view", "Table") in graph["curate.console"]
    assert offenders({"curate.x": [("click", None)]}, ("curate",), ("click",)) == ["curate.x -> click"]
