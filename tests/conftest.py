"""Shared test fixtures.

Real data lives in ``../shared`` beside the repository (or ``$STARNODE_SHARED``); tests that need
it use the ``shared`` fixture and are skipped, with the reason, on a plain clone without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    env = os.environ.get("STARNODE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared")
    for c in candidates:
        if (c / "data").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ``shared/`` folder with real Seestar frames, VSP sequences and AAVSO examples."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared (real Seestar frames, VSP sequences, AAVSO examples) is not "
                    "present beside this clone; set STARNODE_SHARED to run these tests")
    return path


@pytest.fixture(scope="session")
def m94_subs(shared: Path) -> list[Path]:
    """The five consecutive real Seestar S50 subs of M 94 (2025-03-27)."""
    folder = shared / "data" / "seestar-s50" / "S50_1d3fe189_M94_2025-03-27"
    files = sorted(folder.glob("*.fit"))
    if len(files) != 5:
        pytest.skip(f"expected 5 real M 94 subs in {folder}, found {len(files)}")
    return files
