"""Every import of a starnode module names a module that exists.

mypy runs with ``ignore_missing_imports`` (for third-party packages without types), so it does not
see an import of a starnode module that was moved or renamed; function-level imports are not run
by importing the package either. This reads every import (module and function level) with
``ast`` and resolves it against the source tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _exists(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _targets(path: Path) -> list[tuple[int, str, list[str]]]:
    mod, is_pkg = _module_name(path) if SRC in path.parents else ("", False)
    package = mod if is_pkg else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            out.append((node.lineno, name, [a.name for a in node.names]))
    return out


ROOT = SRC.parent


def test_every_starnode_import_resolves() -> None:
    """In the package, the tests and the benchmarks."""
    missing = []
    files = [*(SRC / "starnode").rglob("*.py"), *(ROOT / "tests").glob("*.py"),
             *(ROOT / "tests").glob("*/*.py"), *(ROOT / "bench").glob("*.py")]
    for path in sorted(p for p in files if ".axe" not in p.parts):
        for line, name, names in _targets(path):
            if not name.startswith("starnode"):
                continue
            if _exists(name):
                continue
            # "from starnode.x import y": y may be a submodule or an attribute of x
            parent_ok = _exists(name.rpartition(".")[0]) and names == []
            if not parent_ok:
                missing.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not missing, "imports of starnode modules that do not exist:\n" + "\n".join(missing)


def test_the_checker_sees_a_missing_module(tmp_path: Path) -> None:
    assert _exists("starnode.records") and not _exists("starnode.no_such_module")
