"""The ``starnode`` commands: each a thin call into the library, its output and exit status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config, example_yaml, observer_code_problem
from ..errors import NodeBusy

if TYPE_CHECKING:
    from ..node import Node

log = logging.getLogger("starnode")

#: Frames of a ``process`` run measured before its progress bar shows an ETA.
ETA_AFTER = 3


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
    from ..node import Node

    # Every aavso.mode (outbox, dry_run, webobs) writes #OBSCODE: without a valid code every
    # frame would end in an ERROR all night, so the node does not start.
    problem = observer_code_problem(cfg.aavso.observer_code)
    if problem:
        print(f"error: {problem}; 'starnode run' does not start without it", file=sys.stderr)
        return 2
    node = Node(_with_watch(cfg, args.watch), workers=args.workers)
    from .observe import start_observer

    observer = start_observer(cfg)  # telescope.driver set: drive it too (docs/telescope.md)
    try:
        counts = node.run()
    except NodeBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if observer is not None:  # the node stopped (SIGTERM...): the telescope parks
            observer[1].set()
            observer[0].join()
    log.info("node stopped: %s", ", ".join(f"{v} {k}" for k, v in counts.items()
                                           if k != "seconds") or "no frames this run")
    return 0


def cmd_process(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode process``."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..node import Node

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
    return _process_outcome(args, cfg, summary, queued, bool(missing) + 2 * (errors & 1)
                            + 4 * bool(errors & 4))


def _submissions(node: Node, ids: Sequence[int], since: float
                 ) -> tuple[dict[str, tuple[int, int]], int]:
    """(report file -> (rows of these frames reported since ``since``, how many of them are
    of synthetic frames), bits: 1 a submission failed, 4 WebObs
    rejected one)."""
    files: dict[str, tuple[int, int]] = {}
    errors = 0
    for fid in ids:
        frame = node.ledger.get(fid)
        sub = (frame.submission if frame is not None else None) or {}
        path = sub.get("report_path") or sub.get("file")
        if frame is not None and frame.state == "reported" and path and frame.updated >= since:
            rows = sub.get("rows") or [None]
            n, fake = files.get(str(path), (0, 0))
            files[str(path)] = (n + len(rows), fake + sum("SYNTHETIC DATA" in str(r)
                                                          for r in rows))
        if frame is not None and frame.state == "measured":
            # 1: a submission failed; 4: WebObs refused it (a login page: wrong credentials)
            errors |= {"error": 1, "rejected": 1 | 4}.get(str(sub.get("status")), 0)
    return files, errors


def _excluded_hint(cfg: Config, paths: Sequence[str]) -> str:
    """How many FITS files under the folders ``watch.include`` left out, and the fix."""
    from ..node.intake import matches_include, walk

    w = cfg.watch
    n = sum(1 for p in paths if os.path.isdir(p) for f in walk(p, True)
            if matches_include(f, [], w.extensions) and not matches_include(f, w.include,
                                                                             w.extensions))
    if not n:
        return ""
    return (f"{n} FITS file(s) excluded by watch.include {list(w.include)}: to process them, "
            "set e.g.\nwatch:\n  include: ['*Stacked_*']   (or [] for every FITS file)")


def _process_outcome(args: argparse.Namespace, cfg: Config, summary: dict[str, Any],
                     queued: dict[str, tuple[int, int]], problems: int) -> int:
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
        for path, (n, fake) in queued.items():
            print(f"{n} row(s) " + ("written from SYNTHETIC frames (not observations: never "
                                    "upload)" if fake else where) + f": {path}", file=sys.stderr)
    if problems & 4:  # WebObs answered with a login page or a refusal: not reported
        print("error: WebObs rejected the upload (a login or challenge page: check the "
              "credentials, docs/aavso.md); the rows stay pending", file=sys.stderr)
        status = 1
    if problems & 2 and not summary.get("reported"):  # every report of this run failed
        print("error: no measurement could be reported (the log and 'starnode status' say "
              "why)", file=sys.stderr)
        status = 1
    return status


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode status``."""
    from ..node.status import status_data, status_lines

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
    from ..aavso import AavsoError, report_text

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
    from ..morning.lightcurve import plot_lightcurve

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
            from ..morning.sonify import sonify_night

            wav, m = sonify_night(cfg, args.target, args.sound, night=args.night)
            print(f"{wav} ({m.points} point(s), {m.duration_s:.1f} s)")
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_summary(args: argparse.Namespace, cfg: Config) -> int:
    from ..morning.summary import night_summary, render_html, render_json, render_text

    s = night_summary(cfg, args.night, args.target)
    if args.night and args.night not in s.nights:
        print(f"error: no frames on the night of {args.night}; nights: "
              f"{', '.join(s.nights) or 'none yet'}", file=sys.stderr)
        return 1
    render = {"text": render_text, "json": render_json,
              "html": lambda x: render_html(x, standalone=True)}[args.format]
    sys.stdout.write(render(s))
    return 0


