"""Which star a frame is for, and which comparison sequence measures it.

:func:`resolve_target` names the variable (``photometry.target``, aliases, OBJECT, a VSX cone
search for "Unknown"); :func:`get_sequence` finds its comps (sequence file, VSP, a bundled
chart, Gaia DR3). Both degrade gracefully without the network and say so in the log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.util.values import normalize_name

from .fetch import warn_unavailable
from .gaia import gaia_sequence
from .sequences import load_sequence_file, local_sequences, sequence_matches
from .types import Sequence, Target, finite, parse_vsx_mag, separation_deg
from .vsp import vsp_sequence
from .vsx import vsx_cone, vsx_object

log = logging.getLogger("starnode.catalogs")

__all__ = ["get_sequence", "resolve_target"]

#: OBJECT values that name no star (the Seestar writes "Unknown" for a manual goto).
_NO_NAME = {"", "unknown", "none", "null", "n/a", "na", "object", "target"}


def _wanted_name(cfg: Config, object_name: str | None) -> tuple[str | None, str]:
    """(name to look up or None for 'no name', how it was chosen: config|alias|object)."""
    ph = cfg.photometry
    if ph.target:
        return str(ph.target).strip(), "config"
    obj = " ".join(str(object_name or "").split())
    aliases: Mapping[str, str] = ph.target_aliases or {}
    if obj in aliases:
        return aliases[obj].strip(), "alias"
    norm = normalize_name(obj)
    for k, v in aliases.items():
        if normalize_name(k) == norm:
            return v.strip(), "alias"
    if norm in _NO_NAME:
        return None, "object"
    return obj, "object"


def resolve_target(config: Config, object_name: str | None, ra_deg: float | None,
                   dec_deg: float | None) -> Target:
    """The variable star a frame is for: its AAVSO name, AUID and coordinates.

    ``object_name`` is the FITS OBJECT (``photometry.target`` overrides it,
    ``photometry.target_aliases`` maps it to an AAVSO name); ``ra_deg``/``dec_deg`` the frame's
    RA/DEC. VSX is asked (through the cache); without an answer (offline, network down) the
    target comes from a matching bundled or ``sequence_file`` chart (source "sequence") or from
    the header (source "header"/"config", with a WARNING). OBJECT "Unknown" or absent: the star
    of ``catalogs.sequence_file`` when set, else the VSX variable nearest RA/DEC within
    ``catalogs.vsx_cone_arcmin``. Raises :class:`CatalogError` when VSX does not know the name
    or nothing identifies the star.
    """
    cfg = config
    have_coords = finite(ra_deg, dec_deg)
    name, how = _wanted_name(cfg, object_name)
    if name is None:
        chart = _sequence_file_chart(cfg)
        if chart is not None and chart.star:
            name, how = chart.star, "sequence_file"
            log.info("OBJECT is %r: taking the star of catalogs.sequence_file, %s",
                     object_name, name)
    if name is None:
        return _target_by_cone(cfg, object_name, ra_deg if have_coords else None,
                               dec_deg if have_coords else None)
    chart_target = _sequence_file_target(cfg, name)
    if chart_target is not None:
        return chart_target
    try:
        target = vsx_object(cfg, name)
    except CatalogError as exc:
        return _fallback_target(cfg, name, how, ra_deg if have_coords else None,
                                dec_deg if have_coords else None, exc)
    if target is None:
        hint = ("set photometry.target to the AAVSO name" if how != "object" else
                f"add photometry.target_aliases: {{{object_name!r}: <AAVSO name>}} or set "
                f"photometry.target")
        raise CatalogError(f"VSX knows no variable star named {name!r} ({how}"
                           f"{'' if how == 'config' else f' from OBJECT {object_name!r}'}); "
                           f"{hint}")
    if ra_deg is not None and dec_deg is not None and have_coords:
        sep = separation_deg(target.ra_deg, target.dec_deg, ra_deg, dec_deg)
        if sep > 1.0:
            log.warning("%s (VSX RA %.4f Dec %.4f) is %.1f° from the frame's RA/DEC; is "
                        "OBJECT %r / photometry.target right?", target.name, target.ra_deg,
                        target.dec_deg, sep, object_name)
    return target


def _sequence_file_chart(cfg: Config) -> Sequence | None:
    path = cfg.catalogs.sequence_file
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        return load_sequence_file(p)
    except (OSError, CatalogError) as exc:
        log.debug("catalogs.sequence_file %s not usable to name the target: %s", p, exc)
        return None


def _sequence_file_target(cfg: Config, name: str) -> Target | None:
    """The star of ``catalogs.sequence_file`` when it is the one asked for (no request)."""
    chart = _sequence_file_chart(cfg)
    if chart is None or not (chart.star and normalize_name(chart.star) == normalize_name(name)
            and finite(chart.star_ra_deg, chart.star_dec_deg)):
        return None
    return Target(name=chart.star, ra_deg=float(chart.star_ra_deg),  # type: ignore[arg-type]
                  dec_deg=float(chart.star_dec_deg),  # type: ignore[arg-type]
                  auid=chart.star_auid, source="sequence")


def _fallback_target(cfg: Config, name: str, how: str, ra_deg: float | None,
                     dec_deg: float | None, exc: CatalogError) -> Target:
    reason = str(exc)
    for seq in local_sequences(cfg):
        if seq.star and normalize_name(seq.star) == normalize_name(name) and finite(
                seq.star_ra_deg, seq.star_dec_deg):
            warn_unavailable("VSX", exc, "VSX not available (%s); %s taken from the chart "
                             "in %s (said once an hour)", reason, seq.star, seq.origin)
            return Target(name=seq.star, ra_deg=float(seq.star_ra_deg),  # type: ignore[arg-type]
                          dec_deg=float(seq.star_dec_deg),  # type: ignore[arg-type]
                          auid=seq.star_auid, source="sequence")
    if ra_deg is None or dec_deg is None:
        raise CatalogError(f"cannot identify {name!r}: VSX not available ({reason}) and the "
                           f"frame has no RA/DEC")
    source = "config" if how == "config" else "header"
    warn_unavailable("VSX", exc, "VSX not available (%s); using %r at the frame's RA %.4f Dec "
                     "%.4f (source %s, not checked against VSX; said once an hour)", reason,
                     name, ra_deg, dec_deg, source)
    return Target(name=name, ra_deg=float(ra_deg), dec_deg=float(dec_deg), source=source)


def _target_by_cone(cfg: Config, object_name: str | None, ra_deg: float | None,
                    dec_deg: float | None) -> Target:
    ph = cfg.catalogs
    if ra_deg is None or dec_deg is None:
        raise CatalogError(f"OBJECT is {object_name!r} and the frame has no RA/DEC: set "
                           f"photometry.target to the star's AAVSO name")
    radius = float(ph.vsx_cone_arcmin) / 60.0
    try:
        found = vsx_cone(cfg, ra_deg, dec_deg, radius)
    except CatalogError as exc:
        raise CatalogError(f"OBJECT is {object_name!r} and the VSX cone search failed ({exc}); "
                           f"set photometry.target to the star's AAVSO name") from exc
    candidates = [t for t in found if _bright_enough(t, float(ph.maglimit))]
    if not candidates:
        raise CatalogError(f"OBJECT is {object_name!r} and VSX lists no variable brighter than "
                           f"V {ph.maglimit:g} within {ph.vsx_cone_arcmin:g}′ of RA "
                           f"{ra_deg:.4f} Dec {dec_deg:.4f}; set photometry.target")
    best = candidates[0]
    if len(candidates) > 1:
        log.warning("OBJECT is %r: %d VSX variables within %g′ (%s); taking the nearest, %s "
                    "(set photometry.target to choose)", object_name, len(candidates),
                    ph.vsx_cone_arcmin, ", ".join(t.name for t in candidates[:5]), best.name)
    else:
        log.info("OBJECT is %r: VSX cone search found %s", object_name, best.name)
    try:
        full = vsx_object(cfg, best.name)  # for the AUID (the list view has none)
    except CatalogError as exc:
        log.warning("VSX object look-up of %s failed (%s); no AUID", best.name, exc)
        full = None
    return full or best


def _bright_enough(t: Target, maglimit: float) -> bool:
    """False only when VSX says the star is never brighter than ``maglimit``."""
    m = parse_vsx_mag(t.max_mag)
    if m is None or m.amplitude or m.fainter_than:
        return True
    return m.value <= maglimit


def get_sequence(config: Config, target: Target, *, fov_arcmin: float, band: str = "V") -> Sequence:
    """The comparison sequence for the target's field.

    Order: ``catalogs.sequence_file`` (used instead of VSP); the VSP chart (cache, network,
    stale cache; offline: cache only); a bundled chart of the same star when VSP cannot be had;
    Gaia DR3 comps (``catalogs.gaia_fallback``, band V only) when VSP has no usable comps for
    the field. The comps of one sequence all come from one source. Raises :class:`CatalogError`.
    """
    cfg = config
    ph = cfg.catalogs
    if not (isinstance(fov_arcmin, (int, float)) and math.isfinite(fov_arcmin)
            and fov_arcmin > 0):
        raise CatalogError(f"fov_arcmin must be a positive number, got {fov_arcmin!r}")
    if ph.sequence_file:
        seq = load_sequence_file(ph.sequence_file)
        _warn_if_other_field(seq, target, fov_arcmin)
        if not seq.usable(band):
            log.warning("catalogs.sequence_file %s has no usable %s comps", seq.origin, band)
        return seq
    try:
        seq = vsp_sequence(cfg, target, fov_arcmin=fov_arcmin)
    except CatalogError as exc:
        for local in local_sequences(cfg):
            if sequence_matches(local, target):
                warn_unavailable("VSP", exc, "VSP not available (%s); using the bundled chart "
                                 "%s (%s; said once an hour)", exc, local.chart_id, local.origin)
                return local
        raise
    if seq.usable(band):
        return seq
    why = (f"VSP chart {seq.chart_id} has no usable {band} comps" if seq.comps
           else "VSP has no sequence")
    why += f" for {target.name} in a {math.ceil(fov_arcmin - 1e-9)}′ field"
    if not ph.gaia_fallback:
        raise CatalogError(f"{why} (catalogs.gaia_fallback is off)")
    if band != "V":
        raise CatalogError(f"{why}; the Gaia DR3 fallback gives V only, not {band}")
    try:
        gaia = gaia_sequence(cfg, target, fov_arcmin=fov_arcmin)
    except CatalogError as exc:
        raise CatalogError(f"{why}, and the Gaia DR3 fallback failed: {exc}") from exc
    if not gaia.comps:
        raise CatalogError(f"{why}, and Gaia DR3 has no usable comps there either")
    return gaia


def _warn_if_other_field(seq: Sequence, target: Target, fov_arcmin: float) -> None:
    if finite(seq.star_ra_deg, seq.star_dec_deg, target.ra_deg, target.dec_deg):
        sep = separation_deg(seq.star_ra_deg, seq.star_dec_deg,  # type: ignore[arg-type]
                              target.ra_deg, target.dec_deg) * 60.0
        if sep > fov_arcmin / 2.0:
            log.warning("the sequence in %s is for %s, %.0f′ from %s: it is not this field",
                        seq.origin, seq.star, sep, target.name)
