"""``starnode doctor``: every concern checks its own health; this module only collects.

A check is a small function ``health(config) -> list[Check]`` owned by the module whose
concern it is (:func:`starnode.config.health`, :func:`starnode.node.health.health`, and any
other module that defines ``health``: the store, the catalogues, the AAVSO writer). For a
module that has none yet, a fallback here says what can be said from its public API. A check
never raises: a failure to check is itself a FAIL line with the reason.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Check, HealthFn, Level

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

__all__ = ["PROVIDERS", "Check", "Level", "run_checks"]  # Check, Level: from .diagnostics


def _aavso_health(cfg: Config) -> list[Check]:
    """Where reports go; WebObs credentials present (never shown)."""
    a = cfg.aavso
    if a.mode != "webobs":
        return [Check(Level.OK, "aavso", f"mode {a.mode}: reports go to {cfg.data_dir / 'outbox'}")]
    have_env = os.environ.get(a.username_env) and os.environ.get(a.password_env)
    if have_env or (a.credentials_file and Path(a.credentials_file).is_file()):
        return [Check(Level.OK, "aavso", "webobs upload enabled, credentials present (not shown)")]
    return [Check(Level.FAIL, "aavso", f"aavso.mode is webobs but neither ${a.username_env}/"
                  f"${a.password_env} nor aavso.credentials_file is set")]


def _ledger_health(cfg: Config) -> list[Check]:
    """The ledger opens; how many frames, how many failed."""
    from .store import Ledger

    try:
        with Ledger(cfg) as ledger:
            counts = ledger.counts()
    except Exception as exc:
        return [Check(Level.FAIL, "ledger", f"cannot open {cfg.db_path}: {exc}")]
    failed = counts.get("failed", 0)
    return [Check(Level.OK, "ledger", f"{cfg.db_path}: {sum(counts.values())} frame(s)"
                  + (f", {failed} failed (see 'starnode status')" if failed else ""))]


#: (module, fallback): the module's own ``health`` is used when it has one.
PROVIDERS: tuple[tuple[str, HealthFn | None], ...] = (
    ("starnode.config", None),
    ("starnode.aavso", _aavso_health),
    ("starnode.node.health", None),
    ("starnode.store", _ledger_health),
    ("starnode.catalogs", None),
    ("starnode.astrometry", None),
    ("starnode.planning.health", None),
    ("starnode.node.hublink", None),  # with hub.url: reachable, token valid, schema accepted
)


def _provider(module: str, fallback: HealthFn | None) -> HealthFn | None:
    try:
        fn: HealthFn | None = getattr(importlib.import_module(module), "health", None)
    except ImportError:
        fn = None
    return fn if callable(fn) else fallback


def run_checks(cfg: Config) -> list[Check]:
    """Every check of ``starnode doctor``.

    Parameters
    ----------
    cfg : Config
        The configuration to check.

    Returns
    -------
    list of Check
        In provider order; a provider that raised gives one FAIL line naming it.
    """
    from starnode.store.database import close_kept_connections

    out: list[Check] = []
    try:
        for module, fallback in PROVIDERS:
            fn = _provider(module, fallback)
            if fn is None:
                continue
            try:
                out.extend(fn(cfg))
            except Exception as exc:
                log.debug("health check of %s failed", module, exc_info=True)
                out.append(Check(Level.FAIL, module.rsplit(".", 1)[-1],
                                 f"the check itself failed: {type(exc).__name__}: {exc}"))
    finally:  # checking leaves nothing open: no -wal/-shm beside the database afterwards
        close_kept_connections()
    return out
