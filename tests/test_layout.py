"""The code's layout is part of its design: layers that import one way, no cycles, short files.

Reads the imports of every module under assistant/ (lazy ones inside functions too) without importing
anything, so the rules hold whatever a command happens to load.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "assistant"
MAX_LINES = 320  # "about 300": a file past this wants splitting

# What each layer may import from the package (besides itself). One way, bottom to top:
# config, core <- audio, engines, reply <- stages <- build <- {live, agent, wyoming, eval} <- cli
BELOW_BUILD = {"config", "core", "audio", "engines", "reply", "stages"}
ALLOWED = {
    "config": set(),
    "core": {"config"},
    "audio": {"config", "core"},
    "engines": {"config", "core", "audio"},
    "reply": {"config", "core"},
    "stages": {"config", "core", "audio", "reply"},
    "build": BELOW_BUILD,
    "live": BELOW_BUILD | {"build"},
    "agent": BELOW_BUILD | {"build"},
    "wyoming": BELOW_BUILD | {"build", "version"},
    "eval": BELOW_BUILD | {"build"},
    "cli": BELOW_BUILD | {"build", "live", "agent", "wyoming", "eval", "version"},
    "main": {"cli"},
    "version": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from assistant.x import y`` counts x.y when y is
    a module, else x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("assistant.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "assistant":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "version"  # assistant/__init__.py: the version string
    return {"__main__": "main"}.get(parts[1], parts[1])


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) - {name} for name, path in known.items()}


def test_imports_run_one_way_between_layers() -> None:
    wrong = []
    for module, targets in graph().items():
        src = layer(module)
        for target in targets:
            dst = layer(target)
            if dst != src and dst not in ALLOWED[src]:
                wrong.append(f"{module} imports {target} ({src} may not import {dst})")
    assert wrong == []


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_every_folder_says_what_lives_there() -> None:
    silent = [
        str(init.relative_to(PACKAGE.parent))
        for init in PACKAGE.rglob("__init__.py")
        if not ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    ]
    assert silent == []


def test_no_file_is_too_long_to_read() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_rules_see_every_layer() -> None:
    """A new folder must be placed in the layers before it can be used."""
    assert {layer(m) for m in modules()} <= set(ALLOWED)
