"""The package's layers import only downward, and no module imports another that imports it back.

Every import counts: at module level, inside functions (lazy imports for
start-up time are fine as long as they go down) and under TYPE_CHECKING.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_focus_stack"
NAME = PACKAGE.name

#: Lowest first. A module belongs to the first layer with a matching entry
#: (``io`` covers ``io`` and ``io.*``); it may import its own layer and those below.
LAYERS = (
    ("foundation", ("_version", "errors", "options", "_runtime", "_backend", "pixels", "io", "grouping", "synthetic")),
    ("engine", ("pyramid", "focus", "align", "channels", "fusion_decision", "fusion", "depth", "exposure", "result",
                "streaming", "intensity", "align_stack", "fuse_stack", "pipeline", "retouch", "surface")),
    ("N-D", ("nd",)),
    ("executors", ("executors",)),
    ("facade", ("stacker", "")),  # "": the package itself (its __init__ exports the facade)
    ("jobs", ("jobs",)),
    ("batch", ("batch",)),
    ("front ends", ("cli", "_napari")),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its code."""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = [p for p in base if p]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            elif node.module and (node.module == NAME or node.module.startswith(NAME + ".")):
                target = node.module[len(NAME) + 1:]
            else:
                continue
            candidates = [f"{target}.{a.name}".strip(".") for a in node.names]
            if node.module:  # "from . import x" names modules; the package itself is imported anyway
                candidates.append(target)
        elif isinstance(node, ast.Import):
            candidates = [a.name[len(NAME) + 1:] for a in node.names if a.name.startswith(NAME + ".")]
        else:
            continue
        out |= {c for c in candidates if c in modules and c != name}
    return out


def _layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix and module.startswith(prefix + ".")):
                return rank
    raise AssertionError(f"{NAME}.{module} is in no layer: add it to LAYERS in {Path(__file__).name}")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        _layer(module)


def test_layers_import_only_downward(graph):
    upward = [
        f"{NAME}.{a} ({LAYERS[_layer(a)][0]}) imports {NAME}.{b} ({LAYERS[_layer(b)][0]})"
        for a, deps in sorted(graph.items()) for b in sorted(deps) if _layer(b) > _layer(a)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles(graph):
    cycles = set()

    def visit(node: str, path: list[str]) -> None:
        for dep in graph[node]:
            if dep in path:
                cycle = path[path.index(dep):]
                k = cycle.index(min(cycle))
                cycles.add(" -> ".join(cycle[k:] + cycle[:k] + [cycle[k]]))
            elif len(path) < 12:
                visit(dep, path + [dep])

    for module in graph:
        visit(module, [module])
    assert not cycles, "\n".join(sorted(cycles))


def test_the_checks_see_an_upward_import(tmp_path):
    # the parser resolves relative, absolute and function-level imports alike
    modules = {"nd": tmp_path / "nd.py", "jobs.job": tmp_path / "job.py", "jobs": tmp_path / "__init__.py"}
    modules["nd"].write_text("def f():\n    from .jobs import job\n")
    modules["jobs.job"].write_text("from napari_focus_stack import nd\n")
    modules["jobs"].write_text("")
    assert _imports("nd", modules["nd"], modules) == {"jobs", "jobs.job"}
    assert _imports("jobs.job", modules["jobs.job"], modules) == {"nd"}
    assert _layer("jobs.job") > _layer("nd")
