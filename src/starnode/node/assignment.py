"""The node's copy of what the hub asks of it: its assignment and its alerts, kept in the data
folder so the node goes on with them when the hub cannot be reached.

Why files and not the hub alone: a node that loses the hub mid-night must go on with its last
assignment, and a restarted node must not ask the hub before it can plan. The forwarder
(:mod:`.client`) writes each new assignment atomically (:func:`starnode.util.fsio.atomic_write`)
to ``hub-assignment.json`` and only then acknowledges it; alerts go to ``hub-alerts.json``,
where the telescope runner records what it did with each (:func:`record_alert_outcome`: scheduled
at T, or refused and why) and the forwarder sends that answer with its next cycle.

What the planner and the runner call (all take the node's ``data_dir``):

* :func:`current_assignment` - the assignment for the night, or None (none, or expired);
* :func:`pending_alerts` - alerts not yet answered;
* :func:`record_alert_outcome` - the runner's answer to an alert.

What the hub sends is checked before anything is written: an assignment for another node, an
expired one, or one whose hash does not match its content is refused (:class:`Refused`) and the
last good assignment stays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..util.fsio import atomic_write

log = logging.getLogger(__name__)

__all__ = ["ALERTS_FILE", "ASSIGNMENT_FILE", "Refused", "assignment_applied",
           "current_assignment", "mark_alert_sent", "mark_assignment_acked",
           "mark_assignment_applied", "pending_alerts", "record_alert_outcome", "store_alerts",
           "store_assignment", "unacked_assignment", "unsent_alert_outcomes"]

ASSIGNMENT_FILE = "hub-assignment.json"
ALERTS_FILE = "hub-alerts.json"


class Refused(ValueError):
    """What the hub sent is not applied (the message says why)."""


def _utc(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"{text!r}: a time without its UTC offset")
    return t.astimezone(dt.UTC)


def _now(now: dt.datetime | None) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if now is None else now.astimezone(dt.UTC)


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One writer at a time (the forwarder's thread, the runner) for the read-modify-writes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".hub-plan.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("hub: cannot read %s: %s", path, exc)
        return None


def _write(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())


def check_assignment(node: str, assignment: dict[str, Any], now: dt.datetime | None = None
                     ) -> None:
    """Refuse an assignment that is not this node's, has expired, or is malformed.

    Parameters
    ----------
    node : str
        This node's name on the hub.
    assignment : dict
        The heartbeat answer's ``assignment``.
    now : datetime, optional
        Aware UTC time.

    Raises
    ------
    Refused
        With the reason.
    """
    try:
        owner, night, h = assignment["node"], assignment["night"], assignment["hash"]
        expires = _utc(assignment["expires"])
        dt.date.fromisoformat(night)
        for it in assignment.get("items") or []:
            if _utc(it["start"]) >= _utc(it["end"]):
                raise ValueError(f"item {it.get('target')}: start is not before end")
            float(it["ra_deg"])
            float(it["dec_deg"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(f"malformed assignment: {exc}") from None
    if owner != node:
        raise Refused(f"assignment {h} is for node {owner!r}, not this node ({node!r})")
    if expires <= _now(now):
        raise Refused(f"assignment {h} for {night} expired at {assignment['expires']}")


def store_assignment(data_dir: str | os.PathLike[str], node: str, assignment: dict[str, Any],
                     now: dt.datetime | None = None) -> bool:
    """Keep a new assignment (atomically), unless it is the one already kept.

    Parameters
    ----------
    data_dir : path-like
        The node's data folder.
    node : str
        This node's name on the hub.
    assignment : dict
        The heartbeat answer's ``assignment``.
    now : datetime, optional
        Aware UTC time.

    Returns
    -------
    bool
        True when it was new and is now written (it then needs an acknowledgement).

    Raises
    ------
    Refused
        Another node's, expired or malformed: nothing is written.
    """
    check_assignment(node, assignment, now)
    path = Path(data_dir) / ASSIGNMENT_FILE
    with _locked(Path(data_dir)):
        old = _read(path) or {}
        if (old.get("assignment") or {}).get("hash") == assignment["hash"] and \
                (old.get("assignment") or {}).get("night") == assignment["night"]:
            return False
        _write(path, {"assignment": assignment, "received": _now(now).strftime(
            "%Y-%m-%dT%H:%M:%SZ"), "acked": False, "applied": False})
    log.info("hub: new assignment %s for the night of %s: %d target(s)", assignment["hash"],
             assignment["night"], len(assignment.get("items") or []))
    return True


def mark_assignment_acked(data_dir: str | os.PathLike[str], night: str, h: str) -> None:
    """Remember that the hub has the acknowledgement of assignment ``h``.

    Parameters
    ----------
    data_dir : path-like
        The node's data folder.
    night, h : str
        The assignment's night and hash.
    """
    path = Path(data_dir) / ASSIGNMENT_FILE
    with _locked(Path(data_dir)):
        data = _read(path) or {}
        a = data.get("assignment") or {}
        if a.get("hash") == h and a.get("night") == night:
            data["acked"] = True
            _write(path, data)


def mark_assignment_applied(data_dir: str | os.PathLike[str], night: str, h: str) -> bool:
    """The telescope runner has the assignment ``h`` in its journal (its plan is made from it):
    only now may the forwarder acknowledge it as applied.

    Parameters
    ----------
    data_dir : path-like
        The node's data folder.
    night, h : str
        The assignment's night and hash.

    Returns
    -------
    bool
        True when it was marked now (False: already applied, or no longer the kept one).
    """
    path = Path(data_dir) / ASSIGNMENT_FILE
    with _locked(Path(data_dir)):
        data = _read(path) or {}
        a = data.get("assignment") or {}
        if a.get("hash") != h or a.get("night") != night or data.get("applied"):
            return False
        data["applied"] = True
        _write(path, data)
    log.info("hub: assignment %s for %s applied (in the telescope journal)", h, night)
    return True


def assignment_applied(data_dir: str | os.PathLike[str], h: str) -> bool:
    """Whether the kept assignment is ``h`` and the runner has applied it."""
    data = _read(Path(data_dir) / ASSIGNMENT_FILE) or {}
    return bool((data.get("assignment") or {}).get("hash") == h and data.get("applied"))


def unacked_assignment(data_dir: str | os.PathLike[str], *, applied_only: bool = False
                       ) -> dict[str, Any] | None:
    """The kept assignment when its acknowledgement has not reached the hub yet; with
    ``applied_only`` (a node whose telescope runner applies it), only once it is applied."""
    data = _read(Path(data_dir) / ASSIGNMENT_FILE) or {}
    if not data.get("assignment") or data.get("acked"):
        return None
    if applied_only and not data.get("applied"):
        return None
    return dict(data["assignment"])


def current_assignment(data_dir: str | os.PathLike[str], now: dt.datetime | None = None
                       ) -> dict[str, Any] | None:
    """The node's assignment from the hub, as last received, unless it has expired.

    This is what the node's planner reads (the hub's wishes: targets with their UTC windows);
    it works without the hub.

    Parameters
    ----------
    data_dir : path-like
        The node's data folder (``config.data_dir``).
    now : datetime, optional
        Aware UTC time.

    Returns
    -------
    dict or None
        ``node``, ``night``, ``hash``, ``expires``, ``note``, ``items`` (``target``,
        ``ra_deg``, ``dec_deg``, ``start``, ``end`` ISO 8601 UTC, ``kind``, ``priority``,
        ``reason``); None when there is none or it has expired.
    """
    data = _read(Path(data_dir) / ASSIGNMENT_FILE) or {}
    a = data.get("assignment")
    if not a:
        return None
    try:
        if _utc(a["expires"]) <= _now(now):
            return None
    except (KeyError, ValueError):
        return None
    return dict(a)


def store_alerts(data_dir: str | os.PathLike[str], alerts: list[dict[str, Any]]) -> int:
    """Keep the alerts of a heartbeat answer (each once, by id).

    Parameters
    ----------
    data_dir : path-like
        The node's data folder.
    alerts : list of dict
        The heartbeat answer's ``alerts``.

    Returns
    -------
    int
        How many were new.
    """
    if not alerts:
        return 0
    path = Path(data_dir) / ALERTS_FILE
    with _locked(Path(data_dir)):
        kept = _read(path) or {}
        new = 0
        for a in alerts:
            key = str(int(a["id"]))
            if key not in kept:
                kept[key] = {"alert": a, "outcome": None, "sent": False}
                new += 1
        if new:
            _write(path, kept)
    if new:
        log.warning("hub: %d new alert(s): %s", new, ", ".join(str(a.get("target"))
                                                              for a in alerts))
    return new


def pending_alerts(data_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Alerts the runner has not answered yet (``id``, ``target``, ``ra_deg``, ``dec_deg``,
    ``start``, ``end``, ``expires``, ``note``).

    Parameters
    ----------
    data_dir : path-like
        The node's data folder.

    Returns
    -------
    list of dict
    """
    kept = _read(Path(data_dir) / ALERTS_FILE) or {}
    return [v["alert"] for _k, v in sorted(kept.items(), key=lambda kv: int(kv[0]))
            if v.get("outcome") is None]


