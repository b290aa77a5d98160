"""The stand-in measuring function of the node tests (tests/node_fakes.py) reads its frame."""

from __future__ import annotations

from pathlib import Path

from node_fakes import measure, write_fake


def test_fake_frames(tmp_path: Path) -> None:
    p = write_fake(tmp_path / "Light_a.fit", "mag=11.25")
    assert measure(str(p), {})["magnitude"] == 11.25
