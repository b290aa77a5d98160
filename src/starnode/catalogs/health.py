"""``starnode doctor`` checks of the catalogues: the sequence file, the cache, VSP reachable.

Collected by :mod:`starnode.doctor` through :func:`health`; a check never raises.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import requests

from starnode.errors import CatalogError
from starnode.util.http import make_session

from .sequences import load_sequence_file

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.diagnostics import Check

__all__ = ["health"]


def _sequence_file(cfg: Config) -> list[Check]:
    from starnode.diagnostics import Check, Level

    path = cfg.catalogs.sequence_file
    if not path:
        return []
    try:
        seq = load_sequence_file(path)
    except CatalogError as exc:
        return [Check(Level.FAIL, "catalogue", f"catalogs.sequence_file {path}: {exc}")]
    return [Check(Level.OK, "catalogue", f"sequence_file {path}: chart {seq.chart_id}, "
                  f"{len(seq.comps)} comparison stars")]


def _cache(cfg: Config) -> list[Check]:
    from starnode.diagnostics import Check, Level
    from starnode.store import CatalogCache, Store

    if not cfg.db_path.exists():
        return []
    with Store.open(cfg) as store:
        rows = CatalogCache(store).summary()
    if not rows:
        return [Check(Level.OK, "catalogue cache", "empty (the first frame of each new target "
                      "needs the network or sequence_file)")]
    age = (time.time() - min(r[2] for r in rows)) / 86400.0
    return [Check(Level.OK, "catalogue cache", ", ".join(f"{n} {kind}" for kind, n, _ in rows)
                  + f" answer(s); oldest {age:.0f} day(s) (catalogs.cache_days "
                  f"{cfg.catalogs.cache_days:g})")]


def _cached_answers(cfg: Config) -> int:
    """How many catalogue answers the database holds (read-only; 0 without a database)."""
    from starnode.store.health import cached_answers

    return cached_answers(cfg.db_path)


def _network(cfg: Config) -> Check:
    from starnode.diagnostics import Check, Level

    ph = cfg.catalogs
    if ph.offline:
        level = Level.OK if ph.sequence_file else Level.WARN
        return Check(level, "catalogue", "offline: only the cache and sequence_file are used"
                     + ("" if ph.sequence_file else
                        "; new targets cannot be measured until cached"))
    session = make_session(attempts=1, timeout=min(float(ph.http_timeout), 5.0))
    try:
        r = session.head(ph.vsp_url, allow_redirects=True)
    except requests.RequestException as exc:
        if _cached_answers(cfg):  # a node without network (a dark site): say so in config
            return Check(Level.WARN, "catalogue", f"AAVSO VSP not reachable "
                         f"({type(exc).__name__}) but catalogue answers are cached: if this "
                         "node has no network, set catalogs.offline: true (no waiting on "
                         "the network per frame; new targets need catalogs.sequence_file)")
        return Check(Level.WARN, "catalogue", f"AAVSO VSP not reachable ({type(exc).__name__}):"
                     " check the network; if this node has no network, set catalogs.offline: "
                     "true and catalogs.sequence_file (a VSP chart saved as JSON) so frames "
                     "do not wait on the network")
    finally:
        session.close()
    return Check(Level.OK, "catalogue", f"AAVSO VSP reachable ({ph.vsp_url}: HTTP "
                 f"{r.status_code})")


def health(cfg: Config) -> list[Check]:
    """The catalogue checks of ``starnode doctor``.

    Parameters
    ----------
    cfg : Config
        ``photometry.*`` and ``db_path``.

    Returns
    -------
    list of starnode.diagnostics.Check
        The sequence file loads; what the cache holds; VSP answers (or offline mode).
    """
    return [*_sequence_file(cfg), *_cache(cfg), _network(cfg)]
