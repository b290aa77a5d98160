"""The ``starnode`` command line.

Every command takes the global options ``--config FILE`` (default: ``./config.yaml`` when it
exists, else the built-in defaults), ``--data-dir DIR`` (overrides ``data_dir``) and
``--log-level``; they may stand before or after the command name. Exit status: 0 success,
1 the command found problems (validator errors, doctor failures, frames failed), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import Config
from ..errors import ConfigError, StoreError
from .args import config_int, night_arg, number_in, port_arg
from .commands import (
    Progress,
    cmd_config,
    cmd_demo,
    cmd_doctor,
    cmd_lightcurve,
    cmd_process,
    cmd_report,
    cmd_run,
    cmd_serve,
    cmd_solve,
    cmd_solver_db,
    cmd_stars,
    cmd_status,
    cmd_summary,
    cmd_validate,
)

log = logging.getLogger("starnode")

__all__ = ["CommandParser", "Progress", "build_parser", "load_config", "main", "night_arg"]

DEFAULT_CONFIG = "config.yaml"
#: ``--workers``: the bounds of the ``workers`` key.
WORKERS = config_int("", "workers")


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


class CommandParser(argparse.ArgumentParser):
    """The parser of a command at any depth (``status``, ``hub serve``): it takes the global
    options too, so they may stand after the command. Subcommands made with
    ``add_subparsers()`` are of the parser's own class, so nested commands (the hub's, or any
    added later) get them without asking."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _globals(self, top=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="starnode",
        description="Unattended variable-star photometry for smart telescopes, reporting to "
        "the AAVSO.", epilog="Run 'starnode COMMAND --help' for a command's options. "
        "Start with 'starnode demo'.")
    p.add_argument("--version", action="version", version=f"starnode {__version__}")
    _globals(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=CommandParser)

    def add(name: str, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=description or help_)

    sp = add("run", "watch the telescope folder and measure and report every new frame",
             "Watch watch.path (recursively by default), catch up with frames written while the "
             "node was down, measure every complete new frame and put it in the AAVSO outbox. "
             "Stops cleanly on SIGINT/SIGTERM; restart-safe (SQLite ledger in data_dir).")
    sp.add_argument("--watch", metavar="FOLDER", help="folder to watch (overrides watch.path)")
    sp.add_argument("--workers", type=WORKERS, metavar="N", help="frames measured in parallel "
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
    sp.add_argument("--workers", type=WORKERS, metavar="N", help="frames in parallel")
    sp.add_argument("--no-submit", action="store_true", help="measure only; no AAVSO report")
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_process)

    sp = add("status", "frames by state, recent frames, errors with reasons, the outbox")
    sp.add_argument("--last", type=number_in(int, 0), default=10, metavar="N",
                    help="recent frames shown")
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
    sp.add_argument("--port", type=port_arg, default=8765, help="port (default 8765; 1-65535)")
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
    sp.add_argument("--frames", type=number_in(int, 1, 1000), default=12, metavar="N",
                    help="good frames in the night (default 12; 3 bad frames are added)")
    sp.add_argument("--workers", type=WORKERS, default=None, metavar="N",
                    help="frames in parallel (default: 2 when the machine has 2+ cores)")
    sp.add_argument("--interval", type=number_in(float, 0, 3600), default=0.3, metavar="S",
                    help="seconds between frames written by the 'telescope' (default 0.3)")
    sp.add_argument("--keep", action="store_true", help="keep the synthetic frames folder")
    sp.set_defaults(func=cmd_demo)

    sp = add("hub", "the network hub: serve, add-node, nodes, crosscheck, report (docs/hub.md)")
    from ..hub.cli import add_parser_arguments, cmd_hub

    add_parser_arguments(sp)
    sp.set_defaults(func=cmd_hub)

    from .plan import add_parser as add_plan

    add_plan(sub, add)
    from .repair import add_parser as add_repair

    add_repair(add)
    from .observe import add_parsers as add_observe

    add_observe(add)

    sp = add("config", "show the effective configuration, or an example file")
    sp.add_argument("--example", action="store_true", help="print a commented example "
                    "configuration with every key (config.example.yaml)")
    sp.set_defaults(func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..logs import setup_logging

    cfg: Config | None = None
    if args.command == "demo":  # the demo makes its own configuration
        setup_logging(args.log_level or "INFO", None)
    else:
        try:
            cfg = load_config(args.config, args.data_dir)
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
        level = args.log_level or cfg.log_level
        file_log = args.command in ("run", "process", "observe")
        try:
            setup_logging(level, cfg.data_dir if file_log else None)
        except OSError as exc:
            return _os_error(exc)
        if file_log:
            log.debug("configuration: %s", cfg.source or "built-in defaults")
    return _run(args, cfg)


def _os_error(exc: OSError) -> int:
    """A file or folder that is not what it must be (``data_dir`` is a file, a folder is not
    writable): one line naming it, exit 1; the traceback only at DEBUG."""
    log.debug("file system error", exc_info=exc)
    where = f": {exc.filename}" if exc.filename else ""
    print(f"starnode: {exc.strerror or exc}{where}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, cfg: Config | None) -> int:
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
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        return _os_error(exc)


if __name__ == "__main__":
    sys.exit(main())