#: What the local page needs (the ``web`` extra).
WEB_MODULES = ("fastapi", "uvicorn", "jinja2")


def missing_modules(names: Sequence[str]) -> list[str]:
    """The modules of ``names`` that cannot be imported (an extra not installed)."""
    import importlib

    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def cmd_serve(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode serve``: exit 2 when the page's extra is missing or the address cannot be
    listened on (the port is in use), with one line saying so and nothing else printed."""
    from ..util.net import ListenError

    missing = missing_modules(WEB_MODULES)
    if missing:
        print(f"error: the local page needs the 'web' extra ({', '.join(missing)} missing): "
              "pip install 'starnode[web]'", file=sys.stderr)
        return 2
    from ..morning.web import serve

    try:
        serve(cfg, args.host, args.port, args.token,
              on_start=lambda url: print(f"starnode page: {url}  (Ctrl+C stops)", flush=True))
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_validate(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode validate``: exit 1 when any file is rejected or unreadable."""
    from ..aavso import validate_file
    from ..aavso.validator import SYNTHETIC_RULE

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
        synthetic = any(f.rule == SYNTHETIC_RULE for f in report)
        print(f"{name}: {'OK' if report.ok else 'REJECTED'} ({report.summary()})"
              + (" - SYNTHETIC DATA, not observations: never upload" if synthetic else ""))
        status = max(status, 0 if report.ok else 1)
    return status


def cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode doctor``: exit 1 when any check FAILs."""
    from ..doctor import Level, run_checks

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
    from ..astrometry import build_tetra3rs_database, tetra3rs_database_path
    from ..astrometry.solverdb import check, record, remove_leftovers

    path = tetra3rs_database_path(cfg)
    remove_leftovers(path.parent)
    if path.is_file() and not args.force:
        ok, what = check(path)
        print(f"the tetra3rs database is already built: {what}" if ok else
              f"error: {what}", file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    try:
        import tetra3rs  # noqa: F401
    except ImportError:
        print("tetra3rs is not installed: pip install 'starnode[solve]'", file=sys.stderr)
        return 1
    print(f"building the tetra3rs blind-solver database into {path} "
          "(1-3 min, about 1.1 GB of memory, a 350 MB file; once)")
    try:
        built = build_tetra3rs_database(cfg, gaia_only=args.gaia_only)
        record(built)
        print(f"done: {built}")
    except RuntimeError as exc:
        print(f"{exc}; or build from the bundled Gaia G<10 stars alone with --gaia-only "
              "(cannot solve sparse fields)", file=sys.stderr)
        return 1
    return 0


def cmd_solve(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode solve``: exit 1 when any file is not solved."""
    from ..astrometry.report import format_solution, solve_file
    from .paths import input_problem, shown

    results = []
    for f in args.files:
        problem = input_problem(f)
        if problem:
            print(problem, file=sys.stderr)
            results.append({"file": shown(f), "ok": False, "error": problem, "input": False})
            continue
        try:
            res = solve_file(f, cfg)
        except Exception as exc:  # one line, never a traceback
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        results.append({**res, "file": shown(f)})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if r.pop("input", True):
                print(format_solution(r))
    return 0 if all(r["ok"] for r in results) else 1


def cmd_stars(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode stars``: exit 1 when any file is not measured."""
    from .stars import stars_command

    fmt = "json" if args.json else "csv" if args.csv else "ecsv"
    return stars_command(args.files, cfg, fmt, args.out)


def cmd_demo(args: argparse.Namespace, cfg: Config | None) -> int:
    """``starnode demo``."""
    from ..demo import DemoError, run_demo

    try:
        return run_demo(frames=args.frames, keep=args.keep, data_dir=args.data_dir,
                        workers=args.workers, interval=args.interval, out=sys.stdout,
                        log_level=args.log_level or "INFO")
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_config(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode config``: the effective configuration, or the commented example."""
    if args.example:
        sys.stdout.write(example_yaml())
        return 0
    print(f"# configuration from {cfg.source or 'built-in defaults'}; data_dir {cfg.data_dir}"
          "; secrets shown as ***")
    import yaml

    from ..config import redacted

    sys.stdout.write(yaml.safe_dump(redacted(cfg), sort_keys=False))
    return 0


# ---------------------------------------------------------------------------- parser
