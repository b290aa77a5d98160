"""The ``starnode`` command line.

Every command takes the global options ``--config FILE`` (default: ``./config.yaml`` when it
exists, else the built-in defaults), ``--data-dir DIR`` (overrides ``data_dir``) and
``--log-level``; they may stand before or after the command name. Exit status: 0 success,
1 the command found problems (validator errors, doctor failures, frames failed), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, ConfigError, example_yaml

log = logging.getLogger("starnode")

__all__ = ["load_config", "main"]

DEFAULT_CONFIG = "config.yaml"


# ---------------------------------------------------------------------------- config
def load_config(path: str | None, data_dir: str | None = None) -> Config:
    """``--config`` (or ./config.yaml when present, else defaults) with ``--data-dir`` applied."""
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    cfg = Config.load(path) if path is not None else Config({}, source=None)
    if data_dir is not None:
        raw = dict(cfg.raw)
        raw["data_dir"] = str(Path(data_dir).expanduser().resolve())
        cfg = Config(raw, source=cfg.source)
    return cfg


# ---------------------------------------------------------------------------- progress
class Progress:
    """A one-line text progress bar on stderr; silent when stderr is not a terminal."""

    def __init__(self, total: int, *, stream: Any = None, enabled: bool | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.t0 = time.monotonic()
        self.done = 0

    def update(self, done: int, counts: dict[str, int]) -> None:
        self.done = done
        if not self.enabled or self.total <= 0:
            return
        width = 30
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        elapsed = time.monotonic() - self.t0
        eta = ""
        if 0 < done < self.total:
            left = elapsed / done * (self.total - done)
            eta = f" ETA {int(left // 60)}:{int(left % 60):02d}"
        extra = ", ".join(f"{counts[k]} {k}" for k in ("skipped", "failed") if counts.get(k))
        self.stream.write(f"\r[{bar}] {done}/{self.total}" + (f" ({extra})" if extra else "")
                          + eta + "   ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total > 0:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from .node import Node, NodeBusy

    if args.watch:
        raw = dict(cfg.raw)
        raw["watch"] = {**(raw.get("watch") or {}), "path": args.watch}
        raw["data_dir"] = str(cfg.data_dir)
        cfg = Config(raw, source=cfg.source)
    node = Node(cfg, workers=args.workers)
    try:
        counts = node.run()
    except NodeBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("node stopped: %s", ", ".join(f"{v} {k}" for k, v in counts.items()
                                           if k != "seconds") or "no frames this run")
    return 0


def cmd_process(args: argparse.Namespace, cfg: Config) -> int:
    from .node import Node

    retry = []
    if args.retry_failed:
        retry.append("failed")
    if args.retry_skipped:
        retry.append("skipped")
    if not args.paths and not retry:
        print("error: give frames or folders to process, or --retry-failed/--retry-skipped",
              file=sys.stderr)
        return 2
    bar = Progress(0, enabled=False if args.quiet else None)

    def progress(node: Any) -> None:
        if bar.total == 0:  # known once the paths are read
            bar.total = getattr(node, "total", 0)
        done = sum(node.counts[k] for k in ("measured", "skipped", "failed"))
        bar.update(done + node.counts.get("already", 0), dict(node.counts))

    node = Node(cfg, workers=args.workers, progress=progress,
                submit=not args.no_submit)
    try:
        summary = node.process(args.paths, force=args.force, retry=retry)
    finally:
        bar.close()
        node.close()
    parts = [f"{summary.get(k, 0)} {k}" for k in ("measured", "reported", "skipped", "failed")]
    if summary.get("already"):
        parts.append(f"{summary['already']} already done")
    print(f"{summary['total']} frame(s) in {summary['seconds']:.1f} s: {', '.join(parts)}",
          file=sys.stderr)
    return 1 if summary.get("failed") else 0


def _outbox_files(cfg: Config) -> list[dict[str, Any]]:
    """The outbox report files (``aavso.outbox_files``): path, night, target, rows, states."""
    from .aavso import outbox_files

    try:
        return list(outbox_files(cfg))
    except Exception as exc:  # a damaged database must not hide the rest of the status
        log.warning("cannot list the outbox: %s", exc)
        return []


def status_data(cfg: Config, last: int = 10) -> dict[str, Any]:
    from .ledger import Ledger

    with Ledger(cfg) as ledger:
        counts = ledger.counts()
        recent = ledger.frames(limit=last, newest_first=True)
        problems = ledger.problems()
        targets = ledger.targets()
        held = ledger.frames(states=["measured"])
    outbox = _outbox_files(cfg)
    return {"data_dir": str(cfg.data_dir), "db": str(cfg.db_path), "counts": counts,
            "targets": [{"target": t, "frames": n} for t, n in targets],
            "recent": [{"id": f.id, "path": f.path, "state": f.state, "reason": f.reason,
                        "category": f.category, "target": f.target, "magnitude": f.magnitude,
                        "uncertainty": f.uncertainty, "quality": f.quality,
                        "updated": f.updated} for f in recent],
            "recent_lines": [_frame_line(f) for f in recent],
            "problems": problems, "outbox": outbox,
            "not_reported": [{"path": f.path, "status": (f.submission or {}).get("status"),
                              "message": (f.submission or {}).get("message")} for f in held]}


def _frame_line(frame: Any) -> str:
    from .node import frame_line

    return frame_line(frame)


#: aavso_rows.upload states, as status shows them.
_UPLOAD = {"manual": "for you to upload", "none": "dry run, not for upload",
           "pending": "to upload", "uploading": "upload under way", "sent": "sent",
           "uncertain": "upload uncertain (see docs/aavso.md)"}


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    if not cfg.db_path.exists():
        print(f"no ledger yet at {cfg.db_path} (nothing processed with this data_dir)")
        return 0
    data = status_data(cfg, args.last)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    c = data["counts"]
    total = sum(c.values())
    print(f"data: {data['data_dir']}")
    print(f"frames: {total} - " + ", ".join(f"{n} {s}" for s, n in c.items()))
    if data["targets"]:
        print("targets: " + ", ".join(f"{t['target']} ({t['frames']})" for t in data["targets"]))
    if data["recent_lines"]:
        print(f"last {len(data['recent_lines'])} frame(s), newest first:")
        for line in data["recent_lines"]:
            print(f"  {line}")
    if data["problems"]:
        print("skipped and failed frames, by reason:")
        from .node import short_reason

        for p in data["problems"]:
            cat = f"[{p['category']}] " if p["category"] else ""
            print(f"  {p['n']:>4} {p['state']:<7} {cat}{short_reason(p['reason'], p['example'])}")
            print(f"       e.g. {p['example']}")
    if data["not_reported"]:
        print("measured but not reported:")
        for h in data["not_reported"][-20:]:
            why = f"{h['status']}: {h['message']}" if h["status"] else "submission pending"
            print(f"  {Path(h['path']).name}: {why}")
    if data["outbox"]:
        print("outbox (files to upload at https://www.aavso.org/webobs/file):")
        for o in data["outbox"]:
            states = ", ".join(f"{n} {_UPLOAD.get(s, s)}"
                               for s, n in (o.get("states") or {}).items()
                               if str(o.get("obscode", "")).upper() != "DEMO")
            demo = str(o.get("obscode", "")).upper() == "DEMO"
            print(f"  {o['path']}  ({o['rows']} row(s){'; ' + states if states else ''}"
                  f"{'; DRY RUN' if o.get('dry_run') else ''})"
                  + ("  DEMO DATA: never upload" if demo else ""))
    else:
        print("outbox: empty")
    return 0


def cmd_report(args: argparse.Namespace, cfg: Config) -> int:
    from .aavso import AavsoError, report_text

    try:
        text = report_text(cfg, night=args.night, target=args.target)
    except AavsoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_text(text, encoding="ascii", errors="strict")
        print(f"wrote {args.out} ({_count_text_rows(text)} row(s))", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _count_text_rows(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


def cmd_lightcurve(args: argparse.Namespace, cfg: Config) -> int:
    from .lightcurve import plot_lightcurve

    try:
        out, n = plot_lightcurve(cfg, args.target, args.out)
        print(f"{out} ({n} point(s))")
        if args.sound:
            from .sonify import sonify_night

            wav, m = sonify_night(cfg, args.target, args.sound, night=args.night)
            print(f"{wav} ({m.points} point(s), {m.duration_s:.1f} s)")
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_summary(args: argparse.Namespace, cfg: Config) -> int:
    from .summary import night_summary, render_html, render_json, render_text

    s = night_summary(cfg, args.night, args.target)
    if args.night and args.night not in s.nights:
        print(f"error: no frames on the night of {args.night}; nights: "
              f"{', '.join(s.nights) or 'none yet'}", file=sys.stderr)
        return 1
    render = {"text": render_text, "json": render_json,
              "html": lambda x: render_html(x, standalone=True)}[args.format]
    sys.stdout.write(render(s))
    return 0


def cmd_serve(args: argparse.Namespace, cfg: Config) -> int:
    try:
        from .web import serve
    except ImportError as exc:
        print(f"error: the web page needs the 'web' extra ({exc.name} is missing): "
              "pip install 'starnode[web]'", file=sys.stderr)
        return 2
    serve(cfg, args.host, args.port, args.token,
          on_start=lambda url: print(f"starnode page: {url}  (Ctrl+C stops)", flush=True))
    return 0


def cmd_validate(args: argparse.Namespace, cfg: Config) -> int:
    from .validator import validate_file

    status = 0
    for name in args.files:
        try:
            report = validate_file(name)
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}")
            status = 1
            continue
        for f in report:
            print(f"{name}:{f}")
        verdict = "OK" if report.ok else "REJECTED"
        print(f"{name}: {verdict} ({report.summary()})")
        if not report.ok:
            status = 1
    return status


OK, WARN, FAIL = 0, 1, 2


def _fs_info(path: str) -> tuple[str | None, str | None]:
    """(filesystem type, mount point) of ``path``, by the watcher's mount detection."""
    from .watcher import find_mount, read_mounts

    m = find_mount(os.path.realpath(path), read_mounts())
    return (m.fstype, m.mount_point) if m else (None, None)


def _watch_mode(path: str, mode: str, recursive: bool) -> tuple[str, str]:
    """(mode the watcher will use, why): the watcher's own choice in ``auto``."""
    from .watcher import choose_mode

    if mode != "auto":
        return mode, f"watch.mode is {mode}"
    return choose_mode(path, recursive=recursive)


def doctor_checks(cfg: Config) -> list[tuple[int, str, str]]:
    """Every check of ``starnode doctor``: (OK/WARN/FAIL, topic, actionable message)."""
    out: list[tuple[int, str, str]] = []

    def add(level: int, topic: str, message: str) -> None:
        out.append((level, topic, message))

    if cfg.source:
        add(OK, "config", f"{cfg.source} is valid")
    else:
        add(WARN, "config", f"no {DEFAULT_CONFIG} here and no --config: built-in defaults. "
            "Start one with 'starnode config --example > config.yaml'")
    code = cfg.aavso.observer_code
    if not code:
        add(FAIL, "observer code", "aavso.observer_code is not set: frames are measured but no "
            "report can be written. Put your AAVSO observer code in the config file")
    elif code.upper() == "DEMO":
        add(WARN, "observer code", "aavso.observer_code is the demo code DEMO; use your own "
            "AAVSO observer code for real data")
    else:
        add(OK, "observer code", code)
    if cfg.aavso.mode == "webobs":
        user = os.environ.get(cfg.aavso.username_env)
        pw = os.environ.get(cfg.aavso.password_env)
        cred = cfg.aavso.credentials_file
        if not (user and pw) and not (cred and Path(cred).is_file()):
            add(FAIL, "aavso", f"aavso.mode is webobs but neither ${cfg.aavso.username_env}/"
                f"${cfg.aavso.password_env} nor aavso.credentials_file is set")
        else:
            add(OK, "aavso", "webobs upload enabled, credentials present (not shown)")
    else:
        add(OK, "aavso", f"mode {cfg.aavso.mode}: reports go to {cfg.data_dir / 'outbox'}")

    dd = cfg.data_dir
    try:
        dd.mkdir(parents=True, exist_ok=True)
        probe = dd / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
        add(OK, "data_dir", f"{dd} is writable")
    except OSError as exc:
        add(FAIL, "data_dir", f"cannot write in {dd}: {exc.strerror}; set data_dir (or "
            "--data-dir) to a folder this user owns")
    else:
        free = shutil.disk_usage(dd).free
        level = FAIL if free < 100e6 else WARN if free < 1e9 else OK
        add(level, "disk space", f"{free / 1e9:.1f} GB free in {dd}"
            + ("" if level == OK else ": free some space (the ledger and logs grow slowly, "
               "but a full disk stops the node)"))
        try:
            from .ledger import Ledger

            with Ledger(cfg) as ledger:
                counts = ledger.counts()
            total = sum(counts.values())
            add(OK, "ledger", f"{cfg.db_path}: {total} frame(s)"
                + (f", {counts['failed']} failed (see 'starnode status')"
                   if counts["failed"] else ""))
        except Exception as exc:
            add(FAIL, "ledger", f"cannot open {cfg.db_path}: {exc}")
        lock = dd / "node.lock"
        if lock.exists():
            import fcntl

            fd = os.open(lock, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                add(OK, "node", "a 'starnode run' is running on this data_dir")
            finally:
                os.close(fd)

    wp = cfg.watch.path
    if not wp:
        add(WARN, "watch.path", "not set: 'starnode run' needs the folder the telescope writes "
            "into (e.g. /mnt/seestar/MyWorks)")
    elif not os.path.isdir(wp):
        add(FAIL, "watch.path", f"{wp} is not a folder: mount the telescope share (see "
            "docs/node.md, 'Mounting the Seestar share') or fix watch.path")
    elif not os.access(wp, os.R_OK | os.X_OK):
        add(FAIL, "watch.path", f"{wp} is not readable by this user; fix the mount options "
            "(uid=, file_mode=) or the permissions")
    else:
        fstype, mnt = _fs_info(wp)
        mode, why = _watch_mode(wp, cfg.watch.mode, cfg.watch.recursive)
        add(OK, "watch.path", f"{wp} on {fstype or '?'}"
            + (f" (mounted at {mnt})" if mnt else ""))
        level = OK
        from .watcher import is_remote

        if cfg.watch.mode == "events" and fstype and is_remote(fstype):
            level = WARN
            why += "; inotify does not see files written by the telescope on a network " \
                   "mount: use watch.mode auto or poll"
        add(level, "watch mode", f"{mode} ({why}), "
            f"{'recursive' if cfg.watch.recursive else 'top folder only'}, "
            f"debounce {cfg.watch.debounce_delay:g} s")
        from .node import _walk, matches_include

        n = 0
        for i, path in enumerate(_walk(Path(wp), cfg.watch.recursive)):
            if i > 50000:
                break
            if matches_include(path, cfg.watch.include, cfg.watch.extensions):
                n += 1
        add(OK if n else WARN, "frames", f"{n} frame(s) match watch.include "
            f"{cfg.watch.include} under {wp}" + ("" if n else ": check watch.include and "
                                                 "watch.recursive"))

    ph = cfg.photometry
    if ph.sequence_file:
        try:
            from .catalogs import load_sequence_file

            seq = load_sequence_file(ph.sequence_file)
            add(OK, "catalogue", f"sequence_file {ph.sequence_file}: chart {seq.chart_id}, "
                f"{len(seq.comps)} comparison stars")
        except Exception as exc:
            add(FAIL, "catalogue", f"photometry.sequence_file {ph.sequence_file}: {exc}")
    cache = _cache_state(cfg)
    if cache:
        add(OK, "catalogue cache", cache)
    if ph.offline:
        add(OK if ph.sequence_file else WARN, "catalogue", "offline: only the cache and "
            "sequence_file are used" + ("" if ph.sequence_file else
                                        "; new targets cannot be measured until cached"))
    else:
        add(*_reachable(ph.vsp_url, ph.http_timeout))
    ncpu = os.cpu_count() or 1
    if cfg.workers > ncpu:
        add(WARN, "workers", f"workers: {cfg.workers} but only {ncpu} CPU core(s); use "
            f"{max(1, ncpu - 1)} or fewer")
    else:
        add(OK, "workers", f"{cfg.workers} of {ncpu} core(s)")
    return out


def _cache_state(cfg: Config) -> str | None:
    """What the catalogue cache (catalog_cache in the node's database) holds, read-only."""
    import sqlite3
    import time as _time

    if not cfg.db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT kind, COUNT(*), MIN(fetched_at) FROM catalog_cache "
                                "GROUP BY kind").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if not rows:
        return "empty (the first frame of each new target needs the network or sequence_file)"
    oldest = min(r[2] for r in rows)
    age = (_time.time() - oldest) / 86400.0
    return (", ".join(f"{n} {kind}" for kind, n, _ in rows)
            + f" answer(s); oldest {age:.0f} day(s) (photometry.cache_days "
            f"{cfg.photometry.cache_days:g})")


def _reachable(url: str, timeout: float) -> tuple[int, str, str]:
    import requests

    try:
        r = requests.head(url, timeout=min(timeout, 5.0), allow_redirects=True)
        return OK, "catalogue", f"AAVSO VSP reachable ({url}: HTTP {r.status_code})"
    except requests.RequestException as exc:
        return WARN, "catalogue", f"AAVSO VSP not reachable ({type(exc).__name__}); " \
            "cached sequences still work; set photometry.sequence_file or check the network"


def cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    results = doctor_checks(cfg)
    worst = 0
    marks = {0: "ok  ", 1: "WARN", 2: "FAIL"}
    for level, topic, message in results:
        print(f"[{marks[level]}] {topic}: {message}")
        worst = max(worst, level)
    print("all good" if worst == 0 else "warnings only" if worst == 1 else
          "problems found: fix the FAIL lines above")
    return 1 if worst == 2 else 0


def cmd_solver_db(args: argparse.Namespace, cfg: Config) -> int:
    from .astrometry import build_tetra3rs_database, tetra3rs_database_path

    path = tetra3rs_database_path(cfg)
    if path.is_file() and not args.force:
        print(f"the tetra3rs database is already built: {path}")
        return 0
    try:
        import tetra3rs  # noqa: F401
    except ImportError:
        print("tetra3rs is not installed: pip install 'starnode[solve]'", file=sys.stderr)
        return 1
    print(f"building the tetra3rs blind-solver database into {path} "
          "(about 15 min, 2.5 GB of memory, a 1.8 GB file; once)")
    print(f"done: {build_tetra3rs_database(cfg)}")
    return 0


