"""What starnode knows about a telescope model lives in one place, :mod:`starnode.instruments`.

A scan of every module under src/starnode for the Seestar's own numbers and names written as
code (pixel scales, gain, saturation, sensor sizes, pixel size, focal length, Bayer patterns,
file-name prefixes, INSTRUME/TELESCOP values). Docstrings are prose and are not scanned; every
other string and number is. A hit outside ``instruments/`` fails unless the allowlist below
names the module and the value, with the reason it may stay. A new hard-coded value: read it
from ``starnode.instruments.profile(...)`` instead (a new telescope model: a new profile,
CONTRIBUTING.md).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "starnode"

#: Numbers that are a Seestar's own (value -> what it is). Floats-only values are marked below.
NUMBERS: dict[float, str] = {
    2.374: "S50 pixel scale (arcsec)", 2.39: "S50 nominal pixel scale", 2.37: "S50 pixel scale",
    0.065: "S50 gain (e-/ADU)", 60000: "S50 linearity limit (ADU)",
    65520: "S50 full scale (ADU)", 1080: "sensor width (px)", 1920: "sensor height (px)",
    2160: "S30 Pro width (px)", 3840: "S30 Pro height (px)", 2.9: "pixel size (um)",
    250.0: "S50 focal length (mm)", 150.0: "S30 focal length (mm)",
    160.0: "S30 Pro focal length (mm)",
}
#: Compared as floats only: an int 250 is a count of stars, not a focal length.
FLOAT_ONLY = {2.9, 250.0, 150.0, 160.0}
BAYER = {"GRBG", "RGGB", "GBRG", "BGGR"}
#: Names and header values (a regular expression searched in every string constant).
NAMES = re.compile(r"Light_|Stacked_|seestar s[0-9]+|imx[0-9]{3}|\bS[35]0_[0-9a-z]",
                   re.IGNORECASE)

#: (module under src/starnode, value as found) -> why it may stay. A whole package: "pkg/".
ALLOWED: dict[tuple[str, str], str] = {
    ("frame/load.py", "GRBG"): "GREEN_SITES: the CFA geometry of every pattern, no model's",
    ("frame/load.py", "GBRG"): "GREEN_SITES: the CFA geometry of every pattern",
    ("frame/load.py", "RGGB"): "GREEN_SITES: the CFA geometry of every pattern",
    ("frame/load.py", "BGGR"): "GREEN_SITES: the CFA geometry of every pattern",
    ("config/schema.py", "GRBG"): "camera.bayer_pattern: the choices are every pattern",
    ("config/schema.py", "GBRG"): "camera.bayer_pattern: the choices are every pattern",
    ("config/schema.py", "RGGB"): "camera.bayer_pattern: the choices are every pattern",
    ("config/schema.py", "BGGR"): "camera.bayer_pattern: the choices are every pattern",
    ("config/sections.py", "GRBG"): "camera.bayer_pattern: the generated Literal",
    ("config/sections.py", "GBRG"): "camera.bayer_pattern: the generated Literal",
    ("config/sections.py", "RGGB"): "camera.bayer_pattern: the generated Literal",
    ("config/sections.py", "BGGR"): "camera.bayer_pattern: the generated Literal",
    ("config/schema.py", "Stacked_"): "watch.include: help text's example for stacks",
    ("cli/observe.py", "Light_"): "help text: where the frames go, in words",
    ("cli/commands.py", "Stacked_"): "a hint in words: the watch.include for stacks",
}
#: Packages whose numbers are their own on purpose.
ALLOWED_PACKAGES: dict[str, str] = {
    "instruments/": "the one home of the profiles",
    "synthetic/": "the truth the pipeline is tested against, kept independent of the profile "
                  "the pipeline reads (synthetic/scene.py says why)",
}


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                out.add(id(body[0].value))
    return out


def knowledge(source: str) -> Iterator[tuple[int, str, str]]:
    """``(line, value, what)`` of every Seestar number or name written in ``source``."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in prose:
            continue
        v = node.value
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            for known, what in NUMBERS.items():
                if v == known and (known not in FLOAT_ONLY or isinstance(v, float)):
                    yield node.lineno, repr(v), what
        elif isinstance(v, str):
            if v in BAYER:
                yield node.lineno, v, "a Bayer pattern"
            for m in NAMES.finditer(v):
                yield node.lineno, m.group(0), "a name or header"


def _allowed(rel: str, value: str) -> bool:
    return any(rel.startswith(p) for p in ALLOWED_PACKAGES) or (rel, value) in ALLOWED


def scan(package: Path) -> list[str]:
    """Every hit outside the allowlist, as ``module:line: value (what)``."""
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for line, value, what in knowledge(path.read_text(encoding="utf-8")):
            if not _allowed(rel, value):
                out.append(f"{rel}:{line}: {value} ({what})")
    return out


def test_seestar_knowledge_lives_in_instruments() -> None:
    hits = scan(PACKAGE)
    assert not hits, ("Seestar numbers or names written outside starnode.instruments; read "
                      "them from starnode.instruments.profile() (or allow them in "
                      "tests/instruments/test_instrument_knowledge.py with the reason):\n"
                      + "\n".join(hits))


def test_every_allowance_is_still_needed() -> None:
    """An allowance nothing needs any more is removed, so the list stays the true one."""
    found = {(path.relative_to(PACKAGE).as_posix(), value)
             for path in PACKAGE.rglob("*.py")
             for _, value, _ in knowledge(path.read_text(encoding="utf-8"))}
    assert set(ALLOWED) <= found, sorted(set(ALLOWED) - found)


@pytest.mark.parametrize(("code", "found"), [
    ("SCALE = 2.374\n", ["2.374"]),
    ("def f(g=0.065):\n    return g\n", ["0.065"]),
    ("SAT = 60000.0\n", ["60000.0"]),
    ("shape = (1920, 1080)\n", ["1920", "1080"]),
    ("fl = 250.0\n", ["250.0"]),
    ("bayer = 'GRBG'\n", ["GRBG"]),
    ("name = f'Light_{t}_10.0s.fit'\n", ["Light_"]),
    ("inst = 'Seestar S50'\n", ["Seestar S50"]),
    ("tel = 'S30 Pro_abc'\n", []),  # a serial after "Pro": no S30_ pattern, read by the profile
    ("tel = 'S50_5y47h3c1'\n", ["S50_5"]),
    ("card = 'imx585'\n", ["imx585"]),
    ('"""The S50: 2.374"/px, GRBG, Light_ files."""\nN = 250\n', []),  # prose, a count
])
def test_the_scan_sees_the_numbers_and_names(code: str, found: list[str]) -> None:
    assert [v for _, v, _ in knowledge(code)] == found
    assert bool(scan_source(code)) == bool(found)


def scan_source(code: str) -> list[tuple[int, str, str]]:
    return [h for h in knowledge(code) if not _allowed("somewhere/new.py", h[1])]
