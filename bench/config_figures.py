"""Figures of issue 18 item 4 (typed configuration, resolved once), counted over src/starnode.

- ``resolve() calls``: calls of :func:`starnode.config.resolve` (under any local name).
- ``Any config parameters``: function parameters named ``config``/``cfg`` (or ending in
  ``_config``) annotated ``Any`` or a union with ``Any``.
- ``configuration reads``: attribute reads ``<x>.<section>.<key>`` and ``<x>.<top-level key>``
  naming a SCHEMA key (found in the source text).
- ``mypy-checked reads``: reads mypy really checks. A copy of the source has every typed key
  renamed (``path`` -> ``path_renamed``) in the generated ``config/sections.py``; each read mypy
  then reports as a missing attribute is one it checks (0 when the sections answer ``Any``).

Usage: ``python bench/config_figures.py [--no-mypy] [--verbose]`` from the repository root.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from starnode.config.schema import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "starnode"
_TOP = set(SCHEMA[""]) - {"targets"}  # 'targets' is also a common local name


def _resolve_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("config"):
            names |= {a.asname or a.name for a in node.names if a.name == "resolve"}
    return names


def _is_config_param(arg: ast.arg) -> bool:
    """A config parameter typed ``Any`` or a union with ``Any`` (``Config | Any`` is Any)."""
    name = arg.arg
    if not (name in ("config", "cfg") or name.endswith("_config")) or arg.annotation is None:
        return False
    return "Any" in ast.unparse(arg.annotation).replace(" ", "").split("|")


def _reads(tree: ast.Module) -> int:
    n = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        inner = node.value
        keyed = isinstance(inner, ast.Attribute) and inner.attr in SCHEMA and inner.attr \
            and node.attr in SCHEMA[inner.attr]
        top = isinstance(inner, ast.Name) and inner.id in ("cfg", "config") and node.attr in _TOP
        n += bool(keyed or top)
    return n


def static_counts(src: Path = SRC) -> dict[str, int]:
    """resolve() calls, Any config parameters and configuration reads in ``src``."""
    calls = params = reads = 0
    for path in sorted(src.rglob("*.py")):
        if path.parts[-2:] == ("config", "sections.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _resolve_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in names:
                calls += 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params += sum(_is_config_param(x) for x in
                              [*a.posonlyargs, *a.args, *a.kwonlyargs])
        reads += _reads(tree)
    return {"resolve() calls": calls, "Any config parameters": params,
            "configuration reads": reads}


_FIELD = re.compile(r"^(    )([a-z_][a-z0-9_]*)(: )", re.MULTILINE)


def mypy_checked_reads(verbose: bool = False) -> int:
    """Reads of a configuration key that mypy checks (see the module docstring); ``verbose``
    prints how many per module."""
    sections = SRC / "config" / "sections.py"
    if not sections.is_file():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "starnode"
        shutil.copytree(SRC, copy)
        target = copy / "config" / "sections.py"
        text = target.read_text(encoding="utf-8")
        # Rename the keys (not the section attributes of TypedConfig): each read then fails.
        sect_names = {s for s in SCHEMA if s}
        text = _FIELD.sub(lambda m: m.group(0) if m.group(2) in sect_names
                          else f"{m.group(1)}{m.group(2)}_renamed{m.group(3)}", text)
        target.write_text(text, encoding="utf-8")
        out = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports",
                              "--no-incremental", "--cache-dir", str(Path(tmp) / "cache"),
                              "--python-version", "3.11", str(copy)],
                             capture_output=True, text=True, cwd=tmp, check=False).stdout
    pattern = re.compile(r'"(?:Config|TypedConfig|\w+Settings)" has no attribute "(\w+)"')
    hits = [line for line in out.splitlines()
            if (m := pattern.search(line)) and not m.group(1).endswith("_renamed")]
    if verbose:
        per: dict[str, int] = {}
        for line in hits:
            module = line.split(":", 1)[0].split("starnode/", 1)[-1]
            per[module] = per.get(module, 0) + 1
        for module, n in sorted(per.items(), key=lambda kv: -kv[1]):
            print(f"  {module:40s} {n}")
    return len(hits)


def main(argv: list[str]) -> int:
    figures: dict[str, int] = static_counts()
    if "--no-mypy" not in argv:
        figures["mypy-checked reads"] = mypy_checked_reads("--verbose" in argv)
    for name, value in figures.items():
        print(f"{name:28s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