def cmd_demo(args: argparse.Namespace, cfg: Config | None) -> int:
    from .demo import run_demo

    return run_demo(frames=args.frames, keep=args.keep, data_dir=args.data_dir,
                    workers=args.workers, interval=args.interval, out=sys.stdout,
                    log_level=args.log_level or "INFO")


def cmd_config(args: argparse.Namespace, cfg: Config) -> int:
    if args.example:
        sys.stdout.write(example_yaml())
        return 0
    print(f"# configuration from {cfg.source or 'built-in defaults'}; data_dir {cfg.data_dir}")
    import yaml

    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if hasattr(value, "items"):
            out[key] = dict(value.items())
        else:
            out[key] = str(value) if isinstance(value, Path) else value
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False))
    return 0


# ---------------------------------------------------------------------------- parser
def _globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    d = None if top else argparse.SUPPRESS
    g = parser.add_argument_group("global options")
    g.add_argument("--config", "-c", metavar="FILE", default=d,
                   help=f"configuration file (default: ./{DEFAULT_CONFIG} when present, "
                   "else built-in defaults)")
    g.add_argument("--data-dir", metavar="DIR", default=d,
                   help="where the ledger, outbox, caches and logs live (overrides data_dir)")
    g.add_argument("--log-level", metavar="LEVEL", default=d, type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="console log level (default: log_level of the configuration)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="starnode",
        description="Unattended variable-star photometry for smart telescopes, reporting to "
        "the AAVSO.", epilog="Run 'starnode COMMAND --help' for a command's options. "
        "Start with 'starnode demo'.")
    p.add_argument("--version", action="version", version=f"starnode {__version__}")
    _globals(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=description or help_)
        _globals(sp, top=False)
        return sp

    sp = add("run", "watch the telescope folder and measure and report every new frame",
             "Watch watch.path (recursively by default), catch up with frames written while the "
             "node was down, measure every complete new frame and put it in the AAVSO outbox. "
             "Stops cleanly on SIGINT/SIGTERM; restart-safe (SQLite ledger in data_dir).")
    sp.add_argument("--watch", metavar="FOLDER", help="folder to watch (overrides watch.path)")
    sp.add_argument("--workers", type=int, metavar="N", help="frames measured in parallel "
                    "(default: workers of the configuration)")
    sp.set_defaults(func=cmd_run)

    sp = add("process", "measure and report an archive of frames (files or folders)",
             "Run the pipeline over frames already on disk, through the same ledger: frames "
             "already processed are skipped unless --force.")
    sp.add_argument("paths", nargs="*", metavar="PATH", help="FITS files or folders (searched "
                    "recursively for watch.include patterns)")
    sp.add_argument("--force", action="store_true", help="process frames again even if the "
                    "ledger has them (the outbox still never repeats an observation)")
    sp.add_argument("--retry-failed", action="store_true", help="reprocess failed frames")
    sp.add_argument("--retry-skipped", action="store_true", help="reprocess skipped frames "
                    "(e.g. after fixing the configuration)")
    sp.add_argument("--workers", type=int, metavar="N", help="frames in parallel")
    sp.add_argument("--no-submit", action="store_true", help="measure only; no AAVSO report")
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_process)

    sp = add("status", "frames by state, recent frames, errors with reasons, the outbox")
    sp.add_argument("--last", type=int, default=10, metavar="N", help="recent frames shown")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_status)

    sp = add("report", "print or write the AAVSO Extended File Format report of a night")
    sp.add_argument("--night", metavar="DATE", help="night (YYYY-MM-DD, local evening date; "
                    "default: all measurements in the outbox)")
    sp.add_argument("--target", metavar="NAME", help="only this star")
    sp.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    sp.set_defaults(func=cmd_report)

    sp = add("lightcurve", "plot a target's light curve from the ledger (PNG)")
    sp.add_argument("target", metavar="TARGET", help="AAVSO name of the star, e.g. 'SS Cyg'")
    sp.add_argument("--out", metavar="PNG", help="output file (default: "
                    "data_dir/lightcurves/<TARGET>.png)")
    sp.add_argument("--sound", metavar="WAV", help="also write the light curve as sound: 4 s "
                    "per hour, higher pitch = brighter, a tick per point (buzz = poor)")
    sp.add_argument("--night", metavar="DATE", help="the night of the sound (default: latest)")
    sp.set_defaults(func=cmd_lightcurve)

    sp = add("summary", "the night in plain sentences (screen-reader friendly)")
    sp.add_argument("--night", metavar="DATE", help="night (YYYY-MM-DD; default: the latest)")
    sp.add_argument("--target", metavar="NAME", help="only this star")
    sp.add_argument("--format", choices=("text", "html", "json"), default="text")
    sp.set_defaults(func=cmd_summary)

    sp = add("serve", "the local web page: tonight, frames, light curves, sound, outbox",
             "Serve a read-only page on this computer (127.0.0.1 by default, no login). Bound to "
             "another address it asks for a token (--token, $STARNODE_WEB_TOKEN, or a random "
             "one printed at start).")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sp.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sp.add_argument("--token", help="access token (required off loopback; default random)")
    sp.set_defaults(func=cmd_serve)

    sp = add("validate", "check AAVSO Extended File Format files (exit 1 on any ERROR)")
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.set_defaults(func=cmd_validate)

    sp = add("doctor", "check the configuration, folders, watch mode, catalogues, disk space")
    sp.set_defaults(func=cmd_doctor)

    sp = add("solver-db", "build the tetra3rs blind-solver database once (slow, offline)",
             "Generate the tetra3rs pattern database from the bundled Gaia catalogue for the "
             "camera's field size, so frames far from their header pointing can be solved "
             "blind. Takes about 15 minutes and 2.5 GB of memory once; the file is kept in "
             "data_dir/astrometry.")
    sp.add_argument("--force", action="store_true", help="build again even if present")
    sp.set_defaults(func=cmd_solver_db)

    sp = add("demo", "a whole synthetic night of SS Cyg, start to finish, offline",
             "Write a synthetic night of Seestar subs of SS Cyg into a temporary MyWorks folder "
             "the way the telescope does, run the node on it (outbox only, observer code DEMO: "
             "nothing is ever uploaded), and print where the report and light curve are.")
    sp.add_argument("--frames", type=int, default=12, metavar="N",
                    help="good frames in the night (default 12; 3 bad frames are added)")
    sp.add_argument("--workers", type=int, default=None, metavar="N",
                    help="frames in parallel (default: 2 when the machine has 2+ cores)")
    sp.add_argument("--interval", type=float, default=0.3, metavar="S",
                    help="seconds between frames written by the 'telescope' (default 0.3)")
    sp.add_argument("--keep", action="store_true", help="keep the synthetic frames folder")
    sp.set_defaults(func=cmd_demo)

    sp = add("config", "show the effective configuration, or an example file")
    sp.add_argument("--example", action="store_true", help="print a commented example "
                    "configuration with every key (config.example.yaml)")
    sp.set_defaults(func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .logs import setup_logging

    if args.command == "demo":
        setup_logging(args.log_level or "INFO", None)
        return int(args.func(args, None))
    try:
        cfg = load_config(args.config, args.data_dir)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    level = args.log_level or cfg.log_level
    file_log = args.command in ("run", "process")
    setup_logging(level, cfg.data_dir if file_log else None)
    if file_log:
        log.debug("configuration: %s", cfg.source or "built-in defaults")
    try:
        return int(args.func(args, cfg))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. 'starnode report | head'
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _terminal_width() -> int:  # pragma: no cover - cosmetic
    return shutil.get_terminal_size((80, 20)).columns


if __name__ == "__main__":
    sys.exit(main())
