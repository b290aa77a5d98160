"""``starnode hub ...``: the hub operator's commands.

``serve`` runs the API; ``add-node`` registers a member's telescope and prints its token once;
``add-admin`` makes an admin token; ``nodes`` shows every node's health at a glance (stale,
failing, held); ``crosscheck`` and ``report`` run the cross-validation and write a member's
AAVSO report of a night; ``release`` lifts a hold after review; the network's nights
(``plan``, ``want``, ``alert``, ``request``, ``requests``, ``coverage``) are in
:mod:`starnode.cli.hubplan`. All take the global
``--config hub.yaml`` (its ``hub:`` section, docs/hub.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from ..config import Config

log = logging.getLogger(__name__)

__all__ = ["add_parser_arguments", "cmd_hub"]


def add_parser_arguments(sp: argparse.ArgumentParser) -> None:
    """Add the ``hub`` subcommands to the ``hub`` command's parser.

    Parameters
    ----------
    sp : argparse.ArgumentParser
        The parser of ``starnode hub``.
    """
    sub = sp.add_subparsers(dest="hub_command", metavar="HUBCOMMAND", required=True)
    s = sub.add_parser("serve", help="run the hub's HTTP API (hub.listen, hub.database_url)")
    s.add_argument("--listen", metavar="HOST:PORT", help="override hub.listen")
    s = sub.add_parser("add-node", help="register a node; prints its token once")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--observer-code", required=True, metavar="CODE",
                   help="the member's AAVSO observer code")
    s = sub.add_parser("add-admin", help="create an admin token; prints it once")
    s.add_argument("label", metavar="LABEL", nargs="?", default="admin")
    s = sub.add_parser("nodes", help="every node: state, last contact, heartbeat, counts")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("crosscheck", help="cross-validate a night (flags, offsets, holds)")
    s.add_argument("--night", required=True, metavar="YYYY-MM-DD")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("report", help="write a member's AAVSO report of a night")
    s.add_argument("--member", required=True, metavar="CODE", help="AAVSO observer code")
    s.add_argument("--night", required=True, metavar="YYYY-MM-DD")
    s = sub.add_parser("release", help="lift a node's hold after review")
    s.add_argument("name", metavar="NAME")
    from ..cli.hubplan import add_parsers

    add_parsers(sub)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _serve(cfg: Config, args: argparse.Namespace) -> int:
    import uvicorn

    from .app import CONFIG_ENV, create_app
    from .store import HubStore, parse_listen

    host, port = parse_listen(args.listen or cfg.hub.listen)
    store = HubStore(cfg)  # migrates before any worker starts
    workers = int(cfg.hub.workers)
    log.info("starnode hub on http://%s:%d (%s, %d worker(s))", host, port,
             store.engine.url.render_as_string(hide_password=True), workers)
    if workers > 1:
        if not cfg.source:
            print("error: hub.workers > 1 needs --config FILE", file=sys.stderr)
            return 2
        store.close()
        os.environ[CONFIG_ENV] = os.path.abspath(cfg.source)
        uvicorn.run("starnode.hub.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_config=None, proxy_headers=True,
                    timeout_keep_alive=30)
    else:
        uvicorn.run(create_app(store=store), host=host, port=port, log_config=None,
                    proxy_headers=True, timeout_keep_alive=30)
    return 0


def cmd_hub(args: argparse.Namespace, cfg: Config) -> int:
    """Run ``starnode hub ...``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    cfg : Config
        The configuration (its ``hub:`` section).

    Returns
    -------
    int
        The exit status (1: the hub refused the command).
    """
    from .store import HubError, HubStore

    if args.hub_command == "serve":
        return _serve(cfg, args)
    store = HubStore(cfg)
    try:
        return _command(args, store)
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if exc.status < 500 else 2
    finally:
        store.close()


def _add_node(args: argparse.Namespace, store: Any) -> int:
    print(store.add_node(args.name, args.observer_code))
    print(f"node {args.name} added; give it this token (shown only once) as hub.token or "
          "$STARNODE_HUB_TOKEN", file=sys.stderr)
    return 0


def _add_admin(args: argparse.Namespace, store: Any) -> int:
    print(store.add_admin(args.label))
    print("admin token created (shown only once)", file=sys.stderr)
    return 0


def _release(args: argparse.Namespace, store: Any) -> int:
    store.set_hold(args.name, False)
    print(f"node {args.name} released")
    return 0


def _node_line(n: dict[str, Any]) -> str:
    hb = n["heartbeat"] or {}
    disk = hb.get("free_disk_gb")
    notes = [str(hb.get("version") or "-")]
    if hb.get("watch_mode"):
        notes.append(f"watch {hb['watch_mode']}")
    if n["hold_reason"]:
        notes.append(f"HELD: {n['hold_reason']}")
    notes += [f"error: {e}" for e in (hb.get("recent_errors") or [])[:2]]
    return (f"{n['name']:<16} {n['observer_code']:<8} {n['state']:<10} "
            f"{_age(n['last_contact_age_s']):<14} {n['measurements']:>7} "
            f"{n['flagged']:>5} {hb.get('queue_length', '-')!s:>6} "
            f"{'-' if disk is None else f'{disk:.1f}':>8}  {'; '.join(notes)}")


def _tonight_line(t: dict[str, Any]) -> str:
    if t.get("night") is None:
        return "    no assignment" + (f"; alerts in flight: {', '.join(t['alerts_in_flight'])}"
                                     if t.get("alerts_in_flight") else "")
    line = (f"    night {t['night']}: {t['items']} target(s) assigned ({t['ack']}), "
            f"observed {t['observed']} measurement(s) of {t['targets_observed']} target(s)")
    if t.get("note"):
        line += f"; {t['note']}"
    if t.get("alerts_in_flight"):
        line += f"; alerts in flight: {', '.join(t['alerts_in_flight'])}"
    return line


def _nodes(args: argparse.Namespace, store: Any) -> int:
    from .coverage import node_nights

    nodes = store.nodes()
    tonight = node_nights(store)
    for n in nodes:
        n["tonight"] = tonight.get(n["name"])
    if args.json:
        print(json.dumps(nodes, indent=2, default=str))
    elif not nodes:
        print("no nodes yet (starnode hub add-node NAME --observer-code CODE)")
    else:
        print(f"{'NODE':<16} {'OBS':<8} {'STATE':<10} {'LAST CONTACT':<14} {'MEAS':>7} "
              f"{'FLAG':>5} {'QUEUE':>6} {'DISK GB':>8}  VERSION / NOTES")
        for n in nodes:
            print(_node_line(n))
            if n["tonight"]:
                print(_tonight_line(n["tonight"]))
    return 0


def _crosscheck(args: argparse.Namespace, store: Any) -> int:
    from .app import _night
    from .consensus import crosscheck

    summary = crosscheck(store, _night(args.night))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"night {summary['night']}: {summary['measurements']} measurement(s), "
          f"{summary['windows']} consensus window(s), {summary['outliers']} outlier(s), "
          f"{summary['unchecked']} unchecked ({summary['seconds']:.2f} s)")
    for o in summary["offsets"]:
        print(f"  {o['node']:<16} {o['target']} {o['band']}: offset {o['mag_offset']:+.3f}"
              f" ± {o['error']:.3f} mag ({o['n']} points)"
              + ("  SIGNIFICANT" if o["significant"] else ""))
    if summary["held"]:
        print(f"held for review: {', '.join(summary['held'])}")
    return 0


def _report(args: argparse.Namespace, store: Any) -> int:
    from .app import _night
    from .reports import member_report

    t0 = time.monotonic()
    out = member_report(store, args.member, _night(args.night))
    print(out["path"])
    print(f"{out['rows']} row(s), {len(out['left_out'])} left out, validated "
          f"({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    for x in out["left_out"]:
        print(f"  left out: {x}", file=sys.stderr)
    return 0


_COMMANDS = {"add-node": _add_node, "add-admin": _add_admin, "release": _release,
             "nodes": _nodes, "crosscheck": _crosscheck, "report": _report}


def _command(args: argparse.Namespace, store: Any) -> int:
    from ..cli.hubplan import COMMANDS

    return {**_COMMANDS, **COMMANDS}[args.hub_command](args, store)
