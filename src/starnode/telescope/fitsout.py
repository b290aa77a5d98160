"""Frames captured through a driver, written the way the pipeline reads a Seestar sub.

A ``Light_<Target>_<exp>s_IRCUT_YYYYMMDD-HHMMSS.fit`` in ``<watch folder>/<Target>_sub/`` (the
Seestar's own layout; the name and the camera's cards come from the model's profile,
:mod:`starnode.instruments`), uint16 with BZERO 32768, and the cards the pipeline uses: OBJECT,
DATE-OBS (exposure *start* by the host's UTC clock, since the Seestar's Alpaca server lacks
``LastExposureStartTime``), DATE-EXP (end), EXPTIME/EXPOSURE, RA/DEC (the requested ICRS target,
degrees), SITELAT/SITELONG/SITEELEV, BAYERPAT, GAIN, INSTRUME, FOCALLEN, XPIXSZ, IMAGETYP Light.
Written atomically (a hidden temporary name in the same folder, then ``os.replace``), so the
watcher never sees half a frame.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from .._version import SOFTWARE
from ..instruments import Instrument, profile
from .driver import Exposure
from .settings import TelescopeSettings

__all__ = ["frame_name", "write_light"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._+-]", "_", name).strip() or "Unknown"


def frame_name(target: str, exposure_s: float, start: datetime,
               inst: Instrument | None = None) -> str:
    """The model's sub name (:meth:`~starnode.instruments.Instrument.light_name`; its clock is
    the host's UTC here).

    Examples
    --------
    >>> from datetime import timedelta, timezone
    >>> start = datetime(2025, 5, 2, 1, 17, 41, tzinfo=timezone(timedelta(hours=2)))
    >>> frame_name("SS Cyg", 10, start)  # 01:17:41 at UTC+2: 23:17:41 UTC the day before
    'Light_SS Cyg_10.0s_IRCUT_20250501-231741.fit'
    """
    inst = inst or profile()
    return inst.light_name(_safe(target), exposure_s, inst.sub_filter,
                           f"{start.astimezone(UTC):%Y%m%d-%H%M%S}")


def _iso_ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def write_light(folder: str | os.PathLike[str], exp: Exposure, *, target: str, ra_deg: float,
                dec_deg: float, settings: TelescopeSettings, plan_hash: str = "") -> Path:
    """Write one light frame; returns its path.

    Parameters
    ----------
    folder : path
        The watched folder (``watch.path``); the frame goes in ``<Target>_sub/`` inside it.
    exp : Exposure
        Pixels (rows, columns) and the host-clock start time.
    target, ra_deg, dec_deg : str, float, float
        The plan item's target and ICRS position.
    settings : TelescopeSettings
        Site and instrument.
    """
    inst = settings.instrument
    out = Path(folder) / f"{_safe(target)}_sub"
    out.mkdir(parents=True, exist_ok=True)
    data = np.asarray(exp.data)
    if data.dtype != np.uint16:
        data = np.clip(np.rint(data), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    cards: list[tuple[str, object, str]] = [
        ("OBJECT", target, "target of the plan item"),
        ("IMAGETYP", "Light", "frame type"),
        ("DATE-OBS", _iso_ms(exp.start), "UTC exposure start (host clock)"),
        ("DATE-EXP", _iso_ms(exp.start + timedelta(seconds=exp.exposure_s)),
         "UTC exposure end (host clock)"),
        ("EXPTIME", float(exp.exposure_s), "[s] exposure time"),
        ("EXPOSURE", float(exp.exposure_s), "[s] exposure time"),
        ("RA", float(ra_deg), "[deg] requested target RA (ICRS)"),
        ("DEC", float(dec_deg), "[deg] requested target Dec (ICRS)"),
    ]
    if settings.site is not None:
        cards += [("SITELAT", settings.site.lat_deg, "[deg] site latitude"),
                  ("SITELONG", settings.site.lon_deg, "[deg] site longitude, east positive"),
                  ("SITEELEV", settings.site.height_m, "[m] site elevation")]
    if inst.bayer_pattern:
        cards.append(("BAYERPAT", inst.bayer_pattern, "Bayer pattern"))
    cards += [("GAIN", inst.gain_setting, "camera gain setting"),
              ("INSTRUME", inst.name, "camera"),
              ("TELESCOP", inst.name, "telescope"),
              ("FOCALLEN", inst.focal_length_mm, "[mm] focal length"),
              ("XPIXSZ", inst.pixel_um, "[um] pixel size"),
              ("YPIXSZ", inst.pixel_um, "[um] pixel size"),
              ("FILTER", inst.sub_filter, "not a photometric band"),
              ("PROGRAM", SOFTWARE, "written by starnode observe")]
    if plan_hash:
        cards.append(("PLANHASH", plan_hash, "starnode plan hash"))
    # uint16 pixels are written as the Seestar does: BITPIX 16 with BZERO 32768
    hdu = fits.PrimaryHDU(data=data, header=fits.Header(cards))
    first = frame_name(target, exp.exposure_s, exp.start, inst)
    path = out / first
    n = 1
    while path.exists():  # two frames in the same second: never overwrite
        path = out / first.replace(".fit", f"_{n}.fit")
        n += 1
    tmp = out / f".{path.name}.{os.getpid()}.part"
    try:
        hdu.writeto(tmp, output_verify="ignore")  # the cards above are well-formed
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
