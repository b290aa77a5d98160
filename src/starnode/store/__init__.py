"""The node's database: one owner for every SQLite table, with versioned migrations.

Everything starnode keeps between runs that is not a file lives in one SQLite file in
``data_dir`` (``config.db_path``). This package is the only code that knows its tables:

- :class:`Store` - open the file (:meth:`Store.open`), migrate it, hand out connections
- :class:`Ledger` - the frames table: the node's durable work queue and record
- :class:`ReportRows` - the AAVSO submission keys and report rows
- :class:`CatalogCache`, :class:`SolutionCache` - catalogue answers, astrometric solutions
- :class:`ObservingHistory` - when each target was last measured, the S/N reached (planning)
- :mod:`~starnode.store.migrations` - the schema, version by version (``PRAGMA user_version``)
- :func:`health` - the database's lines of ``starnode doctor`` (read-only)

A data_dir written by 0.1.0 (no version, the same tables) is upgraded in place when opened; one
written by a newer starnode is refused with :class:`~starnode.errors.StoreError`.
"""

from __future__ import annotations

from .caches import CatalogCache, CatalogEntry, SolutionCache, StoredSolution
from .checkstars import CheckStarChoice, CheckStars
from .colourterms import ColourTerms, NightCoefficient
from .connection import connect, transaction
from .database import DB_NAME, Store, db_path
from .frame import Frame, file_identity, make_owner
from .health import health
from .hub_queue import HubQueue
from .ledger import DONE_STATES, REPORTED_STATUSES, STATES, Ledger
from .migrations import SCHEMA_VERSION, migrate, schema_version
from .reports import ReportRows
from .targets import ObservingHistory

__all__ = [
    "DB_NAME",
    "DONE_STATES",
    "REPORTED_STATUSES",
    "SCHEMA_VERSION",
    "STATES",
    "CatalogCache",
    "CatalogEntry",
    "CheckStarChoice",
    "CheckStars",
    "ColourTerms",
    "Frame",
    "HubQueue",
    "Ledger",
    "NightCoefficient",
    "ObservingHistory",
    "ReportRows",
    "SolutionCache",
    "Store",
    "StoredSolution",
    "connect",
    "db_path",
    "file_identity",
    "health",
    "make_owner",
    "migrate",
    "schema_version",
    "transaction",
]
