"""Shared helpers of the planning tests: configs, an independent altitude check, no network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers

from starnode.config import Config
from starnode.planning import PlanItem
from starnode.store import Ledger, make_owner

PARIS = (48.85, 2.35)
NEW_YORK = (40.71, -74.01)
SYDNEY = (-33.87, 151.21)
TROMSO = (69.65, 18.96)

SS_CYG = {"name": "SS Cyg", "ra": 325.678, "dec": 43.586, "brightest": 8.6, "faintest": 12.4}


def config(tmp_path: Path, site: tuple[float, float], targets: list[Any],
           **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {"data_dir": str(tmp_path / "data"),
                           "site": {"latitude": site[0], "longitude": site[1]},
                           "photometry": {"offline": True}, "targets": targets}
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return Config(raw)


def independent_altaz(site: tuple[float, float], item: PlanItem, step_s: float = 30.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Altitude/azimuth over the item's whole window (ends included), straight from astropy."""
    n = int((item.end - item.start).total_seconds() // step_s)
    t = Time(item.start) + np.append(np.arange(n + 1) * step_s,
                                     (item.end - item.start).total_seconds()) * u.s
    loc = EarthLocation.from_geodetic(lon=site[1] * u.deg, lat=site[0] * u.deg)
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None):
        aa = SkyCoord(item.ra_deg * u.deg, item.dec_deg * u.deg).transform_to(
            AltAz(obstime=t, location=loc))
    return np.asarray(aa.alt.deg), np.asarray(aa.az.deg)


def measured(cfg: Config, tmp_path: Path, target: str, when: datetime, *, mag: float = 11.0,
             snr: float = 50.0, exptime: float = 10.0, n: int = 1) -> None:
    """Put ``n`` really measured frames of ``target`` in the node's ledger."""
    led = Ledger(cfg)
    owner = make_owner()
    jd = float(Time(when).jd)
    for i in range(n):
        p = tmp_path / "frames" / f"Light_{target}_{when:%Y%m%d%H%M%S}_{i}.fit"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"x{i}")
        fid, _ = led.add(p)
        [frame] = led.claim(owner)
        assert frame.id == fid
        assert led.record_measured(fid, owner, {
            "target_name": target, "jd": jd, "hjd": jd, "magnitude": mag, "snr": snr,
            "exptime": exptime, "frame_kind": "sub", "telescope": "S50_123"})
    led.close()


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every connection except to loopback (the plan must work offline)."""
    real = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost") and self.family != socket.AF_UNIX:
            raise OSError(f"test: no internet ({host})")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield
