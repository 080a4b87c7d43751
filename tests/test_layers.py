"""The rooms of ``shared/`` and their order: no module imports one of a higher layer, and
none reaches into another module's private names (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import its own layer and the ones below it.
LAYERS = (
    ("shared.problems", "shared.web", "shared.ncrontab", "shared.settings", "shared.private",
     "shared.same_origin", "shared.logtext", "shared.telemetry", "shared.logconfig",
     "shared.faults"),
    ("shared.certs",),
    ("shared.atlas", "shared.vault", "shared.dip", "shared.storage"),
    ("shared.validation",),
    ("shared.events",),
    ("shared.services", "shared.portal"),
    ("shared.devhost", "shared.cli", "shared.__main__", "function_app"),
)


def layer(module: str) -> int:
    for rank, rooms in enumerate(LAYERS):
        if any(module == room or module.startswith(room + ".") for room in rooms):
            return rank
    raise AssertionError(f"{module} is in no layer: add its room to LAYERS")


def modules():
    for path in sorted([*(ROOT / "shared").rglob("*.py"), ROOT / "function_app.py"]):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text(), str(path))


def imports(tree: ast.Module):
    """(imported module, names) of every import, at the top or inside a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_no_module_imports_a_higher_layer():
    upward = []
    for name, tree in modules():
        for target, _ in imports(tree):
            if target.split(".")[0] in {"shared", "function_app"} and target != "shared":
                if layer(target) > layer(name):
                    upward.append(f"{name} -> {target}")
    assert upward == []


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, tree in modules():
        for target, names in imports(tree):
            if target.startswith("shared") and target != name:
                private += [f"{name} -> {target}.{n}" for n in names
                            if n.startswith("_") and not n.startswith("__")]
    assert private == []


def test_an_unexpected_exception_is_placed_by_file_line_and_function():
    from shared.faults import raised_at

    def fails():
        raise KeyError("a-secret-value")

    try:
        fails()
    except KeyError as exc:
        place = raised_at(exc)
    assert place.startswith("tests/test_layers.py:") and place.endswith(" in fails")
    assert "a-secret-value" not in place
