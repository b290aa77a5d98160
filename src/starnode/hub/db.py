"""The hub's database: SQLAlchemy Core tables over SQLite (trying it out) or PostgreSQL (a real
network), with the schema owned by Alembic migrations run at start.

Why Core and not hand-written SQL per engine: the same statements run on both engines; the one
thing that differs, ``INSERT ... ON CONFLICT DO NOTHING`` (the exactly-once insert), comes from
each dialect's own ``insert`` construct (:func:`insert_ignore`).

Why Alembic: a hub lives for years while its schema grows; :func:`migrate` brings any older
database to the current schema, under a lock so several workers may start at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..util.sqlite import journal_wal

log = logging.getLogger(__name__)

__all__ = [
    "RawJSON",
    "acks",
    "alert_deliveries",
    "alerts",
    "allocations",
    "assignment_items",
    "assignments",
    "consensus",
    "engine_for",
    "hash_token",
    "insert_ignore",
    "insert_measurements",
    "measurements",
    "metadata",
    "migrate",
    "new_token",
    "node_profiles",
    "nodes",
    "offsets",
    "report_rows",
    "tokens",
    "update_flags",
    "wanted",
]

metadata = sa.MetaData()

#: Nodes (one per telescope); a member is an observer code, which may own several nodes.
nodes = sa.Table(
    "nodes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("observer_code", sa.String(16), nullable=False, index=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_contact", sa.Float),
    sa.Column("last_heartbeat", sa.Float),
    sa.Column("heartbeat", sa.JSON),
    sa.Column("pushes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("hold_reason", sa.Text),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)

#: Bearer tokens, stored as SHA-256 (they are 256-bit random: a slow hash adds nothing).
tokens = sa.Table(
    "tokens", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(8), nullable=False),  # "node" | "admin"
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id")),
    sa.Column("label", sa.String(64)),
    sa.Column("created", sa.Float, nullable=False),
)

measurements = sa.Table(
    "measurements", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("idem_key", sa.String(160), nullable=False, unique=True),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), nullable=False),
    sa.Column("target", sa.String(64), nullable=False),  # upper-case STARID key
    sa.Column("band", sa.String(8), nullable=False),
    sa.Column("night", sa.String(10), nullable=False),
    sa.Column("jd", sa.Float, nullable=False),
    sa.Column("magnitude", sa.Float, nullable=False),
    sa.Column("uncertainty", sa.Float, nullable=False),
    sa.Column("quality", sa.String(12), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
    sa.Column("flag", sa.String(16)),      # None (not checked) | ok | unchecked | outlier
    sa.Column("flag_reason", sa.Text),
    sa.Column("consensus", sa.Float),
    sa.Column("residual", sa.Float),
    sa.Index("measurements_night_target", "night", "target", "band", "jd"),
    sa.Index("measurements_node_night", "node_id", "night"),
)

#: A node's systematic offset per night and target, from cross-validation.
offsets = sa.Table(
    "offsets", metadata,
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), primary_key=True),
    sa.Column("night", sa.String(10), primary_key=True),
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("band", sa.String(8), primary_key=True),
    sa.Column("mag_offset", sa.Float, nullable=False),
    sa.Column("error", sa.Float, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("significant", sa.Boolean, nullable=False),
    sa.Column("computed", sa.Float, nullable=False),
)

#: The network consensus light curve: one point per target, band and time window.
consensus = sa.Table(
    "consensus", metadata,
    sa.Column("night", sa.String(10), primary_key=True),
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("band", sa.String(8), primary_key=True),
    sa.Column("win", sa.BigInteger, primary_key=True),
    sa.Column("jd", sa.Float, nullable=False),
    sa.Column("magnitude", sa.Float, nullable=False),
    sa.Column("error", sa.Float, nullable=False),
    sa.Column("n_nodes", sa.Integer, nullable=False),
    sa.Column("n_points", sa.Integer, nullable=False),
)

#: Report rows, each written once per member (the exactly-once key of the node's writer).
report_rows = sa.Table(
    "report_rows", metadata,
    sa.Column("obscode", sa.String(16), primary_key=True),
    sa.Column("mkey", sa.String(200), primary_key=True),
    sa.Column("measurement_id", sa.BigInteger, sa.ForeignKey("measurements.id"), nullable=False),
    sa.Column("night", sa.String(10), nullable=False),
    sa.Column("jd", sa.Float, nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("report_rows_night", "obscode", "night"),
)


#: What each node told the hub about itself in its heartbeat (site, limits, instrument,
#: weather), kept from the last heartbeat that carried it: the allocation's view of the node.
node_profiles = sa.Table(
    "node_profiles", metadata,
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), primary_key=True),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("height", sa.Float),
    sa.Column("sun_limit", sa.Float),
    sa.Column("min_altitude", sa.Float),
    sa.Column("max_altitude", sa.Float),
    sa.Column("horizon", sa.JSON),
    sa.Column("model", sa.String(64)),
    sa.Column("bright_limit", sa.Float),
    sa.Column("faint_limit", sa.Float),
    sa.Column("weather_veto", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("weather_reason", sa.Text),
    sa.Column("updated", sa.Float, nullable=False),
)

#: What the network wants observed: alerts and campaigns (posted by an admin, e.g. from the
#: Target Tool), members' requests, the network's own list. ``member`` is '' unless a request.
wanted = sa.Table(
    "wanted", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False),  # target_key()
    sa.Column("name", sa.String(64), nullable=False),  # as the member wrote it
    sa.Column("kind", sa.String(12), nullable=False),  # alert | campaign | request | list
    sa.Column("member", sa.String(16), nullable=False, server_default=""),
    sa.Column("ra", sa.Float),
    sa.Column("dec", sa.Float),
    sa.Column("brightest", sa.Float),
    sa.Column("faintest", sa.Float),
    sa.Column("cadence_days", sa.Float),
    sa.Column("priority", sa.Float, nullable=False, server_default="0"),
    sa.Column("until", sa.String(10)),  # last night wanted (inclusive); None: no end
    sa.Column("source", sa.String(64)),
    sa.Column("created", sa.Float, nullable=False),
    sa.UniqueConstraint("target", "kind", "member", name="wanted_target_kind_member"),
)

#: One allocation run per night: its inputs' fingerprint (a run with the same inputs changes
#: nothing), when, how long it took, and what was left unassigned and why.
allocations = sa.Table(
    "allocations", metadata,
    sa.Column("night", sa.String(10), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)

#: A node's assignment for a night: its content hash and expiry, and the node's answer.
assignments = sa.Table(
    "assignments", metadata,
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), primary_key=True),
    sa.Column("night", sa.String(10), primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("note", sa.Text),  # why it is empty, when it is
    sa.Column("ack_hash", sa.String(64)),
    sa.Column("ack_status", sa.String(12)),  # applied | refused
    sa.Column("ack_reason", sa.Text),
    sa.Column("ack_at", sa.Float),
)

#: The wishes of an assignment, one row per (node, night, target): when the target is
#: observable from that node (UTC epoch seconds) and why it was chosen.
assignment_items = sa.Table(
    "assignment_items", metadata,
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), primary_key=True),
    sa.Column("night", sa.String(10), primary_key=True),
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("ra", sa.Float, nullable=False),
    sa.Column("dec", sa.Float, nullable=False),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("assignment_items_night_target", "night", "target"),
)

#: Every acknowledgement ever accepted, so a replayed one is recognised and refused.
acks = sa.Table(
    "acks", metadata,
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), primary_key=True),
    sa.Column("subject", sa.String(120), primary_key=True),  # assignment:NIGHT:HASH | alert:ID
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("received", sa.Float, nullable=False),
)

#: An alert (a target the network wants tonight, urgently), delivered to the nodes assigned it.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("ra", sa.Float, nullable=False),
    sa.Column("dec", sa.Float, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
)

#: Which node an alert went to, and what the node did with it.
alert_deliveries = sa.Table(
    "alert_deliveries", metadata,
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), primary_key=True),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id"), primary_key=True),
    sa.Column("night", sa.String(10), nullable=False),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # pending | scheduled | refused
    sa.Column("at", sa.Float),
    sa.Column("reason", sa.Text),
)


class RawJSON(str):
    """A value already serialised as JSON (by pydantic): stored as it is, not encoded again."""


def _dumps(value: Any) -> str:
    if isinstance(value, RawJSON):
        return str(value)
    return json.dumps(value)


def engine_for(url: str, **kw: Any) -> Engine:
    """An engine for ``url``.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL; ``postgresql://`` means psycopg 3. SQLite gets WAL and a busy timeout
        (several worker threads write).
    **kw
        More :func:`sqlalchemy.create_engine` arguments (PostgreSQL: ``pool_size`` 10 and
        ``max_overflow`` 10 by default).

    Returns
    -------
    Engine
        JSON columns take :class:`RawJSON` values as they are.
    """
    kw.setdefault("json_serializer", _dumps)
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        eng = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               **kw)

        @sa.event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            journal_wal(dbapi_conn, 30.0)  # several threads may open a new file at once
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return eng
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 10)
    kw.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kw)


def insert_ignore(engine: Engine, table: sa.Table, keys: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` in the engine's own dialect.

    Parameters
    ----------
    engine : Engine
        PostgreSQL or SQLite.
    table : Table
        The table.
    keys : list of str
        The unique columns of the conflict.

    Returns
    -------
    Insert
        The statement (execute it with a list of rows: one multi-row ``VALUES``).
    """
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)


