"""An independent altitude computation for checking the hub's allocation: textbook formulas
(Meeus's mean sidereal time, the Astronomical Almanac's low-precision sun, J2000 coordinates
without precession), written here without astropy so that it shares no code with
:mod:`starnode.hub.allocation`. Accurate to about 0.4 degrees today (mostly precession since
J2000), which the checks allow for."""

from __future__ import annotations

import itertools
import math

UNIX_EPOCH_JD = 2440587.5


def jd(epoch: float) -> float:
    return epoch / 86400.0 + UNIX_EPOCH_JD


def lst_deg(epoch: float, lon_deg: float) -> float:
    """Local mean sidereal time (Meeus, Astronomical Algorithms 12.4)."""
    d = jd(epoch) - 2451545.0
    t = d / 36525.0
    gmst = 280.46061837 + 360.98564736629 * d + 0.000387933 * t * t - t ** 3 / 38710000.0
    return (gmst + lon_deg) % 360.0


def sun_radec(epoch: float) -> tuple[float, float]:
    """The sun's RA and Dec (degrees), Astronomical Almanac low-precision formulae."""
    n = jd(epoch) - 2451545.0
    L = (280.460 + 0.9856474 * n) % 360.0
    g = math.radians((357.528 + 0.9856003 * n) % 360.0)
    lam = math.radians(L + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    eps = math.radians(23.439 - 0.0000004 * n)
    ra = math.degrees(math.atan2(math.cos(eps) * math.sin(lam), math.cos(lam))) % 360.0
    dec = math.degrees(math.asin(math.sin(eps) * math.sin(lam)))
    return ra, dec


def alt_az(epoch: float, lat: float, lon: float, ra: float, dec: float) -> tuple[float, float]:
    """Altitude and azimuth (north through east), degrees, from the hour angle."""
    h = math.radians((lst_deg(epoch, lon) - ra) % 360.0)
    phi, d = math.radians(lat), math.radians(dec)
    alt = math.asin(math.sin(phi) * math.sin(d) + math.cos(phi) * math.cos(d) * math.cos(h))
    # Meeus 13.5 (azimuth from the south), turned to north-through-east
    az_s = math.atan2(math.sin(h), math.cos(h) * math.sin(phi) - math.tan(d) * math.cos(phi))
    return math.degrees(alt), (math.degrees(az_s) + 180.0) % 360.0


def sun_alt(epoch: float, lat: float, lon: float) -> float:
    ra, dec = sun_radec(epoch)
    return alt_az(epoch, lat, lon, ra, dec)[0]


def mask_alt(horizon: list[tuple[float, float]] | tuple[tuple[float, float], ...],
             az: float) -> float:
    """The horizon mask at ``az``: linear between points, wrapping through north."""
    if not horizon:
        return -90.0
    pts = sorted(horizon)
    ext = [(a - 360.0, h) for a, h in pts] + list(pts) + [(a + 360.0, h) for a, h in pts]
    for (a0, h0), (a1, h1) in itertools.pairwise(ext):
        if a0 <= az <= a1:
            return h0 if a1 == a0 else h0 + (h1 - h0) * (az - a0) / (a1 - a0)
    return pts[0][1]


def observable(epoch: float, node: dict, ra: float, dec: float, tol: float = 0.0
               ) -> tuple[bool, str]:
    """Whether ``node`` (a dict: lat, lon, sun_limit, min_altitude, max_altitude, horizon) can
    observe (ra, dec) at ``epoch``, allowing ``tol`` degrees; with the reason when not."""
    s = sun_alt(epoch, node["lat"], node["lon"])
    if s > node["sun_limit"] + tol:
        return False, f"sun at {s:.1f}"
    alt, az = alt_az(epoch, node["lat"], node["lon"], ra, dec)
    floor = max(node["min_altitude"], mask_alt(node.get("horizon", ()), az))
    if alt < floor - tol:
        return False, f"altitude {alt:.1f} below {floor:.1f} (az {az:.0f})"
    if alt > node["max_altitude"] + tol:
        return False, f"altitude {alt:.1f} above {node['max_altitude']}"
    return True, ""


def longest_window_minutes(node: dict, ra: float, dec: float, start: float, end: float,
                           step_s: float = 300.0, tol: float = 0.0) -> float:
    """The longest stretch (minutes) in [start, end] in which the target stays observable."""
    best = run = 0.0
    t = start
    prev_ok = False
    while t <= end:
        ok = observable(t, node, ra, dec, tol)[0]
        run = run + step_s if ok and prev_ok else 0.0
        best = max(best, run)
        prev_ok = ok
        t += step_s
    return best / 60.0
