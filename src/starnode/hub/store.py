"""What the hub does with its database, independent of HTTP: nodes and tokens, pushes stored
exactly once, heartbeats, the operator's node list.

Both the web app (:mod:`.app`) and the command line (:mod:`.cli`) use :class:`HubStore`, so
``starnode hub add-node`` on the server and a push over HTTP go through the same checks.

Exactly once: a measurement's key is (node, SHA-256 of the frame file, JD); the insert is
``ON CONFLICT (idem_key) DO NOTHING`` in one transaction per batch, so a batch resent after a
lost answer, a killed hub or a killed node stores nothing twice.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..config import OBSERVER_CODE_RULE, Config, ConfigError, ConfigLike, is_observer_code, resolve
from ..frame.timesite import night_of
from . import db
from .wire import Batch, Heartbeat

log = logging.getLogger(__name__)

__all__ = ["HubError", "HubStore", "Principal", "idem_key", "target_key"]

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class HubError(ValueError):
    """A request or command the hub refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to."""

    role: str  # "node" | "admin"
    node_id: int | None = None
    node: str | None = None
    observer_code: str | None = None
    held: bool = False


def target_key(name: str) -> str:
    """A target's key: upper case, blanks collapsed.

    Parameters
    ----------
    name : str
        The star's name.

    Returns
    -------
    str
    """
    return " ".join(name.upper().split())


def idem_key(node_id: int, frame_sha256: str, jd: float) -> str:
    """The exactly-once key of a measurement: node, frame content hash, JD (1e-6 day).

    Parameters
    ----------
    node_id : int
        The node.
    frame_sha256 : str
        The frame's content hash.
    jd : float
        Mid-exposure JD.

    Returns
    -------
    str
    """
    return f"{node_id}|{frame_sha256}|{jd:.6f}"


def _database_problem(url: str) -> str | None:
    from ..config.schema import _database_url

    return _database_url(url)


def database_url(cfg: Config) -> str:
    """``hub.database_url``, or a SQLite file ``hub.sqlite3`` in ``data_dir``.

    Parameters
    ----------
    cfg : Config
        The hub's configuration.

    Returns
    -------
    str
        A SQLAlchemy URL.
    """
    url = cfg.hub.database_url
    if url:
        problem = _database_problem(str(url))
        if problem:
            raise ConfigError(f"hub.database_url: {problem}")
        return str(url)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{cfg.data_dir / 'hub.sqlite3'}"


class HubStore:
    """The hub's data, over one SQLAlchemy engine (migrated on open)."""

    def __init__(self, config: ConfigLike, *, migrate: bool = True) -> None:
        self.cfg = resolve(config)
        self.url = database_url(self.cfg)
        self.engine = db.engine_for(self.url)
        self._auth_cache: dict[str, tuple[Principal | None, float]] = {}
        if migrate:
            db.migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ nodes and tokens
    def add_node(self, name: str, observer_code: str) -> str:
        """Register a node.

        Parameters
        ----------
        name : str
            The node's name (letters, digits, ``_.-``, up to 64).
        observer_code : str
            The member's AAVSO observer code.

        Returns
        -------
        str
            Its token (shown once, stored hashed).

        Raises
        ------
        HubError
            A bad name or code, or 409 when the name exists.
        """
        if not _NODE_NAME.match(name):
            raise HubError(f"node name {name!r}: letters, digits, '_', '.', '-' (max 64), "
                           "starting with a letter or digit")
        code = observer_code.strip().upper()
        if not is_observer_code(code):
            raise HubError(f"observer code {observer_code!r} is not an AAVSO observer code "
                           f"({OBSERVER_CODE_RULE})")
        token = db.new_token("snn")
        now = time.time()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(db.nodes.c.id).where(db.nodes.c.name == name)).first():
                raise HubError(f"a node named {name!r} exists already", 409)
            nid = conn.execute(db.nodes.insert().values(name=name, observer_code=code,
                                                        created=now)
                               .returning(db.nodes.c.id)).scalar_one()
            conn.execute(db.tokens.insert().values(hash=db.hash_token(token), role="node",
                                                   node_id=nid, label=name, created=now))
        log.info("node %s added for observer %s", name, code)
        return token

    def add_admin(self, label: str) -> str:
        """Create an admin token.

        Parameters
        ----------
        label : str
            What it is for (kept, up to 64 characters).

        Returns
        -------
        str
            The token (shown once, stored hashed).
        """
        token = db.new_token("sna")
        with self.engine.begin() as conn:
            conn.execute(db.tokens.insert().values(hash=db.hash_token(token), role="admin",
                                                   label=label[:64], created=time.time()))
        log.info("admin token %r added", label)
        return token

    def revoke(self, *, token: str | None = None, node: str | None = None,
               admin_label: str | None = None) -> int:
        """Revoke tokens: one token (by its value), every token of a node, or the admin
        tokens with a label. The rows are deleted: a revoked token is unknown (401).

        Parameters
        ----------
        token : str, optional
            The token itself (node or admin).
        node : str, optional
            A node's name: all its tokens (the node and its measurements stay; ``new-token``
            gives it a new one).
        admin_label : str, optional
            The label given to ``add-admin``.

        Returns
        -------
        int
            Tokens revoked.

        Raises
        ------
        HubError
            404 when nothing matched; 400 without exactly one of the arguments.
        """
        if sum(x is not None for x in (token, node, admin_label)) != 1:
            raise HubError("give exactly one of a token, a node name or an admin label")
        t = db.tokens
        if token is not None:
            where = t.c.hash == db.hash_token(token.strip())
            what = "that token"
        elif node is not None:
            where = t.c.node_id.in_(sa.select(db.nodes.c.id).where(db.nodes.c.name == node))
            what = f"node {node!r}"
        else:
            where = (t.c.role == "admin") & (t.c.label == admin_label)
            what = f"an admin token labelled {admin_label!r}"
        with self.engine.begin() as conn:
            n = conn.execute(t.delete().where(where)).rowcount
        if not n:
            raise HubError(f"no token of {what}", 404)
        self._auth_cache.clear()
        log.info("revoked %d token(s) of %s", n, what)
        return int(n)

    def new_token(self, node: str) -> str:
        """A new token for an existing node (after a revocation).

        Parameters
        ----------
        node : str
            The node's name.

        Returns
        -------
        str
            The token (shown once, stored hashed).

        Raises
        ------
        HubError
            404 when there is no such node.
        """
        token = db.new_token("snn")
        with self.engine.begin() as conn:
            nid = conn.execute(sa.select(db.nodes.c.id).where(db.nodes.c.name == node)
                               ).scalar_one_or_none()
            if nid is None:
                raise HubError(f"no node named {node!r}", 404)
            conn.execute(db.tokens.insert().values(hash=db.hash_token(token), role="node",
                                                   node_id=nid, label=node,
                                                   created=time.time()))
        return token

    def tokens(self) -> list[dict[str, Any]]:
        """Every token (never its value): role, node or label, created, hash prefix.

        Returns
        -------
        list of dict
        """
        t, n = db.tokens, db.nodes
        q = (sa.select(t.c.role, t.c.label, t.c.created, t.c.hash, n.c.name)
             .select_from(t.outerjoin(n, t.c.node_id == n.c.id)).order_by(t.c.created))
        with self.engine.connect() as conn:
            return [{"role": r.role, "node": r.name, "label": r.label, "created": r.created,
                     "hash_prefix": r.hash[:12]} for r in conn.execute(q)]

    _ping: tuple[bool, float] = (False, 0.0)

    def ping(self) -> bool:
        """Whether the database answers (remembered for a second: the health check is open
        to anyone and must not become a query per request).

        Returns
        -------
        bool
        """
        ok, until = self._ping
        if until > time.monotonic():
            return ok
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            ok = True
        except sa.exc.SQLAlchemyError as exc:
            log.warning("hub database unavailable: %s", str(exc).splitlines()[0])
            ok = False
        self._ping = (ok, time.monotonic() + 1.0)
        return ok

    #: Seconds an answer of :meth:`authenticate` is reused (a revoked token or a hold takes
    #: effect within this time; it saves a database round trip per request).
    AUTH_TTL = 10.0

    def cached_principal(self, token: str) -> tuple[Principal | None] | None:
        """:meth:`authenticate`'s answer if it is cached and fresh (no database access).

        Parameters
        ----------
        token : str
            The bearer token.

        Returns
        -------
        tuple or None
            ``(principal_or_None,)`` from the cache, or None when the database must be asked.
        """
        hit = self._auth_cache.get(db.hash_token(token))
        if hit is not None and hit[1] > time.monotonic():
            return (hit[0],)
        return None

    def authenticate(self, token: str | None) -> Principal | None:
        """Who ``token`` belongs to (answers are cached for :attr:`AUTH_TTL` seconds).

        Parameters
        ----------
        token : str or None
            The bearer token.

        Returns
        -------
        Principal or None
            None for an unknown, revoked or disabled token.
        """
        if not token:
            return None
        hit = self.cached_principal(token)
        if hit is not None:
            return hit[0]
        key = db.hash_token(token)
        who = self._authenticate(key)
        if len(self._auth_cache) > 10000:
            self._auth_cache.clear()
        self._auth_cache[key] = (who, time.monotonic() + self.AUTH_TTL)
        return who

    def _authenticate(self, token_hash: str) -> Principal | None:
        t, n = db.tokens, db.nodes
        q = (sa.select(t.c.role, n.c.id, n.c.name, n.c.observer_code, n.c.held, n.c.disabled)
             .select_from(t.outerjoin(n, t.c.node_id == n.c.id))
             .where(t.c.hash == token_hash))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        if row.role == "admin":
            return Principal("admin")
        if row.disabled:
            return None
        return Principal("node", row.id, row.name, row.observer_code, bool(row.held))

    def set_hold(self, name: str, held: bool, reason: str | None = None) -> None:
        """Hold a node for review, or release it.

        Parameters
        ----------
        name : str
            The node.
        held : bool
            Hold (True) or release.
        reason : str, optional
            Why (shown by ``starnode hub nodes``).

        Raises
        ------
        HubError
            404 when there is no such node.
        """
        with self.engine.begin() as conn:
            n = conn.execute(db.nodes.update().where(db.nodes.c.name == name).values(
                held=held, hold_reason=reason if held else None)).rowcount
        if not n:
            raise HubError(f"no node named {name!r}", 404)
        self._auth_cache.clear()

    # ------------------------------------------------------------------ pushes
    def push(self, who: Principal, batch: Batch) -> dict[str, Any]:
        """Store a batch exactly once, in one transaction.

        Parameters
        ----------
        who : Principal
            The pushing node (403 for an admin or another node's name in the batch).
        batch : Batch
            The validated batch.

        Returns
        -------
        dict
            ``stored`` (new now), ``duplicates`` (stored before) and ``keys`` (per
            measurement: ``key``, ``stored``).

        Raises
        ------
        HubError
            403, or 422 when the batch holds the same measurement twice.
        """
        if who.role != "node" or who.node_id is None:
            raise HubError("only a node token may push measurements", 403)
        if batch.node != who.node:
            raise HubError(f"this token belongs to node {who.node!r}, not {batch.node!r}", 403)
        now = time.time()
        rows = []
        for m in batch.measurements:
            payload = db.RawJSON(m.model_dump_json())
            rows.append({
                "idem_key": idem_key(who.node_id, m.frame_sha256, m.jd),
                "node_id": who.node_id, "target": target_key(m.target_name), "band": m.filter,
                "night": m.night or night_of(m.jd, m.site_longitude), "jd": m.jd,
                "magnitude": m.magnitude, "uncertainty": m.uncertainty,
                "quality": m.quality_flag, "payload": payload, "received": now})
        keys = [r["idem_key"] for r in rows]
        if len(set(keys)) != len(keys):
            raise HubError("the batch holds the same measurement twice (same frame and JD)",
                           422)
        with self.engine.begin() as conn:
            new = db.insert_measurements(conn, rows)
            conn.execute(db.nodes.update().where(db.nodes.c.id == who.node_id).values(
                last_contact=now, pushes=db.nodes.c.pushes + 1))
        return {"stored": len(new), "duplicates": len(rows) - len(new),
                "keys": [{"key": k, "stored": k in new} for k in keys]}

    def push_json(self, who: Principal, batch: Batch) -> bytes:
        """:meth:`push`, answered as JSON bytes (the HTTP response body).

        Parameters
        ----------
        who : Principal
            The pushing node.
        batch : Batch
            The validated batch.

        Returns
        -------
        bytes
        """
        return json.dumps(self.push(who, batch), separators=(",", ":")).encode()

    def heartbeat(self, who: Principal, hb: Heartbeat) -> None:
        """Record a node's heartbeat (and its last contact).

        Parameters
        ----------
        who : Principal
            The node (403 for an admin or another node's name).
        hb : Heartbeat
            The validated heartbeat.
        """
        if who.role != "node" or who.node_id is None:
            raise HubError("only a node token may send heartbeats", 403)
        if hb.node != who.node:
            raise HubError(f"this token belongs to node {who.node!r}, not {hb.node!r}", 403)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(db.nodes.update().where(db.nodes.c.id == who.node_id).values(
                last_contact=now, last_heartbeat=now, heartbeat=hb.model_dump(mode="json")))
            if any(x is not None for x in (hb.site, hb.limits, hb.instrument, hb.weather)):
                self._profile(conn, who.node_id, hb, now)

    @staticmethod
    def _profile(conn: sa.Connection, node_id: int, hb: Heartbeat, now: float) -> None:
        """Keep what the heartbeat says of the node's site, limits, instrument and weather;
        a part the heartbeat leaves out keeps its last known value."""
        p = db.node_profiles
        old = conn.execute(sa.select(p).where(p.c.node_id == node_id)).mappings().first()
        row: dict[str, Any] = dict(old) if old else {"node_id": node_id}
        if hb.site is not None:
            row.update(latitude=hb.site.latitude,
                       longitude=(hb.site.longitude + 180.0) % 360.0 - 180.0,
                       height=hb.site.height)
        if hb.limits is not None:
            row.update(sun_limit=hb.limits.sun_limit, min_altitude=hb.limits.min_altitude,
                       max_altitude=hb.limits.max_altitude,
                       horizon=[list(x) for x in hb.limits.horizon])
        if hb.instrument is not None:
            row.update(model=hb.instrument.model, bright_limit=hb.instrument.bright_limit,
                       faint_limit=hb.instrument.faint_limit)
        if hb.weather is not None:
            row.update(weather_veto=hb.weather.veto, weather_reason=hb.weather.reason)
        row["updated"] = now
        if old:
            conn.execute(p.update().where(p.c.node_id == node_id).values(**row))
        else:
            conn.execute(p.insert().values(**row))

    # ------------------------------------------------------------------ the operator's view
    def nodes(self) -> list[dict[str, Any]]:
        """Every node with last contact, heartbeat and counts (``starnode hub nodes``).

        Returns
        -------
        list of dict
            ``name``, ``observer_code``, ``state`` (ok, stale, failing, held, never seen),
            ``last_contact_age_s``, ``measurements``, ``flagged``, ``pushes``, ``held``,
            ``hold_reason``, ``heartbeat``.
        """
        m = db.measurements
        counts = (sa.select(m.c.node_id, sa.func.count().label("n"),
                            sa.func.sum(sa.case((m.c.flag == "outlier", 1), else_=0))
                            .label("flagged"), sa.func.max(m.c.jd).label("last_jd"))
                  .group_by(m.c.node_id).subquery())
        n = db.nodes
        q = (sa.select(n, counts.c.n, counts.c.flagged, counts.c.last_jd)
             .select_from(n.outerjoin(counts, counts.c.node_id == n.c.id)).order_by(n.c.name))
        stale_after = 3 * float(self.cfg.hub.heartbeat_interval)
        now = time.time()
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(q).mappings():
                hb = r["heartbeat"] or {}
                age = None if r["last_contact"] is None else now - r["last_contact"]
                state = ("never seen" if age is None else "stale" if age > stale_after
                         else "failing" if hb.get("recent_errors") else "ok")
                if r["held"]:
                    state = "held"
                out.append({"name": r["name"], "observer_code": r["observer_code"],
                            "state": state, "last_contact_age_s": age,
                            "measurements": int(r["n"] or 0),
                            "flagged": int(r["flagged"] or 0), "pushes": r["pushes"],
                            "held": bool(r["held"]), "hold_reason": r["hold_reason"],
                            "heartbeat": hb})
        return out

    def measurement_count(self) -> int:
        """How many measurements the hub holds.

        Returns
        -------
        int
        """
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(
                db.measurements)).scalar_one())


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a pair.

    Parameters
    ----------
    listen : str
        ``hub.listen``.

    Returns
    -------
    (str, int)

    Raises
    ------
    ConfigError
        Not ``HOST:PORT``.
    """
    host, _, port = listen.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"hub.listen: must be HOST:PORT, got {listen!r}") from None
    if not 1 <= number <= 65535:
        raise ConfigError(f"hub.listen: the port must be 1 to 65535, got {number}")
    return host.strip("[]") or "127.0.0.1", number
