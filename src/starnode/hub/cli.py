"""``starnode hub ...``: the hub operator's commands.

``serve`` runs the API; ``add-node`` registers a member's telescope and prints its token once;
``add-admin`` makes an admin token; ``nodes`` shows every node's health at a glance (stale,
failing, held); ``crosscheck`` and ``report`` run the cross-validation and write a member's
AAVSO report of a night; ``release`` lifts a hold after review; the network's nights
(``plan``, ``want``, ``alert``, ``request``, ``requests``, ``coverage``) are in
:mod:`starnode.hub.plancli`. All take the global
``--config hub.yaml`` (its ``hub:`` section, docs/hub.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import sys
import time
import unicodedata
from typing import Any

from ..config import Config, ConfigError, redact_url

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
    s = sub.add_parser("revoke", help="revoke a token: every token of a node, one token, or "
                       "the admin tokens with a label")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("node", metavar="NODE", nargs="?", help="revoke every token of this node")
    g.add_argument("--token", metavar="TOKEN", help="revoke this token (node or admin); "
                   "'-' reads it from stdin")
    g.add_argument("--admin", metavar="LABEL", help="revoke the admin tokens with this label")
    s = sub.add_parser("new-token", help="a new token for a node (after a revocation); "
                       "printed once")
    s.add_argument("name", metavar="NAME")
    s = sub.add_parser("tokens", help="every token: role, node or label, created (never the "
                       "token itself)")
    s.add_argument("--json", action="store_true")
    from .plancli import add_parsers

    add_parsers(sub)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _check_port_free(host: str, port: int) -> None:
    """Raise :class:`ConfigError` when ``host:port`` cannot be listened on (busy, or not an
    address of this machine): before anything says the hub is up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is "
                              "another hub running there? set hub.listen or --listen)"
                              ) from None


def _serve(cfg: Config, args: argparse.Namespace) -> int:
    import uvicorn

    from .app import CONFIG_ENV, SUPERVISOR_ENV, create_app
    from .store import HubStore, parse_listen

    host, port = parse_listen(args.listen or cfg.hub.listen)
    workers = int(cfg.hub.workers)
    if workers > 1 and not cfg.source:
        print("error: hub.workers > 1 needs --config FILE", file=sys.stderr)
        return 2
    _check_port_free(host, port)
    store = HubStore(cfg)  # migrates before any worker starts
    log.info("starnode hub on http://%s:%d (%s, %d worker(s))", host, port,
             store.engine.url.render_as_string(hide_password=True), workers)
    if workers > 1:
        store.close()
        os.environ[CONFIG_ENV] = os.path.abspath(str(cfg.source))
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
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
        The exit status (1: the hub refused the command; 2: it cannot run: a missing extra,
        a database that cannot be reached, a port that is busy).
    """
    try:
        import sqlalchemy.exc as sa_exc

        from .store import HubError, HubStore
    except ModuleNotFoundError as exc:
        print(f"error: the hub needs its extra (missing module {exc.name}): "
              "pip install 'starnode[hub]'", file=sys.stderr)
        return 2
    try:
        if args.hub_command == "serve":
            return _serve(cfg, args)
        store = HubStore(cfg)
        try:
            return _command(args, store)
        finally:
            store.close()
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if exc.status < 500 else 2
    except ModuleNotFoundError as exc:
        print(f"error: the hub needs its extra (missing module {exc.name}): "
              "pip install 'starnode[hub]'", file=sys.stderr)
        return 2
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        print(f"error: cannot reach the hub database {_database(cfg)}: "
              f"{first[0] if first else type(exc).__name__}", file=sys.stderr)
        return 2


def _database(cfg: Config) -> str:
    url = cfg.hub.database_url
    return redact_url(str(url)) if url else f"(SQLite in {cfg.data_dir})"


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


def clean(value: Any, limit: int = 80) -> str:
    """``value`` as one line a terminal shows as it is: control characters and escape
    sequences as ``\\x..`` (a node's heartbeat must not clear the operator's screen or forge
    a row), cut to ``limit`` characters.

    Parameters
    ----------
    value : Any
        What a node sent.
    limit : int
        At most this many characters (an ellipsis marks a cut).

    Returns
    -------
    str
    """
    text = "".join(c if c.isprintable() and unicodedata.category(c) not in ("Cf", "Co", "Cs")
                   else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: Any, fmt: str, limit: int = 8) -> str:
    """A number from a heartbeat, formatted and bounded (``-`` when it is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    if not math.isfinite(value) or abs(value) >= 10 ** limit:
        return f">1e{limit}" if value > 0 else "?"
    return format(value, fmt)


def _node_line(n: dict[str, Any]) -> str:
    hb = n["heartbeat"] if isinstance(n["heartbeat"], dict) else {}
    notes = [clean(hb.get("version") or "-", 24)]
    if hb.get("watch_mode"):
        notes.append(f"watch {clean(hb['watch_mode'], 24)}")
    if n["hold_reason"]:
        notes.append(f"HELD: {clean(n['hold_reason'], 200)}")
    errors = hb.get("recent_errors")
    notes += [f"error: {clean(e, 120)}" for e in (errors if isinstance(errors, list)
                                                  else [])[:2]]
    return (f"{clean(n['name'], 16):<16} {clean(n['observer_code'], 8):<8} "
            f"{n['state']:<10} {_age(n['last_contact_age_s']):<14} "
            f"{_number(n['measurements'], 'd', 7):>7} {_number(n['flagged'], 'd', 5):>5} "
            f"{_number(hb.get('queue_length'), 'd', 6):>6} "
            f"{_number(hb.get('free_disk_gb'), '.1f', 6):>8}  {'; '.join(notes)}")


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
        print(json.dumps(nodes, indent=2, default=str))  # JSON escapes control characters
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


def _revoke(args: argparse.Namespace, store: Any) -> int:
    token = args.token
    if token == "-":
        token = sys.stdin.readline().strip()
    n = store.revoke(token=token, node=args.node, admin_label=args.admin)
    print(f"{n} token(s) revoked (other hub workers stop accepting them within "
          f"{store.AUTH_TTL:.0f} s)")
    return 0


def _new_token(args: argparse.Namespace, store: Any) -> int:
    print(store.new_token(args.name))
    print(f"new token for node {args.name} (shown only once)", file=sys.stderr)
    return 0


def _tokens(args: argparse.Namespace, store: Any) -> int:
    rows = store.tokens()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["created"]))
        print(f"{r['role']:<6} {clean(r['node'] or r['label'] or '-', 32):<32} {when} UTC  "
              f"sha256 {r['hash_prefix']}…")
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
             "nodes": _nodes, "crosscheck": _crosscheck, "report": _report,
             "revoke": _revoke, "new-token": _new_token, "tokens": _tokens}


def _command(args: argparse.Namespace, store: Any) -> int:
    from .plancli import COMMANDS

    return {**_COMMANDS, **COMMANDS}[args.hub_command](args, store)
