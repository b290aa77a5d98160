"""Every test file the documentation names exists (issue 18, item 6).

The Markdown files at the top of the repository and in docs/, and the docstrings and comments
of src/, bench/ and tests/, name test files as ``tests/<package>/test_x.py`` (a path from the
repository's root) or as a bare ``test_x.py``. A path must exist; a bare name must be the name
of a file somewhere under tests/. Moving or renaming a test file without updating the text
that names it fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PATH = re.compile(r"(?<![\w/.-])tests/[\w./-]+?\.py\b")
BARE = re.compile(r"(?<![\w/.-])test_\w+\.py\b")


def _texts(root: Path) -> list[Path]:
    md = [*root.glob("*.md"), *(root / "docs").glob("*.md")]
    code = [p for d in ("src", "bench", "tests") for p in (root / d).rglob("*.py")
            if ".axe" not in p.parts and p.name != Path(__file__).name]  # its examples
    return sorted(md + code)


def dangling(root: Path) -> list[str]:
    """``file:line: name`` for every named test file that does not exist under ``root``."""
    tests = root / "tests"
    basenames = {p.name for p in tests.rglob("*.py")} if tests.is_dir() else set()
    out = []
    for path in _texts(root):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in PATH.finditer(line):
                if not (root / m.group()).is_file():
                    out.append(f"{path.relative_to(root)}:{n}: {m.group()}")
            for m in BARE.finditer(line):
                if m.group() not in basenames:
                    out.append(f"{path.relative_to(root)}:{n}: {m.group()}")
    return out


def test_every_test_file_named_in_the_docs_exists() -> None:
    assert not dangling(ROOT), "test files named but missing:\n" + "\n".join(dangling(ROOT))


def test_the_checker_sees_a_moved_test_file(tmp_path: Path) -> None:
    (tmp_path / "tests" / "store").mkdir(parents=True)
    (tmp_path / "tests" / "store" / "test_store_x.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "store.md").write_text(
        "Checked by `tests/store/test_store_x.py` and test_store_x.py.\n"
        "Was `tests/test_store_x.py`, then `test_store_y.py`.\n")
    assert dangling(tmp_path) == ["docs/store.md:2: tests/test_store_x.py",
                                  "docs/store.md:2: test_store_y.py"]


def test_test_file_names_are_unique_across_the_folders() -> None:
    """A bare ``test_x.py`` in the docs names one file (CONTRIBUTING.md, Tests)."""
    names: dict[str, list[str]] = {}
    for p in (ROOT / "tests").rglob("test_*.py"):
        names.setdefault(p.name, []).append(str(p.relative_to(ROOT)))
    assert not {n: ps for n, ps in names.items() if len(ps) > 1}
