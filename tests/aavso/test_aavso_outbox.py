"""starnode.aavso.outbox: the night's report file and its audit survive kills, a lost database
and a long night (issue 10, items 5, 6 and 15).

Kills are real: a child process submits and SIGKILLs itself at a chosen moment (just before the
transaction's COMMIT, or inside the atomic rename); the parent then looks at the files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aavso_helpers import at, data_lines, make_config
from starnode.aavso import reportfile as reportfile_mod
from starnode.aavso import submit, validate_file

TESTS = Path(__file__).resolve().parents[1]


def _audit_lines(report: Path) -> list[dict[str, Any]]:
    outbox = report.parents[1]
    audit = outbox / "audit" / report.parent.name / (report.stem + ".jsonl")
    return [json.loads(x) for x in audit.read_text().splitlines()]


def _child(cfg: dict[str, Any], minutes: float, kill_at: str) -> int:
    """Submit ``at(minutes)`` in a child process that SIGKILLs itself at ``kill_at``:
    ``commit`` (just before COMMIT, after the file and audit were written) or ``rename`` (in
    the middle of the atomic file replacement)."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(TESTS)!r})
        from aavso_helpers import at
        from starnode.aavso import submit
        import starnode.store.connection as conn_mod
        kill_at = {kill_at!r}
        if kill_at == "commit":
            real_exit = conn_mod.transaction.__exit__
            def dying_exit(self, exc_type, exc, tb):
                if exc_type is None:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_exit(self, exc_type, exc, tb)
            conn_mod.transaction.__exit__ = dying_exit
        else:
            real_replace = os.replace
            def dying_replace(src, dst, *a, **k):
                if str(dst).endswith(".txt"):
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_replace(src, dst, *a, **k)
            os.replace = dying_replace
        submit(at({minutes}), {cfg!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.returncode


def test_kill_before_commit_never_duplicates_the_audit_or_the_row(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    first = submit(at(0), cfg)
    report = Path(first["report_path"])
    assert _child(cfg, 1, "commit") == -9
    # the killed attempt wrote its line and audit record but never committed: retry it
    again = submit(at(1), cfg)
    assert again["status"] == "queued", again
    assert submit(at(1), cfg)["status"] == "duplicate"
    keys = [r["key"] for r in _audit_lines(report) if r["event"] == "measurement"]
    assert len(keys) == 2 and len(set(keys)) == 2, keys
    assert len(data_lines(report)) == 2
    assert validate_file(report).ok


def test_kill_in_the_rename_leaves_a_temporary_that_the_node_start_removes(
        tmp_path: Path) -> None:
    from starnode.node.outcomes import Outcomes
    from starnode.store import Ledger

    cfg = make_config(tmp_path, bin_minutes=5)
    report = Path(submit(at(1), cfg)["report_path"])
    assert _child(cfg, 2, "rename") == -9     # the bin's row changes: the file is rewritten
    left = list(report.parent.glob(".*.tmp"))
    assert left, "the kill should have left the temporary copy"
    from starnode.config import resolve

    config = resolve(cfg)
    with Ledger(config) as ledger:
        Outcomes(config, ledger, "me", submit=True).start()
    assert not list(report.parent.glob(".*.tmp"))
    assert submit(at(2), cfg)["status"] == "queued"
    assert len(data_lines(report)) == 1 and validate_file(report).ok
    assert "NBIN=2" in data_lines(report)[0]


def _drop_database(tmp_path: Path) -> None:
    for p in (tmp_path / "data").glob("starnode.sqlite3*"):
        p.unlink()


def test_a_lost_database_never_shrinks_the_night_file(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    for i in range(6):
        answer = submit(at(i), cfg)
    report = Path(answer["report_path"])
    before = data_lines(report)
    assert len(before) == 6
    _drop_database(tmp_path)
    later = submit(at(10), cfg)
    after = data_lines(report)
    assert later["status"] in ("queued", "error"), later
    assert set(before) <= set(after), "a row of the night's file was lost"
    if later["status"] == "queued":
        assert len(after) == 7
    assert validate_file(report).ok


def test_one_more_row_costs_the_same_at_the_end_of_the_night(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """The work per row (text validated, bytes written to the report) does not grow."""
    validated: list[int] = []
    real_validate = reportfile_mod.validate_text

    def counting_validate(text: str, name: str | None = None) -> Any:
        validated.append(len(text))
        return real_validate(text, name)

    monkeypatch.setattr(reportfile_mod, "validate_text", counting_validate)
    cfg = make_config(tmp_path)
    report: Path | None = None
    written: list[int] = []
    inodes: set[int] = set()
    for i in range(120):
        size0 = report.stat().st_size if report is not None and report.exists() else 0
        answer = submit(at(i * 10 / 60), cfg)
        assert answer["status"] == "queued", answer
        report = Path(answer["report_path"])
        written.append(report.stat().st_size - size0)
        if i >= 1:
            inodes.add(report.stat().st_ino)
    assert report is not None
    assert len(data_lines(report)) == 120 and validate_file(report).ok
    assert max(validated[5:]) <= 2 * validated[1], "validation grows with the night"
    assert max(written[5:]) <= 2 * written[2], "bytes written per row grow with the night"
    assert len(inodes) == 1, "the whole file was replaced for a new row"
    # the audit still has one record per row
    assert len([r for r in _audit_lines(report) if r["event"] == "measurement"]) == 120


def test_a_lost_database_and_audit_never_write_a_row_twice(tmp_path: Path) -> None:
    """Issue 17: with the index and the audit gone, a line already in the file is adopted; the
    same measurement is recorded under it (not written again), and another line for the same
    star, time and filter is a duplicate."""
    import shutil

    cfg = make_config(tmp_path)
    for i in range(3):
        answer = submit(at(i), cfg)
    report = Path(answer["report_path"])
    before = data_lines(report)
    _drop_database(tmp_path)
    shutil.rmtree(tmp_path / "data" / "outbox" / "audit")
    again = submit(at(1), cfg)
    assert again["status"] == "queued" and again["rows"] == [before[1]], again
    other = submit(at(2, check_star={"name": "K2", "label": "120", "auid": "000-BCP-300",
                                     "mag": 12.0, "catalog_mag": 12.0, "deviation": 0.0,
                                     "error": 0.02}), cfg)
    assert other["status"] == "duplicate", other
    assert data_lines(report) == before
    assert submit(at(5), cfg)["status"] == "queued"
    assert data_lines(report)[:3] == before and len(data_lines(report)) == 4
    assert validate_file(report).ok
