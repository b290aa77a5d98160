"""A small real night for the morning-after tests: synthetic Seestar subs of SS Cyg (brightening,
one dark frame, one corrupt file) measured by the real pipeline through ``starnode process``.

The quality gate is set so the faintest frames come out 'poor' (held back from the report), so
the summary, the sound and the page all meet a held-back point."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import AppServer
from starnode.cli import main
from starnode.config import Config
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub

SITE = (48.85, 2.35)
#: (UTC time, true magnitude) of the good frames: SS Cyg brightening over ~2 hours.
GOOD = [("2025-09-14T20:30:00", 11.9), ("2025-09-14T21:10:00", 11.6),
        ("2025-09-14T21:50:00", 11.1), ("2025-09-14T22:30:00", 10.7)]


def _name(date_obs: str) -> str:
    return "Light_SS Cyg_10.0s_IRCUT_" + date_obs.replace("-", "").replace(":", "").replace(
        "T", "-") + ".fit"


def make_night(tmp: Path) -> Config:
    """Write the frames under ``tmp/MyWorks``, process them, return the configuration."""
    folder = tmp / "MyWorks" / "SS Cyg_sub"
    folder.mkdir(parents=True)
    for i, (date_obs, mag) in enumerate(GOOD):
        hdul, _ = make_sub(target_mag=mag, seed=300 + i, date_obs=date_obs, site=SITE,
                           exptime=10.0)
        buf = io.BytesIO()
        hdul.writeto(buf)
        (folder / _name(date_obs)).write_bytes(buf.getvalue())
    dark, _ = make_sub(target_mag=11.5, seed=390, date_obs="2025-09-14T21:30:00", site=SITE,
                       exptime=10.0, imagetyp="Dark")
    buf = io.BytesIO()
    dark.writeto(buf)
    (folder / _name("2025-09-14T21:30:00")).write_bytes(buf.getvalue())
    (folder / _name("2025-09-14T22:00:00")).write_bytes(b"SIMPLE  =  T / torn" + bytes(3000))
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"data_dir: {tmp / 'data'}\nworkers: 1\n"
        f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
        "quality:\n  acceptable_snr: 40\n"
        "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    status = main(["process", str(tmp / "MyWorks"), "--config", str(cfg), "--quiet"])
    assert status == 0, f"starnode process exited {status}"
    return Config.load(str(cfg))


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A module's measured night (skips without the web extra, which its pages need)."""
    pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
    return make_night(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def server(night: Config) -> Iterator[AppServer]:
    """The morning page over :func:`night`, on a real uvicorn."""
    from starnode.morning.web import create_app

    with AppServer(create_app(night)) as s:
        yield s
