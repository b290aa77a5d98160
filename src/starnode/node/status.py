"""What ``starnode status`` shows: the ledger by state, recent frames, problems by reason,
frames measured but not reported, and the outbox. :func:`status_data` is the data (also the
``--json`` output); :func:`status_lines` is its text form."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import Config
from ..store import Ledger
from .lines import frame_line, short_reason

log = logging.getLogger("starnode.node")

__all__ = ["status_data", "status_lines"]

#: Upload states of outbox rows, as status shows them.
_UPLOAD = {"manual": "for you to upload", "none": "dry run, not for upload",
           "pending": "to upload", "uploading": "upload under way", "sent": "sent",
           "uncertain": "upload uncertain (see docs/aavso.md)"}


def _outbox_files(cfg: Config) -> list[dict[str, Any]]:
    from ..aavso import outbox_files

    try:
        return list(outbox_files(cfg))
    except Exception as exc:  # a damaged database must not hide the rest of the status
        log.warning("cannot list the outbox: %s", exc)
        return []


def _report_checks(cfg: Config) -> list[dict[str, Any]]:
    """Report files that are not what the index says (deleted, truncated, altered, invalid,
    or with rows the index does not know), with what to do."""
    from ..aavso.recovery import check_reports

    try:
        return [c.as_dict() for c in check_reports(cfg) if c.state != "ok"]
    except Exception as exc:  # a damaged database must not hide the rest of the status
        log.warning("cannot check the report files: %s", exc)
        return []


def status_data(cfg: Config, last: int = 10) -> dict[str, Any]:
    """The node's state, read-only.

    Parameters
    ----------
    cfg : Config
        The configuration (its ``data_dir``).
    last : int
        How many recent frames to include.

    Returns
    -------
    dict
        ``data_dir``, ``db``, ``counts`` (frames by state), ``copies`` (state -> measured or
        reported frames that repeat an observation already counted: the same exposure copied
        again),
        ``synthetic`` (measured frames that are made-up demo frames),
        ``targets``, ``recent``, ``recent_lines``, ``problems``, ``outbox``, ``reports`` (report
        files needing attention),
        ``not_reported``: plain JSON-able values.
    """
    with Ledger(cfg) as ledger:
        counts = ledger.counts()
        copies = ledger.copies()
        synthetic = ledger.synthetic()
        recent = ledger.frames(limit=last, newest_first=True)
        problems = ledger.problems()
        targets = ledger.targets()
        held = ledger.frames(states=["measured"])
    return {"data_dir": str(cfg.data_dir), "db": str(cfg.db_path), "counts": counts,
            "copies": copies, "synthetic": synthetic,
            "targets": [{"target": t, "frames": n} for t, n in targets],
            "recent": [{"id": f.id, "path": f.path, "state": f.state, "reason": f.reason,
                        "category": f.category, "target": f.target, "magnitude": f.magnitude,
                        "uncertainty": f.uncertainty, "quality": f.quality,
                        "updated": f.updated} for f in recent],
            "recent_lines": [frame_line(f) for f in recent],
            "problems": problems, "outbox": _outbox_files(cfg),
            "reports": _report_checks(cfg),
            "not_reported": [{"path": f.path, "status": (f.submission or {}).get("status"),
                              "message": (f.submission or {}).get("message")} for f in held],
            "hub": _hub_queue(cfg), "telescope": _telescope(cfg)}


def _telescope(cfg: Config) -> dict[str, Any] | None:
    """The telescope's state and last steps (``starnode observe``), None when it never ran."""
    from ..telescope.status import telescope_status

    return telescope_status(cfg)


def _hub_queue(cfg: Config) -> dict[str, Any] | None:
    """The hub forwarding queue (``hub.url`` set), else None."""
    if not cfg.hub.url:
        return None
    from .forwarder import queue_summary

    return queue_summary(cfg) or {"url": cfg.hub.url, "counts": {}, "errors": []}