#: The columns a push writes, in order, with their PostgreSQL types.
_PUSH_COLUMNS = (("idem_key", "text"), ("node_id", "int4"), ("target", "text"), ("band", "text"),
                 ("night", "text"), ("jd", "float8"), ("magnitude", "float8"),
                 ("uncertainty", "float8"), ("quality", "text"), ("payload", "json"),
                 ("received", "float8"))
#: One INSERT for any number of rows: the rows travel as one JSON array (``json_to_recordset``),
#: so the statement text never changes (psycopg prepares it once per connection) instead of a
#: VALUES list of 11 parameters per row that the driver re-parses and escapes on every push;
#: the payloads, already JSON, are spliced in as they are.
_PG_PUSH = sa.text(
    "INSERT INTO measurements (" + ", ".join(c for c, _t in _PUSH_COLUMNS) + ") "
    "SELECT " + ", ".join(f"r.{c}" for c, _t in _PUSH_COLUMNS)
    + " FROM json_to_recordset(CAST(:rows AS json)) AS r("
    + ", ".join(f"{c} {t}" for c, t in _PUSH_COLUMNS) + ") "
    "ON CONFLICT (idem_key) DO NOTHING RETURNING idem_key")


def _rows_json(rows: list[dict[str, Any]]) -> str:
    """``rows`` as one JSON array, each row's :class:`RawJSON` payload spliced in unchanged."""
    parts = []
    for r in rows:
        head = json.dumps({c: r[c] for c, _t in _PUSH_COLUMNS if c != "payload"})
        parts.append(f'{head[:-1]}, "payload": {_dumps(r["payload"])}}}')
    return "[" + ",".join(parts) + "]"


