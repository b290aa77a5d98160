"""The ledger: identity, atomic claims, recovery of a killed node's claims, exactly-once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from starnode.config import Config
from starnode.store import Ledger, file_identity, make_owner


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger(Config({"data_dir": str(tmp_path / "data")}))


def _frame(tmp_path: Path, name: str, text: str = "x") -> Path:
    p = tmp_path / "frames" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_identity_is_path_size_mtime(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    f = _frame(tmp_path, "Light_a.fit")
    fid, new = led.add(f)
    assert new
    assert led.add(f) == (fid, False)
    f.write_text("rewritten, longer")  # a rewritten file is new work
    fid2, new2 = led.add(f)
    assert new2 and fid2 != fid
    assert [r.id for r in led.find(f)] == [fid, fid2]
    assert led.known(*file_identity(f))
    assert led.counts()["pending"] == 2


def test_claim_is_atomic_across_threads(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    for i in range(40):
        led.add(_frame(tmp_path, f"Light_{i:02d}.fit"))
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        owner = make_owner()
        while True:
            frames = led.claim(owner, limit=3)
            if not frames:
                return
            with lock:
                got.extend(f.id for f in frames)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 40
    assert led.counts()["processing"] == 40


def test_result_recorded_once_by_owner_only(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    fid, _ = led.add(_frame(tmp_path, "Light_a.fit"))
    me, other = make_owner(), make_owner()
    [frame] = led.claim(me)
    assert frame.id == fid and frame.state == "processing" and frame.attempts == 1
    result = {"magnitude": 11.5, "uncertainty": float("nan"), "target_name": "SS Cyg",
              "jd": 2460000.5, "quality_flag": "good"}
    assert not led.record_measured(fid, other, result)
    assert led.record_measured(fid, me, result)
    assert not led.record_measured(fid, me, result)  # a second outcome is dropped
    row = led.get(fid)
    assert row is not None and row.state == "measured" and row.measure_count == 1
    assert row.result is not None and row.result["uncertainty"] is None  # NaN -> null
    assert row.target == "SS Cyg" and row.magnitude == 11.5
    assert [f.id for f in led.to_submit()] == [fid]
    assert led.record_submission(fid, {"status": "ok", "rows": 1}) == "reported"
    assert led.to_submit() == []
    assert led.get(fid).report_count == 1  # type: ignore[union-attr]


def test_declined_submission_stays_measured(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    fid, _ = led.add(_frame(tmp_path, "Light_a.fit"))
    me = make_owner()
    led.claim(me)
    led.record_measured(fid, me, {"magnitude": 11.5, "target_name": "SS Cyg"})
    assert led.record_submission(fid, {"status": "held", "message": "poor quality"}) == \
        "measured"
    assert led.to_submit() == []  # declined on purpose: not resubmitted
    led.record_submission(fid, {"status": "error", "message": "disk full"})
    assert [f.id for f in led.to_submit()] == [fid]  # an error is retried


def test_skip_fail_problems_and_reset(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    me = make_owner()
    ids = [led.add(_frame(tmp_path, f"Light_{i}.fit"))[0] for i in range(3)]
    led.claim(me, limit=3)
    led.record_skipped(ids[0], me, "IMAGETYP is 'Dark'", "not_light")
    led.record_skipped(ids[1], me, "IMAGETYP is 'Dark'", "not_light")
    led.record_failed(ids[2], me, "worker crashed", crashed=True)
    probs = led.problems()
    assert probs[0]["n"] == 2 and probs[0]["category"] == "not_light"
    assert probs[1]["state"] == "failed" and probs[1]["category"] == "crashed"
    assert led.reset(["failed"]) == [ids[2]]
    row = led.get(ids[2])
    assert row is not None and row.state == "pending" and row.reason is None
    assert row.crashes == 0


def test_recover_requeues_dead_owner_and_expired_lease(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    a, _ = led.add(_frame(tmp_path, "Light_a.fit"))
    b, _ = led.add(_frame(tmp_path, "Light_b.fit"))
    c, _ = led.add(_frame(tmp_path, "Light_c.fit"))
    # a process that claims a frame and dies with SIGKILL
    code = (f"import os, signal\nfrom starnode.store import Ledger, make_owner\n"
            f"led = Ledger(path={str(led.path)!r})\n"
            f"assert led.claim(make_owner(), ids=[{a}])\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert led.get(a).state == "processing"  # type: ignore[union-attr]
    live = make_owner()
    led.claim(live, ids=[b])  # ours, alive: kept
    old_run = f"{live.rsplit(':', 1)[0]}:deadbeef"  # an earlier run inside this process
    led.claim(old_run, ids=[c])
    me = make_owner()
    assert led.recover(live) == 2
    assert led.get(a).state == "pending"  # type: ignore[union-attr]
    assert led.get(c).state == "pending"  # type: ignore[union-attr]
    assert led.get(b).state == "processing"  # type: ignore[union-attr]
    # an expired lease goes back too, even when its owner lives
    assert led.recover(me, now=1e12) == 1
    assert led.counts()["pending"] == 3


def test_file_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    assert led.path == tmp_path / "data" / "starnode.sqlite3"
    assert os.path.getsize(led.path) > 0


def test_measurement_is_stored_as_json_with_its_layout_version(tmp_path: Path) -> None:
    import dataclasses
    import json

    from starnode.errors import FrameState
    from starnode.records import SCHEMA_VERSION, Measurement

    old = json.loads((Path(__file__).parents[1] / "data" / "result-0.1.0.json").read_text())
    m = dataclasses.replace(Measurement.from_dict(old), schema_version=SCHEMA_VERSION,
                            night="2025-08-01", site_longitude=2.35)
    led = _ledger(tmp_path)
    fid, _ = led.add(_frame(tmp_path, "Light_m.fit"))
    me = make_owner()
    led.claim(me)
    assert led.record_measured(fid, me, m)
    row = led.get(fid)
    assert row is not None and row.state is FrameState.MEASURED
    assert row.schema_version == SCHEMA_VERSION
    assert row.result is not None and row.result["night"] == "2025-08-01"
    assert row.magnitude == m.magnitude and row.target == m.target_name
    assert row.quality == str(m.quality_flag)
    back = row.measurement
    assert back is not None and back.night == "2025-08-01" and back.site_longitude == 2.35
    assert back.magnitude == m.magnitude and len(back.comps) == len(m.comps)
    # a 0.1.0 dict is accepted too, and recorded as layout version 1
    fid2, _ = led.add(_frame(tmp_path, "Light_d.fit"))
    led.claim(me)
    assert led.record_measured(fid2, me, old)
    assert led.get(fid2).schema_version == 1  # type: ignore[union-attr]
    assert led.outstanding([fid, fid2]) == 0


def test_file_is_owner_only_and_versioned(tmp_path: Path) -> None:
    import sqlite3
    import stat

    from starnode.store import SCHEMA_VERSION

    led = _ledger(tmp_path)
    led.add(_frame(tmp_path, "Light_a.fit"))
    assert stat.S_IMODE(os.stat(led.path).st_mode) == 0o600
    conn = sqlite3.connect(led.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert led.outstanding([1]) == 1


def test_reject_categories_are_enum_values_on_write_and_on_read(tmp_path: Path) -> None:
    """Issue 18: the ledger wrote ``crash`` where the enum says ``crashed``. New rows carry the
    enum's value; a 0.2.0 row's ``crash`` reads, groups and retries as ``crashed``."""
    from starnode.errors import RejectCategory

    led = _ledger(tmp_path)
    me = make_owner()
    ids = [led.add(_frame(tmp_path, f"Light_{i}.fit"))[0] for i in range(4)]
    led.claim(me, limit=4)
    led.record_failed(ids[0], me, "worker crashed", crashed=True)
    led.record_failed(ids[1], me, "timed out after 5 s", crashed=True,
                      category=RejectCategory.TIMEOUT)
    led.record_skipped(ids[2], me, "a reason", "no such category")
    led.record_failed(ids[3], me, "an old crash", crashed=True)
    with led.store.conn as c:  # what 0.2.0 wrote for a crashed worker
        c.execute("UPDATE frames SET category='crash' WHERE id=?", (ids[3],))
    stored = dict(led.store.conn.execute("SELECT id, category FROM frames").fetchall())
    assert [stored[i] for i in ids] == ["crashed", "timeout", "error", "crash"]
    assert [led.get(i).category for i in ids] == ["crashed", "timeout", "error", "crashed"]
    assert led.get(ids[3]).category is RejectCategory.CRASHED
    crashed = [p for p in led.problems() if p["category"] == "crashed"]
    assert len(crashed) == 2 and {p["reason"] for p in crashed} == {"worker crashed",
                                                                    "an old crash"}
    assert sorted(led.reset(["failed"], category="crashed")) == sorted([ids[0], ids[3]])
