"""The package's rooms as docs/layout.md draws them: no import circles, the floors import nothing
above them, ray only in launchers/, and no module over 400 lines. Imports inside functions count:
they tie modules as surely as those at the top."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gandist"
# The floors: config and the small shared modules import nothing of gandist's but each other.
FLOORS = ("gandist.config", "gandist.seeding", "gandist.urls", "gandist.console", "gandist.collectives",
          "gandist.ledger", "gandist.monitor", "gandist.losses", "gandist.ckpt")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """The gandist modules ``name`` imports; ``from pkg import sub`` counts as pkg.sub when sub is a module."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # gandist.x.y where y is a name in module gandist.x
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def on_a_floor(name: str) -> bool:
    return name == "gandist" or any(name == f or name.startswith(f + ".") for f in FLOORS)


def test_no_import_circles():
    try:
        TopologicalSorter(GRAPH).prepare()
    except CycleError as e:
        pytest.fail("import circle: " + " -> ".join(e.args[1]))


def test_the_floors_import_nothing_above_them():
    upward = [f"{a} -> {b}" for a in sorted(GRAPH) if on_a_floor(a) for b in sorted(GRAPH[a]) if not on_a_floor(b)]
    assert not upward, "imports running up: " + ", ".join(upward)


def test_only_launchers_import_ray_and_inference_never_imports_train():
    ray = [name for name, path in MODULES.items() if not name.startswith("gandist.launchers")
           and any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(
               (getattr(n, "module", None) or a.name).split(".")[0] == "ray" for a in n.names)
               for n in ast.walk(ast.parse(path.read_text())))]
    assert not ray, f"ray imported outside gandist/launchers/: {ray}"
    into_train = [n for n in GRAPH if n.startswith(("gandist.inference", "gandist.ckpt"))
                  and any(t.startswith("gandist.train") for t in GRAPH[n])]
    assert not into_train, f"import train/ though they are below it: {into_train}"


def test_no_module_over_400_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines (split them by concern): {long}"


def test_the_graph_sees_imports_inside_functions():
    # the check above is only as good as its reading: cli.py imports most commands' modules lazily
    assert "gandist.launchers.submit" in GRAPH["gandist.cli"] and "gandist.config.compose" in GRAPH["gandist.config"]
