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
import re
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Config, example_yaml, observer_code_problem
from .errors import ConfigError, NodeBusy, StoreError

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("starnode")

__all__ = ["load_config", "main"]

DEFAULT_CONFIG = "config.yaml"
#: Frames of a ``process`` run measured before its progress bar shows an ETA.
ETA_AFTER = 3


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
    """The progress of ``starnode process``: a tqdm bar on stderr, silent when stderr is not a
    terminal. While it is shown, log lines go above it (``logging_redirect_tqdm``).

    Parameters
    ----------
    stream : file, optional
        Where the bar is drawn (default: stderr).
    enabled : bool, optional
        Force the bar on or off (default: only on a terminal).
    """

    def __init__(self, *, stream: Any = None, enabled: bool | None = None) -> None:
        from tqdm import tqdm

        # tqdm's own ETA is not shown: its rate would count the frames already done and the
        # workers' start-up; ours is the mean time per frame of this run, after 3 frames.
        self.bar = tqdm(total=0, unit="frame", file=stream or sys.stderr, dynamic_ncols=True,
                        disable=None if enabled is None else not enabled,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self._first: tuple[int, float] | None = None

    def update(self, done: int, total: int, counts: dict[str, int]) -> None:
        """Show ``done`` of ``total`` frames, the skipped and failed counts, and an ETA once
        :data:`ETA_AFTER` frames of this run are done."""
        now = time.monotonic()
        if self._first is None:
            self._first = (done, now)
        self.bar.total = total
        self.bar.n = done
        extra = [f"{counts[k]} {k}" for k in ("skipped", "failed") if counts.get(k)]
        ran = done - self._first[0]
        if ran >= ETA_AFTER and total > done:
            left = (now - self._first[1]) / ran * (total - done)
            extra.append(f"ETA {int(left) // 60}:{int(left) % 60:02d}")
        self.bar.set_postfix_str(", ".join(extra), refresh=False)
        self.bar.refresh()

    def __call__(self, node: Node) -> None:
        done = sum(node.counts[k] for k in ("measured", "skipped", "failed"))
        self.update(done + node.counts.get("already", 0), node.total, dict(node.counts))

    def close(self) -> None:
        """Finish the bar's line."""
        self.bar.close()


# ---------------------------------------------------------------------------- commands
def _with_watch(cfg: Config, folder: str | None) -> Config:
    if not folder:
        return cfg
    raw = dict(cfg.raw)
    raw["watch"] = {**(raw.get("watch") or {}), "path": folder}
    raw["data_dir"] = str(cfg.data_dir)
    return Config(raw, source=cfg.source)


def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode run``."""
    from .node import Node

    # Every aavso.mode (outbox, dry_run, webobs) writes #OBSCODE: without a valid code every
    # frame would end in an ERROR all night, so the node does not start.
    problem = observer_code_problem(cfg.aavso.observer_code)
    if problem:
        print(f"error: {problem}; 'starnode run' does not start without it", file=sys.stderr)
        return 2
    node = Node(_with_watch(cfg, args.watch), workers=args.workers)
    try:
        counts = node.run()
    except NodeBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("node stopped: %s", ", ".join(f"{v} {k}" for k, v in counts.items()
                                           if k != "seconds") or "no frames this run")
    return 0


def cmd_process(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode process``."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .node import Node

    retry = [state for state, wanted in (("failed", args.retry_failed),
                                         ("skipped", args.retry_skipped)) if wanted]
    if not args.paths and not retry:
        print("error: give frames or folders to process, or --retry-failed/--retry-skipped",
              file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not os.path.lexists(p)]
    for p in missing:
        print(f"error: {p}: no such file or folder", file=sys.stderr)
    if missing and len(missing) == len(args.paths) and not retry:
        return 1
    problem = observer_code_problem(cfg.aavso.observer_code)
    if problem and not args.no_submit:
        log.warning("%s. Frames are measured now and reported by 'starnode process "
                    "--retry-failed' or the next run once it is set", problem)
    bar = Progress(enabled=False if args.quiet else None)
    node = Node(cfg, workers=args.workers, progress=bar, submit=not args.no_submit)
    try:
        started = time.time()
        with logging_redirect_tqdm():
            summary = node.process(args.paths, force=args.force, retry=retry)
        queued, errors = _submissions(node, sorted(node.intake.ids or ()), started)
    finally:
        bar.close()
        node.close()
    return _process_outcome(args, cfg, summary, queued, bool(missing) + 2 * bool(errors))


def _submissions(node: Node, ids: Sequence[int], since: float) -> tuple[dict[str, int], int]:
    """(report file -> rows of these frames reported since ``since``, frames whose submission
    failed)."""
    files: dict[str, int] = {}
    errors = 0
    for fid in ids:
        frame = node.ledger.get(fid)
        sub = (frame.submission if frame is not None else None) or {}
        path = sub.get("report_path") or sub.get("file")
        if frame is not None and frame.state == "reported" and path and frame.updated >= since:
            files[str(path)] = files.get(str(path), 0) + len(sub.get("rows") or [None])
        errors += frame is not None and frame.state == "measured" and sub.get("status") == "error"
    return files, errors


def _excluded_hint(cfg: Config, paths: Sequence[str]) -> str:
    """How many FITS files under the folders ``watch.include`` left out, and the fix."""
    from .node.intake import matches_include, walk

    w = cfg.watch
    n = sum(1 for p in paths if os.path.isdir(p) for f in walk(p, True)
            if matches_include(f, [], w.extensions) and not matches_include(f, w.include,
                                                                             w.extensions))
    if not n:
        return ""
    return (f"{n} FITS file(s) excluded by watch.include {list(w.include)}: to process them, "
            "set e.g.\nwatch:\n  include: ['*Stacked_*']   (or [] for every FITS file)")


def _process_outcome(args: argparse.Namespace, cfg: Config, summary: dict[str, Any],
                     queued: dict[str, int], problems: int) -> int:
    """Print what ``process`` did in words that match it; the exit status (docs/node.md)."""
    parts = [f"{summary.get(k, 0)} {k}" for k in ("measured", "reported", "skipped", "failed")]
    if summary.get("already"):
        parts.append(f"{summary['already']} already done earlier (--force to redo)")
    print(f"{summary['total']} frame(s) in {summary['seconds']:.1f} s: {', '.join(parts)}",
          file=sys.stderr)
    status = 1 if summary.get("failed") or problems & 1 else 0
    if not summary["total"] and args.paths:
        print(_excluded_hint(cfg, args.paths) or "no FITS frame found there", file=sys.stderr)
        status = 1
    if queued and cfg.aavso.mode != "webobs":
        where = "written (dry run, nothing to upload)" if cfg.aavso.mode == "dry_run" else \
            "queued for you to upload at https://www.aavso.org/webobs/file"
        for path, n in queued.items():
            print(f"{n} row(s) {where}: {path}", file=sys.stderr)
    if problems & 2 and not summary.get("reported"):  # every report of this run failed
        print("error: no measurement could be reported (the log and 'starnode status' say "
              "why)", file=sys.stderr)
        status = 1
    return status


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode status``."""
    from .node.status import status_data, status_lines

    if not cfg.db_path.exists():
        print(f"no ledger yet at {cfg.db_path} (nothing processed with this data_dir)")
        return 0
    data = status_data(cfg, args.last)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print("\n".join(status_lines(data)))
    return 0


def cmd_report(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode report``."""
    from .aavso import AavsoError, report_text

    try:
        text = report_text(cfg, night=args.night, target=args.target)
    except AavsoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in (".txt", ".csv", ".tsv"):
            print(f"error: {out}: an AAVSO report is a .txt, .csv or .tsv file",
                  file=sys.stderr)
            return 2
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="ascii", errors="strict")
        rows = sum(1 for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))
        print(f"wrote {args.out} ({rows} row(s))", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_lightcurve(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode lightcurve``."""
    from .lightcurve import plot_lightcurve

    if args.out and Path(args.out).suffix.lower() != ".png":
        print(f"error: {args.out}: the light curve is a PNG image; give a name ending in .png",
              file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
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
    """``starnode validate``: exit 1 when any file is rejected or unreadable."""
    from .aavso import validate_file

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
        print(f"{name}: {'OK' if report.ok else 'REJECTED'} ({report.summary()})")
        status = max(status, 0 if report.ok else 1)
    return status


def cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode doctor``: exit 1 when any check FAILs."""
    from .doctor import Level, run_checks

    checks = run_checks(cfg)
    marks = {Level.OK: "ok  ", Level.WARN: "WARN", Level.FAIL: "FAIL"}
    for c in checks:
        print(f"[{marks[c.level]}] {c.topic}: {c.message}")
    worst = max((c.level for c in checks), default=Level.OK)
    print({Level.OK: "all good", Level.WARN: "warnings only"}.get(
        worst, "problems found: fix the FAIL lines above"))
    return 1 if worst == Level.FAIL else 0


def cmd_solver_db(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode solver-db``."""
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
          "(1-3 min, about 1.1 GB of memory, a 350 MB file; once)")
    try:
        print(f"done: {build_tetra3rs_database(cfg, gaia_only=args.gaia_only)}")
    except RuntimeError as exc:
        print(f"{exc}; or build from the bundled Gaia G<10 stars alone with --gaia-only "
              "(cannot solve sparse fields)", file=sys.stderr)
        return 1
    return 0


def cmd_solve(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode solve``: exit 1 when any file is not solved."""
    from .astrometry.report import format_solution, solve_file

    results = [solve_file(f, cfg) for f in args.files]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(format_solution(r))
    return 0 if all(r["ok"] for r in results) else 1


def cmd_stars(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode stars``: exit 1 when any file is not measured."""
    from .starlist import stars_command

    fmt = "json" if args.json else "csv" if args.csv else "ecsv"
    return stars_command(args.files, cfg, fmt, args.out)


def cmd_demo(args: argparse.Namespace, cfg: Config | None) -> int:
    """``starnode demo``."""
    from .demo import run_demo

    return run_demo(frames=args.frames, keep=args.keep, data_dir=args.data_dir,
                    workers=args.workers, interval=args.interval, out=sys.stdout,
                    log_level=args.log_level or "INFO")


def cmd_config(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode config``: the effective configuration, or the commented example."""
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


def night_arg(text: str) -> str:
    """``--night``: an ISO date, else an argparse error naming the expected format."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD (the evening's date)")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD ({exc})") from None


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
    sp.add_argument("--night", metavar="DATE", type=night_arg,
                    help="night (YYYY-MM-DD, local evening date; "
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
    sp.add_argument("--night", metavar="DATE", type=night_arg,
                    help="the night of the sound (default: latest)")
    sp.set_defaults(func=cmd_lightcurve)

    sp = add("summary", "the night in plain sentences (screen-reader friendly)")
    sp.add_argument("--night", metavar="DATE", type=night_arg,
                    help="night (YYYY-MM-DD; default: the latest)")
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

    sp = add("solver-db", "build the tetra3rs blind-solver database once (offline)",
             "Generate the tetra3rs pattern database for Seestar fields (0.6-1.5 deg) from "
             "Tycho-2 (the stars of Debian's astrometry.net index files: needs the packages "
             "astrometry.net and astrometry-data-tycho2-07-littleendian, or -08 and -09) plus "
             "the bundled Gaia G<10 stars, so frames without or far from their header pointing "
             "are solved blind. Takes 1-3 minutes and about 1.1 GB of memory once; the 350 MB "
             "file is kept in data_dir/astrometry.")
    sp.add_argument("--force", action="store_true", help="build again even if present")
    sp.add_argument("--gaia-only", action="store_true", help="use the bundled Gaia G<10 stars "
                    "alone (no astrometry.net needed; sparse fields will not solve)")
    sp.set_defaults(func=cmd_solver_db)

    sp = add("solve", "the verified WCS of FITS frames (like solve-field, but verified)",
             "Solve each frame as the pipeline does (bundled Gaia stars, cached per-field Gaia "
             "stars, and the blind solvers installed: solve-field, tetra3rs, ASTAP) and print "
             "the verified solution: centre, scale, rotation, parity, method, matched stars, "
             "residual, time, and the WCS cards for the file's pixels. Files are not modified.")
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_solve)

    sp = add("stars", "the starlist of FITS frames: every detected and catalogued star",
             "Measure each frame as the pipeline does and print its starlist (also written "
             "under data_dir/starlists/<night>/): RA, Dec, x, y, flux, instrumental and "
             "calibrated magnitude with errors, FWHM, flags (saturated, edge, blended, comp, "
             "check, target). ECSV by default.")
    sp.add_argument("files", nargs="+", metavar="FILE")
    fmt = sp.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list of rows")
    fmt.add_argument("--csv", action="store_true", help="CSV")
    sp.add_argument("--out", metavar="PATH", help="write here instead of stdout")
    sp.set_defaults(func=cmd_stars)

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

    sp = add("hub", "the network hub: serve, add-node, nodes, crosscheck, report (docs/hub.md)")
    from .hub.cli import add_parser_arguments, cmd_hub

    add_parser_arguments(sp)
    sp.set_defaults(func=cmd_hub)

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
    except StoreError as exc:  # a damaged, replaced or unwritable database: say what to do
        print(f"starnode: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. 'starnode report | head'
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
