"""README's import rules, checked on the source: every import statement (also those inside functions).

Layers, bottom up (README "Architecture"):
  ground floor  rigcap.errors, rigcap.wire,     import none of the packages
                rigcap.native_output
  calibration                                   imports only the ground floor
  triangulate                                   calibration + ground floor
  rigcap.studio, rigcap.analysis                calibration, triangulate + ground floor
  capture, viewer                               those below (capture also the studio), never each other
  top floor     rigcap.live_session, rigcap.demo, rigcap.cli, rigcap.commands: anything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

GROUND = {"rigcap", "rigcap.errors", "rigcap.wire", "rigcap.native_output"}  # "rigcap" alone: the package root (__version__)
TOP = {"rigcap.live_session", "rigcap.demo", "rigcap.batch", "rigcap.cli", "rigcap.commands", "rigcap.__main__", "rigcap.argtypes"}
ALLOWED = {
    "rigcap": set(),
    "rigcap.errors": set(),
    "rigcap.native_output": set(),
    "rigcap.wire": {"rigcap.errors"},
    "calibration": GROUND,
    "triangulate": GROUND | {"calibration"},
    "rigcap.studio": GROUND | {"calibration", "triangulate"},
    "rigcap.analysis": GROUND | {"calibration", "triangulate"},
    "capture": GROUND | {"calibration", "triangulate", "rigcap.studio"},
    "viewer": GROUND | {"calibration", "triangulate"},
}
PROJECT_ROOTS = ("rigcap", "calibration", "triangulate", "capture", "viewer")


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (longest matching prefix; "rigcap" only exactly)."""
    if module == "rigcap":
        return "rigcap"
    for name in sorted((set(ALLOWED) | TOP) - {"rigcap"}, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                out.append((node.lineno, node.module or ""))
    return [(line, name) for line, name in out if name.split(".")[0] in PROJECT_ROOTS]


def source_files():
    for root in PROJECT_ROOTS:
        yield from sorted((REPO / root).rglob("*.py"))


def violations(paths) -> list[str]:
    """'file:line (layer) imports X (layer)' for each import README's layers forbid."""
    bad = []
    for path in paths:
        own = layer_of(module_name(path))
        if own is None or own in TOP:
            continue
        for line, target in imports_of(path):
            other = layer_of(target)
            if other is None:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}, which belongs to no layer")
            elif other != own and other not in ALLOWED[own]:
                bad.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {target} ({other})")
    return bad


def test_every_import_follows_readme_layers():
    assert violations(source_files()) == []


def test_the_checker_catches_a_forbidden_import():
    """The rule test itself can fail: a capture module importing the viewer or the top floor is reported."""
    probe = REPO / "capture" / "_import_rule_probe.py"
    probe.write_text("def f():\n    from viewer.scene import Scene\n    import rigcap.demo\n", encoding="utf-8")
    try:
        found = violations([probe])
    finally:
        probe.unlink()
    assert len(found) == 2 and "viewer.scene (viewer)" in found[0] and "rigcap.demo (rigcap.demo)" in found[1]


def test_no_import_cycle_between_layers():
    """Layer graph from the real imports is acyclic (a cycle would make 'one way' false)."""
    edges: dict[str, set[str]] = {}
    for path in source_files():
        own = layer_of(module_name(path))
        for _, target in imports_of(path):
            other = layer_of(target)
            if own and other and own != other:
                edges.setdefault(own, set()).add(other)
    seen, stack = set(), set()

    def visit(node, trail):
        if node in stack:
            pytest.fail("import cycle: " + " -> ".join(trail + [node]))
        if node in seen:
            return
        seen.add(node)
        stack.add(node)
        for nxt in edges.get(node, ()):
            visit(nxt, trail + [node])
        stack.discard(node)

    for node in list(edges):
        visit(node, [])
