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
    allowed = ("ferkit.engine", "ferkit.data", "ferkit.errors", "ferkit.config")
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
