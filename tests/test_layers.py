"""The house is one-way: the engine imports nothing above it (methods are looked up by name in its registry),
and the inference modules import each other without a cycle. Every import counts, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import ferkit

SRC = Path(ferkit.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every ferkit module ``path`` imports, at the top or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ferkit"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("ferkit"))
    return out


def test_the_engine_imports_nothing_above_it():
    allowed = ("ferkit.engine", "ferkit.data", "ferkit.errors", "ferkit.config", "ferkit.progress")
    climbs = {f"{p.name} -> {m}" for p in (SRC / "engine").glob("*.py") for m in imports_of(p)
              if m != "ferkit" and not m.startswith(allowed)}
    assert not climbs, climbs


def test_methods_register_where_the_engine_looks():
    from ferkit.engine.registry import get_method
    from ferkit.methods.registry import get_method as old_path

    assert old_path is get_method and get_method("baseline").__module__ == "ferkit.methods.baseline"


def test_inference_modules_import_each_other_without_a_cycle():
    graph = {f"ferkit.inference.{p.stem}": {m for m in imports_of(p) if m.startswith("ferkit.inference.")}
             for p in (SRC / "inference").glob("*.py") if p.stem != "__init__"}
    assert "ferkit.inference.model" not in graph["ferkit.inference.video"]
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for nxt in graph.get(node, ()):
            visit(nxt, (*path, node))
        done.add(node)

    for node in graph:
        visit(node, ())


#: the layers of DESIGN.md, bottom (0) to top: a module imports only from its own layer or below
LAYERS = {
    0: ("ferkit", "errors", "config", "presets", "progress", "plugins"),
    1: ("data", "losses"),
    2: ("models", "engine", "serve"),
    3: ("metrics", "methods", "external"),
    4: ("api", "inference", "export", "pretrain", "doctor", "machine"),
    5: ("study", "report"),
    6: ("commands", "cli", "__main__"),
}
RANK = {part: rank for rank, parts in LAYERS.items() for part in parts}


def module_graph() -> dict[str, set[str]]:
    """Every module of the package -> the ferkit modules it imports (a ``from pkg import name`` counts as the
    submodule ``pkg.name`` where one exists, else as ``pkg``)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = ("ferkit", *path.relative_to(SRC).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {owner(a.name) for a in node.names if a.name.startswith("ferkit")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if base.startswith("ferkit"):
                    targets |= {owner(f"{base}.{a.name}") for a in node.names}
        graph[name] = targets - {name, ""}
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ferkit"


def test_every_part_of_the_package_has_a_layer():
    missing = {_layer(m) for m in module_graph()} - set(RANK)
    assert not missing, f"add {missing} to LAYERS (and to DESIGN.md's picture)"


def test_imports_never_climb_a_layer():
    climbs = sorted(f"{a} -> {b}" for a, targets in module_graph().items() for b in targets
                    if RANK[_layer(b)] > RANK[_layer(a)])
    assert not climbs, climbs


def test_no_import_circle_anywhere():
    graph = module_graph()
    state: dict[str, int] = {}                     # 1: on the current path, 2: finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "circle: " + " -> ".join([*path[path.index(nxt):], nxt]) if nxt in path \
                else "circle through " + nxt
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
