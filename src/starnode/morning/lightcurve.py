"""``starnode lightcurve TARGET``: a light-curve plot from the ledger (matplotlib, Agg backend).

Magnitude (bright up) against time (HJD, or JD when the result has no HJD) with error bars,
coloured by quality flag, the check star's measured magnitude against its catalogue value (a
second panel, so a drifting check shows at a glance why a point is doubtful) and the magnitude
range of the comparison sequence used (a shaded band: points far outside it are extrapolated).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Config, resolve
from ..frame.timesite import utc_from_jd
from ..records import CompResult, Measurement
from ..store import Frame, Ledger
from ..util.values import finite_float

log = logging.getLogger(__name__)

__all__ = ["lightcurve_points", "plot_lightcurve"]

_QUALITY_STYLE = {"good": ("#1f77b4", "o", "good"),
                  "acceptable": ("#ff7f0e", "s", "acceptable"),
                  "poor": ("#9e9e9e", "x", "poor")}


_num = finite_float


def _check_fields(k: Any) -> dict[str, Any]:
    """The check star's fields of a plot point (all empty without a check star)."""
    if not k:
        return {"check_mag": None, "check_cat": None, "check_err": 0.0, "check_name": None}
    return {"check_mag": _num(k.mag), "check_cat": _num(k.catalog_mag),
            "check_err": _num(k.error) or 0.0, "check_name": k.label or k.name}


def _comp_range(m: Measurement) -> tuple[float | None, float | None]:
    """The catalogue magnitude range of the comparison stars used (None, None without)."""
    comp_mags = [c for c in (_num(c.catalog_mag) for c in m.comps
                             if isinstance(c, CompResult) and c.used is not False)
                 if c is not None]
    if not comp_mags:
        return None, None
    return min(comp_mags), max(comp_mags)


def _point(m: Measurement, reported: bool) -> dict[str, Any] | None:
    """One plot point from a measurement (None without a usable magnitude and time)."""
    t = _num(m.hjd) or _num(m.jd)
    mag = _num(m.magnitude)
    if t is None or mag is None:
        return None
    comp_min, comp_max = _comp_range(m)
    return {
        "t": t, "mag": mag, "err": _num(m.uncertainty) or 0.0,
        "quality": str(m.quality_flag or "poor"), "filter": m.filter or None,
        "chart": m.chart_id,
        **_check_fields(m.check_star),
        "comp_min": comp_min, "comp_max": comp_max,
        "reported": reported, "time_kind": "HJD" if m.hjd else "JD",
    }


def lightcurve_points(frames: Sequence[Frame]) -> list[dict[str, Any]]:
    """Plot-ready points from ledger rows.

    Parameters
    ----------
    frames : sequence of Frame
        Ledger rows; each stored result is read as a :class:`~starnode.records.Measurement`.

    Returns
    -------
    list of dict
        One point per observation with a usable magnitude and time (others are dropped; a
        frame copied twice is one observation):
        ``t``, ``mag``, ``err``, ``quality``, ``filter``, ``chart``, the check star's
        ``check_mag`` / ``check_cat`` / ``check_err`` / ``check_name``, the comparison range
        ``comp_min`` / ``comp_max``, ``reported`` and ``time_kind``.
    """
    out = []
    seen: set[Any] = set()
    for f in frames:
        try:
            m = f.measurement
        except (TypeError, ValueError) as exc:
            log.warning("light curve: frame %s has an unreadable result (%s); left out",
                        f.path, exc)
            continue
        point = None if m is None else _point(m, f.state == "reported")
        if point is None or m is None:
            continue
        # one point per observation: the same exposure copied twice is one measurement
        key = (f.submission or {}).get("key") or (round(m.jd, 5), m.filter, f.target)
        if key in seen:
            continue
        seen.add(key)
        out.append(point)
    return out


def plot_lightcurve(config: Config | Mapping[str, Any] | str | os.PathLike[str] | None,
                    target: str, out: str | os.PathLike[str] | None = None) -> tuple[Path, int]:
    """Write the light curve of ``target`` to a PNG.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
    target : str
        AAVSO name (case-insensitive).
    out : path-like, optional
        Default ``data_dir/lightcurves/<target>.png``.

    Returns
    -------
    tuple of (Path, int)
        The file and the number of points.

    Raises
    ------
    LookupError
        The ledger has no usable measurement of that target.
    """
    cfg = resolve(config)
    with Ledger(cfg) as ledger:
        frames = ledger.measurements(target)
        if not frames:
            known = ", ".join(f"{t} ({n})" for t, n in ledger.targets()) or "none yet"
            raise LookupError(f"no measurements of {target!r} in the ledger; measured "
                              f"targets: {known}")
    points = lightcurve_points(frames)
    if not points:
        raise LookupError(f"the measurements of {target!r} have no magnitude and time")
    name = frames[0].target or target
    if out is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        out = cfg.data_dir / "lightcurves" / f"{safe}.png"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _draw(points, name, out)
    log.info("light curve of %s: %d point(s) -> %s", name, len(points), out)
    return out, len(points)