def record_alert_outcome(data_dir: str | os.PathLike[str], alert_id: int, *,
                         scheduled_at: dt.datetime | None = None,
                         refused: str | None = None) -> None:
    """What the runner did with an alert (after it is in the runner's journal): scheduled at
    ``scheduled_at``, or ``refused`` with the reason. The forwarder sends it to the hub.

    Parameters
    ----------
    data_dir : path-like
        The node's data folder.
    alert_id : int
        The alert.
    scheduled_at : datetime, optional
        Aware UTC time the alert's target is scheduled for.
    refused : str, optional
        Why it was refused (a safety gate, below the horizon, ...).

    Raises
    ------
    ValueError
        Neither or both given, a naive time, or an unknown alert.
    """
    if (scheduled_at is None) == (refused is None):
        raise ValueError("give scheduled_at or refused (one of them)")
    if scheduled_at is not None and scheduled_at.tzinfo is None:
        raise ValueError("scheduled_at must be an aware (UTC) datetime")
    path = Path(data_dir) / ALERTS_FILE
    with _locked(Path(data_dir)):
        kept = _read(path) or {}
        entry = kept.get(str(int(alert_id)))
        if entry is None:
            raise ValueError(f"alert {alert_id} was not received from the hub")
        at = scheduled_at or dt.datetime.now(dt.UTC)
        entry["outcome"] = {"status": "scheduled" if refused is None else "refused",
                            "at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "reason": refused}
        _write(path, kept)


def unsent_alert_outcomes(data_dir: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """Outcomes recorded but not yet accepted by the hub: ``(alert id, outcome)``."""
    kept = _read(Path(data_dir) / ALERTS_FILE) or {}
    return [(int(k), v["outcome"]) for k, v in kept.items()
            if v.get("outcome") is not None and not v.get("sent")]


def mark_alert_sent(data_dir: str | os.PathLike[str], alert_id: int, answer: str) -> None:
    """Remember the hub's answer to an alert outcome (accepted, or refused for good)."""
    path = Path(data_dir) / ALERTS_FILE
    with _locked(Path(data_dir)):
        kept = _read(path) or {}
        entry = kept.get(str(int(alert_id)))
        if entry is not None:
            entry["sent"] = True
            entry["hub_answer"] = answer[:300]
            _write(path, kept)
