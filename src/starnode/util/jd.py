"""Julian dates: the one JD <-> Unix conversion and the observing night of a JD.

Plain arithmetic (no astropy), so the records, the store and the hub can use it; the
astronomical times (mid-exposure, HJD, airmass) are :mod:`starnode.frame.timesite`.
"""

from __future__ import annotations

import datetime as _dt
import math

__all__ = ["UNIX_EPOCH_JD", "jd_from_unix", "night_of", "unix_from_jd", "utc_from_jd"]

#: The Julian date of the Unix epoch, 1970-01-01 0h UTC.
UNIX_EPOCH_JD = 2440587.5


def jd_from_unix(seconds: float) -> float:
    """The Julian date (UTC) of a Unix time: the one JD <-> Unix conversion.

    Examples
    --------
    >>> jd_from_unix(0.0)
    2440587.5
    >>> jd_from_unix(86400.0 * 1.5)
    2440589.0
    """
    return UNIX_EPOCH_JD + seconds / 86400.0


def utc_from_jd(jd: float) -> _dt.datetime:
    """The UTC date and time of a Julian date (the inverse of :func:`jd_from_unix`).

    Examples
    --------
    >>> utc_from_jd(2440588.0).isoformat()
    '1970-01-01T12:00:00+00:00'
    """
    return _dt.datetime.fromtimestamp((jd - UNIX_EPOCH_JD) * 86400.0, _dt.UTC)


def night_of(jd: float, longitude_deg: float | None) -> str:
    """The observing night of a UTC Julian date: ``YYYY-MM-DD`` of the evening it began.

    Local mean solar time at the site (UTC + longitude/15 h) minus 12 h, so a night runs from
    local noon to local noon and keeps the date of its evening. Without a longitude, UTC
    (Greenwich) is used.

    Parameters
    ----------
    jd : float
        Julian date (UTC).
    longitude_deg : float or None
        East positive; any range (wrapped to -180..180); None or not finite: Greenwich.

    Returns
    -------
    str
        ISO date.

    Examples
    --------
    00:17 UTC on 2 May is 00:57 local mean time at 10 deg E: still the night of 1 May.

    >>> night_of(2460797.512345, 10.0)
    '2025-05-01'

    19:12 UTC on 1 May is 11:12 local time at 120 deg W, before noon: the night before.

    >>> night_of(2460797.3, -120.0)
    '2025-04-30'

    No site (or ``SITELONG = 'NaN'``): Greenwich.

    >>> night_of(2460797.3, None), night_of(2460797.3, float("nan"))
    ('2025-05-01', '2025-05-01')
    """
    lon = float(longitude_deg or 0.0)
    if not math.isfinite(lon):  # SITELONG = 'NaN': no site, so Greenwich
        lon = 0.0
    lon = (lon + 180.0) % 360.0 - 180.0
    days = jd - UNIX_EPOCH_JD + lon / 360.0 - 0.5
    return (_dt.date(1970, 1, 1) + _dt.timedelta(days=math.floor(days))).isoformat()


def unix_from_jd(jd: float) -> float:
    """The Unix time of a Julian date (UTC): the inverse of :func:`jd_from_unix`.

    Examples
    --------
    >>> unix_from_jd(2440588.0)
    43200.0
    """
    return (jd - UNIX_EPOCH_JD) * 86400.0
