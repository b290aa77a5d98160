"""Deprecated location: the database moved to :mod:`starnode.store`.

``connect`` and ``transaction`` are re-exported from :mod:`starnode.store.connection` until
every caller uses :class:`starnode.store.Store`; new code opens the database with
``Store.open(config)``, which also runs the schema migrations.
"""

from __future__ import annotations

from .store.connection import connect, transaction

__all__ = ["connect", "transaction"]