def insert_measurements(conn: sa.Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert measurement rows, skipping keys already stored (``ON CONFLICT DO NOTHING``).

    Parameters
    ----------
    conn : Connection
        Inside the caller's transaction.
    rows : list of dict
        One per measurement, the keys of :data:`_PUSH_COLUMNS` (``payload``: :class:`RawJSON`).

    Returns
    -------
    set of str
        The ``idem_key`` of the rows inserted now.
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return set(conn.execute(_PG_PUSH, {"rows": _rows_json(rows)}).scalars())
    stmt = insert_ignore(conn.engine, measurements, ["idem_key"]).returning(
        measurements.c.idem_key)
    return set(conn.execute(stmt, rows).scalars())


#: The cross-check's verdicts, one statement for a whole night (as :data:`_PG_PUSH`).
_PG_FLAGS = sa.text(
    "UPDATE measurements SET flag = u.b_flag, flag_reason = u.b_reason, "
    "consensus = u.b_cons, residual = u.b_res "
    "FROM json_to_recordset(CAST(:rows AS json)) "
    "AS u(b_id bigint, b_flag text, b_reason text, b_cons float8, b_res float8) "
    "WHERE measurements.id = u.b_id")


def update_flags(conn: sa.Connection, updates: list[dict[str, Any]]) -> None:
    """Write the cross-check's verdict of each measurement.

    Parameters
    ----------
    conn : Connection
        Inside the caller's transaction.
    updates : list of dict
        ``b_id`` (measurement id), ``b_flag``, ``b_reason``, ``b_cons``, ``b_res``.
    """
    if not updates:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_FLAGS, {"rows": json.dumps(updates)})
        return
    m = measurements
    conn.execute(m.update().where(m.c.id == sa.bindparam("b_id"))
                 .values(flag=sa.bindparam("b_flag"), flag_reason=sa.bindparam("b_reason"),
                         consensus=sa.bindparam("b_cons"), residual=sa.bindparam("b_res")),
                 updates)


def migrate(engine: Engine) -> str:
    """Bring the database to the newest schema (Alembic ``upgrade head``).

    On PostgreSQL an advisory lock keeps concurrent starts from racing.

    Parameters
    ----------
    engine : Engine
        The hub's database.

    Returns
    -------
    str
        The revision now current.
    """
    # Alembic's INFO lines ("setup plugin ...", "Context impl ...") say nothing an operator
    # needs on every command: silenced before the import, which already logs.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config as AlembicConfig
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(87500001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        from alembic.runtime.migration import MigrationContext

        rev = MigrationContext.configure(conn).get_current_revision()
    log.debug("hub database at revision %s", rev)
    return str(rev)


def new_token(prefix: str) -> str:
    """A fresh bearer token (shown once, stored only as :func:`hash_token`).

    Parameters
    ----------
    prefix : str
        ``snn`` (node) or ``sna`` (admin), so a leaked token says what it is.

    Returns
    -------
    str
    """
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """The stored form of a token.

    Parameters
    ----------
    token : str
        The bearer token.

    Returns
    -------
    str
        Its SHA-256, hex.
    """
    return hashlib.sha256(token.encode()).hexdigest()
