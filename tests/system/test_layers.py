"""The layers of docs/architecture.md, checked: every import points down, and none goes round.

The order is read from the ``layers`` block of docs/architecture.md (one line a layer, top
first), so the rule that is written is the rule that is checked. Every ``import`` of every
module under src/starnode counts, wherever it stands (top level, inside a function, under
``TYPE_CHECKING``): a module may import its own unit and units of lower layers only, never the
package face (``starnode``), and the modules' imports have no cycle. A unit is a top-level
module or package of starnode (``frame``, ``store``...), or a dotted part of one listed on its
own (``planning.model``). A unit listed but absent is fine (a package another branch brings).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "starnode"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

Edge = tuple[str, str, int]  # importer, imported module, line


def read_layers(text: str) -> dict[str, int]:
    """``unit -> layer number`` from the ```` ```layers ```` block (higher numbers on top)."""
    m = re.search(r"```layers\n(.*?)```", text, re.S)
    if m is None:
        raise AssertionError("docs/architecture.md has no ```layers block")
    layers: dict[str, int] = {}
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        head, _, units = line.partition("|")  # "N name | unit unit ..."
        level = int(head.split()[0])
        for unit in units.split():
            assert unit not in layers, f"{unit} is in two layers of docs/architecture.md"
            layers[unit] = level
    return layers


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (``starnode``: the face)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
             known: dict[str, Path], top: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name.split(".")[0] == top)
        return
    if node.level:
        base = name.split(".")[: None if is_package else -1]
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    if module.split(".")[0] != top:
        return
    for alias in node.names:  # ``from pkg import submodule`` is an import of the submodule
        yield f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module


def imports(package: Path) -> list[Edge]:
    """Every import of a module of the package by a module of the package."""
    known = modules(package)
    edges = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, name, path.name == "__init__.py", known,
                                       package.name):
                    if target != name and (name, target, node.lineno) not in edges:
                        edges.append((name, target, node.lineno))
    return edges


def unit_of(module: str, layers: dict[str, int], top: str) -> str | None:
    """The longest listed unit that the module belongs to (the face is ``top`` itself)."""
    if module == top:
        return top if top in layers else None
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in layers:
            return ".".join(parts[:n])
    return None


def upward(edges: list[Edge], layers: dict[str, int], top: str) -> list[str]:
    """Each import that does not point to a lower layer (or leaves its own unit for the face)."""
    bad = []
    for src, dst, line in edges:
        a, b = unit_of(src, layers, top), unit_of(dst, layers, top)
        if a is None or b is None or a == b:
            continue
        if b == top or layers[b] >= layers[a]:
            bad.append(f"{src}:{line} imports {dst}: {a} (layer {layers[a]}) may not import "
                       f"{b} (layer {layers[b]})")
    return bad


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively)."""
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == v:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


@pytest.fixture(scope="module")
def layers() -> dict[str, int]:
    return read_layers(ARCHITECTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return imports(PACKAGE)


def test_every_module_has_a_layer(layers: dict[str, int]) -> None:
    missing = sorted(m for m in modules(PACKAGE) if unit_of(m, layers, "starnode") is None)
    assert not missing, ("modules in no layer: add their unit to the ```layers block of "
                         f"docs/architecture.md: {missing}")


def test_imports_point_down(layers: dict[str, int], edges: list[Edge]) -> None:
    bad = upward(edges, layers, "starnode")
    assert not bad, "imports that do not point down:\n" + "\n".join(bad)


def test_no_import_cycles(edges: list[Edge]) -> None:
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checker_sees_an_upward_import_a_cycle_and_the_face(tmp_path: Path) -> None:
    """The rule can fail: a small package with one of each fault."""
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .high import run\n")
    (pkg / "high.py").write_text("from .low import a\n\ndef run():\n    return a\n")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from . import b\n")
    (pkg / "low" / "b.py").write_text("def f():\n    from pkg.high import run\n"
                                      "    from .. import run as r\n    from . import a\n")
    layers = read_layers("```layers\n2 top | pkg\n1 high | high\n0 low | low\n```\n")
    edges = imports(pkg)
    assert ("pkg.low.b", "pkg.high", 2) in edges  # a function-level import counts
    bad = upward(edges, layers, "pkg")
    assert len(bad) == 2 and "pkg.low.b:2 imports pkg.high" in bad[0]
    assert "pkg.low.b:3 imports pkg: low (layer 0) may not import pkg (layer 2)" in bad[1]
    assert any({"pkg.low.a", "pkg.low.b"} <= set(c) for c in cycles(edges))
