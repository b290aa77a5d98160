"""``starnode hub plan|want|alert|request|requests|coverage``: the network's nights.

``plan`` allocates a night (again only when its inputs changed, unless ``--force``) and prints
it; ``want`` adds targets to the network's list (one, or a JSON file of many, e.g. a cached
Target Tool answer); ``alert`` posts an alert (allocated at once to nodes that can see it);
``request`` records a member's request and ``requests`` says what became of them, in words;
``coverage`` shows per target which nodes were asked and which observed, as text and a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add the planning subcommands to ``starnode hub``'s subparsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        ``starnode hub``'s subcommands.
    """
    s = sub.add_parser("plan", help="allocate a night's targets to the nodes and show it")
    s.add_argument("--night", required=True, metavar="YYYY-MM-DD")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.add_argument("--force", action="store_true",
                   help="allocate again even when nothing changed")
    s = sub.add_parser("want", help="add targets to the network's list")
    s.add_argument("name", nargs="?", metavar="STAR")
    s.add_argument("--file", type=Path, metavar="FILE.json",
                   help="a JSON list of {name, ra, dec, kind, brightest, faintest, "
                   "cadence_days, priority, until}, or a Target Tool answer {targets: [...]}")
    s.add_argument("--ra", type=float, help="ICRS right ascension, degrees")
    s.add_argument("--dec", type=float, help="ICRS declination, degrees")
    s.add_argument("--kind", choices=("list", "campaign"), default="list")
    s.add_argument("--brightest", type=float, metavar="MAG")
    s.add_argument("--faintest", type=float, metavar="MAG")
    s.add_argument("--cadence-days", type=float, metavar="D")
    s.add_argument("--priority", type=float, default=0.0)
    s.add_argument("--until", metavar="YYYY-MM-DD")
    s = sub.add_parser("alert", help="post an alert: sent at once to nodes that can see it")
    s.add_argument("name", metavar="STAR")
    s.add_argument("--ra", type=float, required=True)
    s.add_argument("--dec", type=float, required=True)
    s.add_argument("--until", metavar="YYYY-MM-DD")
    s.add_argument("--note", help="what it is about (an Alert Notice, ...)")
    s.add_argument("--node", action="append", metavar="NAME",
                   help="send it only to this node (repeatable); refused if it cannot see it")
    s = sub.add_parser("request", help="a member asks the network for a star")
    s.add_argument("star", metavar="STAR")
    s.add_argument("--member", required=True, metavar="CODE")
    s.add_argument("--until", metavar="YYYY-MM-DD")
    s.add_argument("--ra", type=float)
    s.add_argument("--dec", type=float)
    s = sub.add_parser("requests", help="what became of a member's requests, in words")
    s.add_argument("--member", required=True, metavar="CODE")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("coverage", help="per target, which nodes observed it and when")
    s.add_argument("--night", required=True, metavar="YYYY-MM-DD")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.add_argument("--png", type=Path, metavar="FILE.png",
                   help="also write a chart (and FILE.txt, its text alternative)")


def _night(text: str) -> str:
    from .app import _night as check

    return check(text)


def _plan(args: argparse.Namespace, store: Any) -> int:
    from .nightplans import plan_night

    out = plan_night(store, _night(args.night), force=args.force)
    if args.format == "json":
        print(json.dumps({k: out[k] for k in ("night", "assignments", "unassigned", "nodes",
                                              "created", "changed", "stats") if k in out},
                         indent=2))
        return 0
    stats = out.get("stats")
    print(f"night {out['night']}: {len(out['assignments'])} assignment(s) over "
          f"{len(out['nodes'])} node(s), {len(out['unassigned'])} target(s) unassigned"
          + ("" if out["changed"] else " (unchanged: same inputs as the last allocation)"))
    if stats:
        print(f"  {stats['targets']} target(s) covered, {stats['doubled']} on more than one "
              f"node ({100 * stats['doubled_share']:.0f} %), allocated in "
              f"{stats['seconds']:.2f} s")
    by_node: dict[str, list[dict[str, Any]]] = {}
    for a in out["assignments"]:
        by_node.setdefault(a["node"], []).append(a)
    for n in out["nodes"]:
        items = by_node.get(n["node"], [])
        head = f"{n['node']}: {len(items)} target(s), hash {n['hash']}, expires {n['expires']}"
        print(head + (f" - {n['note']}" if n["note"] else ""))
        for a in items:
            print(f"    {a['target']:<20} {a['start']} to {a['end']}  {a['kind']}")
    for u in out["unassigned"]:
        print(f"unassigned: {u['target']}: {u['reason']}")
    return 0


