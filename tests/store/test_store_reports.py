"""ReportRows: the exactly-once keys and report rows of the AAVSO outbox, on a real file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from starnode.store import ReportRows
from starnode.store.reports import DRY, REAL


def _add(rows: ReportRows, space: str, mkey: str, row_key: str, jd: float,
         bin_end: float | None = None) -> None:
    rows.add_measurement(space, mkey, row_key, obscode="DEMO", starid="SS Cyg", band="TG",
                         night="2025-08-01", jd=jd, data={"jd": jd}, result={"jd": jd})
    if rows.row(space, row_key) is None:
        rows.insert_row(space, row_key, obscode="DEMO", starid="SS Cyg", band="TG",
                        night="2025-08-01", date_type="JD", file="2025-08-01/f.txt",
                        bin_start=None if bin_end is None else jd, bin_end=bin_end, jd=jd,
                        line=f"SS CYG,{jd}", n=1, closed=bin_end is None, upload="manual")


def test_keys_rows_and_spaces(tmp_path: Path) -> None:
    with ReportRows(tmp_path / "starnode.sqlite3") as rows:
        with rows.transaction():
            _add(rows, REAL, "m1", "m1", 2460889.4)
        assert rows.measurement_row_key(REAL, "m1") == "m1"
        assert rows.measurement_row_key(DRY, "m1") is None  # spaces never mix
        with pytest.raises(sqlite3.IntegrityError), rows.transaction():
            _add(rows, REAL, "m1", "m1", 2460889.4)  # the exactly-once key holds
        assert [r["row_key"] for r in rows.rows(REAL, target="ss  cyg")] == ["m1"]
        assert rows.rows(REAL, night="2025-08-02") == []
        assert rows.member_data(REAL, "m1") == [{"jd": 2460889.4}]
        assert [(r["file"], r["night"]) for r in rows.files(REAL)] == [
            ("2025-08-01/f.txt", "2025-08-01")]


def test_bins_close_and_uploads_settle(tmp_path: Path) -> None:
    with ReportRows(tmp_path / "starnode.sqlite3") as rows:
        with rows.transaction():
            _add(rows, REAL, "a", "bin1", 2460889.40, bin_end=2460889.41)
            _add(rows, REAL, "b", "bin2", 2460889.42, bin_end=2460889.43)
        assert rows.close_bins_ending_by(REAL, "DEMO", 2460889.415) == 1
        assert rows.row(REAL, "bin1")["closed"] == 1  # type: ignore[index]
        assert rows.close_open(REAL) == 1
        rows.conn.execute("UPDATE aavso_rows SET upload='pending'")
        assert [r["row_key"] for r in rows.pending_uploads()] == ["bin1", "bin2"]
        assert rows.pending_uploads(files=["other.txt"]) == []
        with rows.transaction():
            rows.set_uploading("u1", ["bin1", "bin2"])
        rows.set_upload_outcome("u1", ["bin1"], "sent")
        rows.set_upload_outcome("u0", ["bin2"], "sent")  # not that upload's rows: unchanged
        states = {r["row_key"]: r["upload"] for r in rows.rows(REAL)}
        assert states == {"bin1": "sent", "bin2": "uploading"}
        assert rows.resolve_uncertain(sent=False) == 1
        assert rows.row(REAL, "bin2")["upload"] == "pending"  # type: ignore[index]
        assert {(r["file"], r["upload"]) for r in rows.outbox_rows()} == {
            ("2025-08-01/f.txt", "sent"), ("2025-08-01/f.txt", "pending")}