def _hub_lines(hub: dict[str, Any] | None) -> list[str]:
    if hub is None:
        return []
    out = [f"hub queue ({hub['url']}): " + (", ".join(
        f"{n} {s}" for s, n in sorted(hub["counts"].items())) or "empty")]
    out += [f"  {e['state']}: {e['last_error']}" for e in hub.get("errors") or []]
    return out


def _problem_lines(problems: list[dict[str, Any]]) -> list[str]:
    out = ["skipped and failed frames, by reason:"] if problems else []
    for p in problems:
        cat = f"[{p['category']}] " if p["category"] else ""
        out.append(f"  {p['n']:>4} {p['state']:<7} {cat}{short_reason(p['reason'], p['example'])}")
        out.append(f"       e.g. {p['example']}")
    return out


def _held_lines(held: list[dict[str, Any]]) -> list[str]:
    out = ["measured but not reported:"] if held else []
    for h in held[-20:]:
        why = f"{h['status']}: {h['message']}" if h["status"] else "submission pending"
        out.append(f"  {Path(h['path']).name}: {why}")
    return out


def _report_lines(reports: list[dict[str, Any]]) -> list[str]:
    out = ["report files needing attention:"] if reports else []
    for r in reports:
        out.append(f"  {r['path']}: {r['state'].upper()} ({r['message']})")
        out.append(f"       what to do: {r['advice']}")
    return out


def _outbox_line(o: dict[str, Any], damaged: dict[str, str]) -> str:
    demo = str(o.get("obscode", "")).upper() == "DEMO"
    if o["path"] in damaged:
        return f"  {o['path']}  ({damaged[o['path']].upper()}: see above)"
    synthetic = int(o.get("synthetic") or 0)
    states = "" if demo or synthetic else ", ".join(
        f"{n} {_UPLOAD.get(s, s)}" for s, n in (o.get("states") or {}).items())
    mark = (f"  SYNTHETIC: {synthetic} row(s) from made-up demo frames, not observations: "
            "never upload" if synthetic else "  DEMO DATA: never upload" if demo else "")
    return (f"  {o['path']}  ({o['rows']} row(s){'; ' + states if states else ''}"
            f"{'; DRY RUN' if o.get('dry_run') else ''}){mark}")


def status_lines(data: dict[str, Any]) -> list[str]:
    """The text of ``starnode status`` for :func:`status_data`'s answer."""
    c = dict(data["counts"])
    copies: dict[str, int] = data.get("copies") or {}
    for state, n in copies.items():  # observations: a frame copied twice is counted once
        c[state] = c.get(state, 0) - n
    extra = sum(copies.values())
    out = [f"data: {data['data_dir']}",
           f"frames: {sum(c.values()) + extra} - " + ", ".join(f"{n} {s}" for s, n in c.items())
           + (f", {extra} copies of frames already measured (counted and reported once)"
              if extra else "")]
    if data.get("synthetic"):
        out.append(f"SYNTHETIC: {data['synthetic']} measured frame(s) are made-up demo frames "
                   "(SYNTHET = T), not observations: never upload their reports")
    if data["targets"]:
        out.append("targets: " + ", ".join(f"{t['target']} ({t['frames']})"
                                           for t in data["targets"]))
    if data["recent_lines"]:
        out.append(f"last {len(data['recent_lines'])} frame(s), newest first:")
        out += [f"  {line}" for line in data["recent_lines"]]
    out += _problem_lines(data["problems"]) + _held_lines(data["not_reported"])
    reports = data.get("reports") or []
    damaged = {r["path"]: r["state"] for r in reports if r["state"] != "unindexed"}
    out += _report_lines(reports)
    if data["outbox"]:
        out.append("outbox (files to upload at https://www.aavso.org/webobs/file):")
        out += [_outbox_line(o, damaged) for o in data["outbox"]]
    else:
        out.append("outbox: empty")
    from ..telescope.status import telescope_lines

    return out + _hub_lines(data.get("hub")) + telescope_lines(data.get("telescope"))