def _want_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.file is None:
        if not args.name:
            raise ValueError("give a STAR or --file")
        return [{"name": args.name, "ra": args.ra, "dec": args.dec, "kind": args.kind,
                 "brightest": args.brightest, "faintest": args.faintest,
                 "cadence_days": args.cadence_days, "priority": args.priority,
                 "until": args.until}]
    data = json.loads(args.file.read_text())
    rows = data.get("targets") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ValueError(f"{args.file}: expected a list of targets or {{\"targets\": [...]}}")
    out = []
    for r in rows:
        name = r.get("name") or r.get("star_name")
        if not name:
            raise ValueError(f"{args.file}: a target without a name: {str(r)[:80]}")
        out.append({"name": name, "ra": r.get("ra"), "dec": r.get("dec"),
                    "kind": r.get("kind", "list"), "brightest": r.get("brightest"),
                    "faintest": r.get("faintest"), "cadence_days": r.get("cadence_days"),
                    "priority": float(r.get("priority") or 0.0), "until": r.get("until")})
    return out


def _want(args: argparse.Namespace, store: Any) -> int:
    from .nightplans import add_wanted, check_name

    try:
        rows = _want_rows(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in rows:  # all or nothing: every name is checked before any is stored
        check_name(str(r["name"]))
    for r in rows:
        add_wanted(store, r.pop("name"), source="admin", **r)
    print(f"{len(rows)} target(s) on the network's list")
    return 0


def _alert(args: argparse.Namespace, store: Any) -> int:
    from .nightplans import post_alert

    out = post_alert(store, args.name, args.ra, args.dec,
                     until=_night(args.until) if args.until else None, note=args.note,
                     nodes=args.node)
    where = ", ".join(f"{n['node']} ({n['start'][11:16]}-{n['end'][11:16]} UTC)"
                      for n in out["nodes"]) or "no node can observe it tonight"
    print(f"alert {out['id']}: {out['target']} sent to {where}")
    return 0


def _request(args: argparse.Namespace, store: Any) -> int:
    from pydantic import ValidationError

    from .requests import add_request
    from .store import Principal
    from .wire import StarRequest

    try:
        req = StarRequest(star=args.star, member=args.member, until=args.until, ra=args.ra,
                          dec=args.dec)
    except ValidationError as exc:
        e = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(x) for x in e.get("loc", ()))
        print(f"error: {where}: {e.get('msg')}", file=sys.stderr)
        return 1
    print(add_request(store, Principal("admin"), req)["message"])
    return 0


def _requests(args: argparse.Namespace, store: Any) -> int:
    from .requests import news

    out = news(store, args.member)
    if args.json:
        print(json.dumps(out, indent=2))
    elif not out["requests"]:
        print(f"{out['member']} has asked for no star yet")
    for r in [] if args.json else out["requests"]:
        print(r["message"])
    return 0


def _coverage(args: argparse.Namespace, store: Any) -> int:
    from .coverage import coverage, coverage_png, coverage_text

    data = coverage(store, _night(args.night))
    text = coverage_text(data)
    print(json.dumps(data, indent=2) if args.format == "json" else text)
    if args.png:
        from ..util.fsio import atomic_write

        atomic_write(args.png, coverage_png(data))
        atomic_write(args.png.with_suffix(".txt"), (text + "\n").encode())
        print(f"chart: {args.png} (text alternative: {args.png.with_suffix('.txt')})",
              file=sys.stderr)
    return 0


COMMANDS = {"plan": _plan, "want": _want, "alert": _alert, "request": _request,
            "requests": _requests, "coverage": _coverage}
