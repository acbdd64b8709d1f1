"""The import direction of zlab's packages: maths and models -> methods -> run plumbing -> measurement -> recipes -> faces.

Every import counts, at module level or inside a function: a lower layer never imports a higher one, the Shapes world
imports no model and no method, a method imports no Shapes world, and no two modules import each other in a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ZLAB = Path(__file__).resolve().parents[1] / "zlab"

# module (or package) -> layer; a module may import its own layer or lower ones
LAYERS = {
    "zlab.paths": 0, "zlab.collective": 0, "zlab.atomic": 0, "zlab.checks": 0,
    "zlab.flow": 1, "zlab.sampling": 1, "zlab.shapes": 1,
    "zlab.zimage": 2, "zlab.tiny": 2, "zlab.tiny_judges": 2, "zlab.anatomy": 2, "zlab.features": 2, "zlab.toy": 2,
    "zlab.distill": 3, "zlab.toy_distill": 3,
    "zlab.train": 4,
    "zlab.measure": 5, "zlab.viz": 5,
    "zlab.recipes": 6, "zlab.exercises": 6,
    "zlab.cli": 7,
}
SHAPES_MAY_IMPORT = ("zlab.shapes", "zlab.paths", "zlab.atomic")


def module_name(path: Path) -> str:
    parts = path.relative_to(ZLAB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> int:
    if name == "zlab":  # the package's own __init__: a docstring and a version
        return 0
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return LAYERS[prefix]
    raise KeyError(f"{name} is in no layer: add it to LAYERS in tests/test_layers.py")


def zlab_imports(path: Path) -> set[str]:
    """The zlab modules ``path`` imports anywhere in its body (``from zlab import x`` counts as ``zlab.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.startswith("zlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zlab"):
            modules = {f"{node.module}.{alias.name}" for alias in node.names}
            known = {m for m in modules if (ZLAB.parent / (m.replace(".", "/") + ".py")).is_file()
                     or (ZLAB.parent / m.replace(".", "/")).is_dir()}
            out |= known or {node.module}
    return out


GRAPH = {module_name(p): zlab_imports(p) for p in sorted(ZLAB.rglob("*.py"))}


def test_every_module_has_a_layer():
    for name in GRAPH:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_run_one_way(name):
    upward = sorted(m for m in GRAPH[name] if m != "zlab" and layer_of(m) > layer_of(name))
    assert not upward, f"{name} (layer {layer_of(name)}) imports higher layers: {upward}"


def test_the_shapes_world_imports_no_model_and_no_method():
    for name, imports in GRAPH.items():
        if name.startswith("zlab.shapes"):
            assert all(m.startswith(SHAPES_MAY_IMPORT) for m in imports), f"{name} imports {sorted(imports)}"


def test_a_method_never_imports_the_shapes_world():
    for name, imports in GRAPH.items():
        if name.startswith("zlab.distill"):
            assert not [m for m in imports if m.startswith("zlab.shapes")], f"{name} imports {sorted(imports)}"


def test_paths_imports_nothing_of_zlab():
    assert GRAPH["zlab.paths"] == set()


def test_no_import_cycles():
    def visit(name, stack):
        if name in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(name):], name]))
        for other in sorted(GRAPH.get(name, ())):
            if other != name and other in GRAPH:
                visit(other, [*stack, name])

    for name in GRAPH:
        visit(name, [])


def test_the_layer_test_sees_a_violation():
    """The checks above could fail: a method importing the run plumbing would be upward."""
    assert layer_of("zlab.train.ladd") > layer_of("zlab.distill.ladd")
    assert "zlab.train.ladd" not in GRAPH["zlab.distill.ladd"]