def _draw(points: list[dict[str, Any]], name: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    t0 = math.floor(min(p["t"] for p in points) - 0.5) + 0.5  # the night's noon
    kind = points[0]["time_kind"]
    has_check = any(p["check_mag"] is not None for p in points)
    fig: Figure = plt.figure(figsize=(9, 6.5 if has_check else 5), dpi=110)
    grid = fig.add_gridspec(2 if has_check else 1, 1, height_ratios=[3, 1] if has_check else [1],
                            hspace=0.08)
    ax = fig.add_subplot(grid[0])
    _draw_magnitudes(ax, points, name, t0)
    day = utc_from_jd(t0)
    xlabel = f"hours since {kind} {t0:.1f} ({day:%Y-%m-%d} 0h UTC)"
    if has_check:
        ax.tick_params(labelbottom=False)
        axk = fig.add_subplot(grid[1], sharex=ax)
        _draw_check(axk, [p for p in points if p["check_mag"] is not None], t0)
        axk.set_xlabel(xlabel)
    else:
        ax.set_xlabel(xlabel)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def _draw_comp_band(ax: Any, points: list[dict[str, Any]]) -> None:
    """The shaded magnitude range of the comparison sequence (nothing without one)."""
    lo = [p["comp_min"] for p in points if p["comp_min"] is not None]
    hi = [p["comp_max"] for p in points if p["comp_max"] is not None]
    if lo and hi:
        ax.axhspan(min(lo), max(hi), color="#4caf50", alpha=0.10, lw=0,
                   label=f"comparison stars {min(lo):.2f}-{max(hi):.2f}")


def _magnitude_limits(points: list[dict[str, Any]]) -> tuple[float, float]:
    """The y limits of the magnitude panel, bright up: at least ~1 mag shown, the data fill it."""
    mags = [p["mag"] for p in points]
    errs = [p["err"] for p in points]
    lo_m = min(m - e for m, e in zip(mags, errs, strict=True))
    hi_m = max(m + e for m, e in zip(mags, errs, strict=True))
    pad = max(0.15, 0.5 - (hi_m - lo_m) / 2)
    return hi_m + pad, lo_m - pad


def _magnitude_title(points: list[dict[str, Any]], name: str) -> str:
    charts = sorted({str(p["chart"]) for p in points if p["chart"]})
    reported = sum(p["reported"] for p in points)
    return (f"{name}: {len(points)} measurement(s), {reported} in AAVSO reports"
            + (f"  ·  chart {', '.join(charts)}" if charts else ""))


def _draw_magnitudes(ax: Any, points: list[dict[str, Any]], name: str, t0: float) -> None:
    """The main panel: the comparison band, the points by quality flag, limits and labels."""
    _draw_comp_band(ax, points)
    for quality, (colour, marker, label) in _QUALITY_STYLE.items():
        sel = [p for p in points if p["quality"] == quality]
        if not sel:
            continue
        ax.errorbar([(p["t"] - t0) * 24 for p in sel], [p["mag"] for p in sel],
                    yerr=[p["err"] for p in sel], fmt=marker, color=colour, ms=5, capsize=2,
                    elinewidth=1, label=f"{name} ({label}, {len(sel)})")
    ax.set_ylim(*_magnitude_limits(points))  # bright up
    filt = sorted({str(p["filter"]) for p in points if p["filter"]})
    ax.set_ylabel(f"magnitude ({', '.join(filt) or '?'})")
    ax.set_title(_magnitude_title(points, name), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)


def _check_caption(sel: list[dict[str, Any]]) -> str | None:
    """The check panel's caption: the check star(s) and, for one, its catalogue V."""
    labels = sorted({str(p["check_name"]) for p in sel if p["check_name"]})
    if not labels:
        return None
    cat = next((p["check_cat"] for p in sel if p["check_cat"] is not None), None)
    return (("check stars " if len(labels) > 1 else "check star ") + ", ".join(labels)
            + (f" (V {cat:.3f})" if cat is not None and len(labels) == 1 else ""))


def _draw_check(axk: Any, sel: list[dict[str, Any]], t0: float) -> None:
    """The second panel: the check star's measured minus catalogue magnitude."""
    dev = [p["check_mag"] - (p["check_cat"] if p["check_cat"] is not None else 0.0)
           for p in sel]
    axk.errorbar([(p["t"] - t0) * 24 for p in sel], dev, yerr=[p["check_err"] for p in sel],
                 fmt="d", color="#6a1b9a", ms=4, capsize=2, elinewidth=1)
    axk.axhline(0.0, color="k", lw=0.8)
    axk.set_ylabel("check − catalogue\n(mag)", fontsize=9)
    axk.invert_yaxis()
    axk.grid(alpha=0.3)
    caption = _check_caption(sel)
    if caption is not None:
        axk.text(0.01, 0.92, caption, transform=axk.transAxes, fontsize=8, va="top")
