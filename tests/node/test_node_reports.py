"""AAVSO reporting through the real node (``starnode process``, real pipeline, real outbox):

- time binning: consecutive Seestar subs with ``aavso.bin_minutes`` give one row per bin
  (weighted mean, NBIN in NOTES, HJD of the bin's middle); the report validates; a second run
  adds nothing;
- WebObs mode against a fake WebObs on the loopback server: each row is uploaded exactly once,
  across runs; synthetic frames are never uploaded at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time

from loopback import LoopbackServer
from starnode.aavso import outbox_files, validate_file
from starnode.catalogs import load_sequence_file
from starnode.cli import main
from starnode.config import Config
from starnode.synthetic import DEMO_SEQUENCE_FILE
from subs_helpers import SITE, _write_subs, config_file
from webobs_fake import PASSWORD, USER, FakeWebObs

pytestmark = pytest.mark.slow




def test_process_with_time_bins(tmp_path: Path) -> None:
    subs = tmp_path / "MyWorks" / "SS Cyg_sub"
    # two bins of 5 minutes: 4 subs 60 s apart from 21:00:30, then 3 subs from 21:05:30
    mids = _write_subs(subs, "2025-09-14T21:00:30", 4, 60.0, 11.2)
    mids += _write_subs(subs, "2025-09-14T21:05:30", 3, 60.0, 11.2)
    cfg_file = config_file(tmp_path, "observer_code: DEMO\nbin_minutes: 5")
    assert main(["--config", str(cfg_file), "process", "--quiet", str(tmp_path / "MyWorks")]) == 0

    cfg = Config.load(cfg_file)
    [entry] = outbox_files(cfg)
    report = Path(entry["path"])
    assert validate_file(report).ok
    rows = [ln for ln in report.read_text().splitlines() if not ln.startswith("#")]
    assert len(rows) == 2, rows  # one row per bin, not one per sub
    counts = sorted(int(r.split("NBIN=")[1].split("|")[0]) for r in rows)
    assert counts == [3, 4]
    for r in rows:
        fields = r.split(",")
        assert fields[4] == "TG" and fields[6] == "STD" and fields[7] == "ENSEMBLE"
        assert abs(float(fields[2]) - 11.2) < 0.05  # weighted mean near the truth
    # each bin's DATE is the HJD of the middle of its members' mid-exposures
    seq = load_sequence_file(DEMO_SEQUENCE_FILE)
    star = SkyCoord(seq.star_ra_deg * u.deg, seq.star_dec_deg * u.deg)
    site = EarthLocation(lat=SITE[0] * u.deg, lon=SITE[1] * u.deg)
    dates = sorted(float(r.split(",")[1]) for r in rows)
    for members, date in ((mids[:4], dates[0]), (mids[4:], dates[1])):
        mid = Time((members[0].jd + members[-1].jd) / 2.0, format="jd", scale="utc",
                   location=site)
        hjd = (mid + mid.light_travel_time(star, kind="heliocentric")).utc.jd
        assert abs(date - hjd) < 2e-5  # < 2 s

    # nothing new on a second run: frames already in the ledger, rows already in the outbox
    before = report.read_bytes()
    assert main(["--config", str(cfg_file), "process", "--quiet", str(tmp_path / "MyWorks")]) == 0
    assert report.read_bytes() == before


@pytest.mark.parametrize("synthetic", [False, True], ids=["real-frames", "synthetic-frames"])
def test_process_in_webobs_mode_uploads_each_row_once(tmp_path: Path, synthetic: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARNODE_AAVSO_USERNAME", USER)
    monkeypatch.setenv("STARNODE_AAVSO_PASSWORD", PASSWORD)
    subs = tmp_path / "MyWorks" / "SS Cyg_sub"
    _write_subs(subs, "2025-09-14T21:00:30", 3, 60.0, 11.2, synthetic=synthetic)
    fake = FakeWebObs()
    with LoopbackServer() as srv:
        srv.route("POST", "/webobs/file", handler=fake)
        cfg_file = config_file(tmp_path, "observer_code: XYZ\nmode: webobs\nretry_backoff: 0\n"
                                f"webobs_url: {srv.url('/webobs/file')}")
        args = ["--config", str(cfg_file), "process", "--quiet", str(tmp_path / "MyWorks")]
        assert main(args) == 0
        if synthetic:
            assert fake.hits == 0  # never upload synthetic data, whatever the mode
        else:
            assert len(fake.accepted_rows) == 3 and len(set(fake.accepted_rows)) == 3
            for text in fake.files:  # what was sent is a valid report
                assert text.startswith("#TYPE=EXTENDED")
        hits = fake.hits
        assert main(args) == 0  # the same archive again
        assert main([*args, "--force"]) == 0  # even measured again: never resent
        assert fake.hits == hits
    logs = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert PASSWORD.encode() not in logs
