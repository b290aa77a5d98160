"""Issue 16, section 2: times that are true and counts that do not grow when a night is copied
again. A real night (``morning_night``: frames exposed 20:30:00-20:30:10 UTC onwards) measured
by ``starnode process``, then the same frames copied to another folder and processed again."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest

from loopback import AppServer
from morning_night import GOOD, make_night
from starnode.cli import main
from starnode.config import Config
from starnode.morning.lightcurve import lightcurve_points
from starnode.morning.summary import night_summary, render_text
from starnode.node.status import status_data, status_lines
from starnode.store import Ledger

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Config:
    tmp = tmp_path_factory.mktemp("truth")
    return make_night(tmp)


@pytest.fixture(scope="module")
def copied(night: Config) -> Config:
    """The same night copied off the telescope a second time, into another folder."""
    tmp = Path(str(night.source)).parent
    shutil.copytree(tmp / "MyWorks", tmp / "MyWorks copy")
    assert main(["process", str(tmp / "MyWorks copy"), "--config", str(night.source),
                 "--quiet"]) == 0
    return night


def _clock(iso: str) -> str:
    return iso[11:16]  # "2025-09-14T20:30:00" -> "20:30"


def test_summary_times_are_the_utc_of_mid_exposure(night: Config) -> None:
    """The first frame was exposed 20:30:00-20:30:10 UTC: it is told as 20:30 UTC (its HJD
    is some minutes later and was told as "20:35 UTC" before)."""
    text = render_text(night_summary(night), width=10_000)
    first, last = _clock(GOOD[0][0]), _clock(GOOD[-1][0])
    assert f"Between {first} UTC and {last} UTC the star measured" in text, text
    with Ledger(night) as led:
        frames = led.measurements("SS Cyg")
    m = frames[0].measurement
    assert m is not None and m.hjd is not None and abs(m.hjd - m.jd) * 1440 > 1.0  # HJD differs


def test_page_times_are_utc(night: Config) -> None:
    from starnode.morning.web import create_app

    with AppServer(create_app(night)) as server:
        target = _get(server.url("/target/SS%20Cyg"))
        frames = _get(server.url("/frames"))
    for date_obs, _mag in GOOD:
        stamp = f"{date_obs[:10]} {_clock(date_obs)} UTC"
        assert stamp in target and stamp in frames, stamp


def test_a_night_copied_twice_is_counted_once(copied: Config) -> None:
    with Ledger(copied) as led:
        reported = led.frames(states=["reported"])
    from starnode.aavso import outbox_files

    rows = sum(int(o["rows"]) for o in outbox_files(copied))
    assert rows and len(reported) == 2 * rows  # each frame twice in the ledger ...
    data = status_data(copied)
    assert data["copies"]["reported"] == rows
    assert sum(data["copies"].values()) == len(GOOD)  # the held-back ones too
    text = "\n".join(status_lines(data))
    assert f", {rows} reported," in text, text
    assert f", {len(GOOD) - rows} measured," in text, text
    assert f"{len(GOOD)} copies of frames already measured (counted and reported once)" in text
    assert f"{2 * rows} reported" not in text
    with Ledger(copied) as led:  # ... once in the light curve and its title
        points = lightcurve_points(led.measurements("SS Cyg"))
    assert len(points) == len(GOOD) and sum(p["reported"] for p in points) == rows
    s = night_summary(copied)
    (t,) = s.targets
    assert t.reported == rows and t.measured == len(GOOD) and t.copies == len(GOOD)
    said = render_text(s, width=10_000)
    assert "copies of frames already measured" in said
    from starnode.morning.web import create_app

    with AppServer(create_app(copied)) as server:
        page = _get(server.url("/"))
    assert f"<strong>{rows}</strong> measured and reported</li>" in page  # the page's status


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode("utf-8"))
