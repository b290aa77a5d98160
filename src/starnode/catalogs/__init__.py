"""Targets and comparison-star sequences: AAVSO VSX and VSP, the Gaia DR3 fallback, their cache.

Public API (see ``docs/catalogs.md``)::

    resolve_target(config, object_name, ra_deg, dec_deg) -> Target
    get_sequence(config, target, *, fov_arcmin, band="V") -> Sequence
    load_sequence_file(path) -> Sequence
    CatalogError

What is asked where:

- VSX ``api.object`` (``catalogs.vsx_url``): the target's AAVSO name, AUID, type and range;
  VSX ``api.list`` (cone search) when OBJECT is ``Unknown`` or absent (:mod:`.vsx`).
- VSP ``chart`` (``catalogs.vsp_url``): the comparison sequence of the field, with its chart
  id (:mod:`.vsp`).
- Gaia DR3 through the archive's TAP sync service (``catalogs.gaia_tap_url``), only when VSP
  has no sequence for the field (``catalogs.gaia_fallback``); V from G and BP-RP (Riello et
  al. 2021) (:mod:`.gaia`).

Every request goes through :mod:`starnode.util.http` (timeouts, retries honouring
Retry-After, User-Agent) in :mod:`.fetch`; every answer is cached in the node's SQLite database
(``config.db_path``, table ``catalog_cache`` of :class:`starnode.store.CatalogCache`) for
``catalogs.cache_days``; a stale entry is used, with a WARNING, when the network fails, and
``catalogs.offline`` uses only the cache, ``catalogs.sequence_file`` and the bundled
charts in ``starnode/data`` (:mod:`.sequences`, the one reader of chart files).

Layout: :mod:`.types` (records, parsing), :mod:`.fetch` (how answers are had), :mod:`.vsx`,
:mod:`.vsp`, :mod:`.gaia` (one client each), :mod:`.sequences` (chart files),
:mod:`.resolve` (the two orchestrators).
"""

from __future__ import annotations

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.store import CatalogCache
from starnode.util.http import USER_AGENT
from starnode.util.values import normalize_name

from .fetch import CLIENT, CatalogClient
from .gaia import GAIA_G_MINUS_V, gaia_g_to_v, gaia_sequence, parse_gaia_csv
from .health import health
from .resolve import get_sequence, resolve_target
from .sequences import SEQUENCE_FILES, SequenceFiles, load_sequence_file, parse_vsp_chart
from .types import (
    CompStar,
    Sequence,
    Target,
    VsxMag,
    comment_flag,
    parse_dec,
    parse_ra,
    parse_vsx_mag,
    separation_deg,
)
from .vsp import vsp_sequence
from .vsx import parse_vsx_list, parse_vsx_object, vsx_cone, vsx_object

__all__ = [
    "CLIENT",
    "GAIA_G_MINUS_V",
    "SEQUENCE_FILES",
    "USER_AGENT",
    "CatalogCache",
    "CatalogClient",
    "CatalogError",
    "CompStar",
    "Sequence",
    "SequenceFiles",
    "Target",
    "VsxMag",
    "clear_cache",
    "comment_flag",
    "gaia_g_to_v",
    "gaia_sequence",
    "get_sequence",
    "health",
    "load_sequence_file",
    "normalize_name",
    "parse_dec",
    "parse_gaia_csv",
    "parse_ra",
    "parse_vsp_chart",
    "parse_vsx_list",
    "parse_vsx_mag",
    "parse_vsx_object",
    "resolve_target",
    "separation_deg",
    "vsp_sequence",
    "vsx_cone",
    "vsx_object",
]


def clear_cache(config: Config, kind: str | None = None) -> int:
    """Forget cached catalogue answers.

    Parameters
    ----------
    config : Config
        Its ``db_path`` holds the cache.
    kind : str, optional
        Only this kind (``vsx``, ``vsx-cone``, ``vsp``, ``gaia``); default all.

    Returns
    -------
    int
        How many entries were removed.
    """
    return CatalogCache(config.db_path).clear(kind)
