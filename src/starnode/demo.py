"""``starnode demo``: a whole synthetic night, start to finish, offline, in well under 2 minutes.

A "telescope" thread writes realistic synthetic Seestar S50 subs of SS Cyg
(:mod:`starnode.synthetic`, the bundled VSP chart X41941HP) into ``MyWorks/SS Cyg_sub/`` the way
the scope does: slowly, in place, one chunk after another. SS Cyg brightens over the night (the
start of an outburst). A few bad frames are mixed in: a corrupt file, a dark frame (not a light)
and a frame pointed away from the target. The node runs on that folder with the same code path
as ``starnode run`` (:meth:`starnode.node.Node.run`), with the embedded defaults (SQLite and local
files), observer code ``DEMO`` and ``aavso.mode: outbox``: nothing is ever uploaded, and the
synthetic frames carry ``SYNTHET = T`` so no report of them could be uploaded anyway.

At the end it prints where the AAVSO report and the light curve are, and a summary: frames
measured, frames skipped with their reasons, rows in the report, the validator's verdict and how
far the measured magnitudes are from the truth the frames were made with.
"""

from __future__ import annotations

import io
import logging
import math
import os
import shlex
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .config import Config
from .instruments import profile

log = logging.getLogger(__name__)

__all__ = ["DEMO_DIR", "DemoError", "command_name", "demo_config", "kept_frames_dir", "night_plan",
           "run_demo", "write_slowly"]

#: Where the demo keeps its data (a fresh copy each run), relative to the current folder.
DEMO_DIR = Path("starnode-demo")
_MARKER = ".starnode-demo"
_MARKER_TEXT = "made by 'starnode demo'; deleted by the next demo run\n"
TARGET = "SS Cyg"
NIGHT_START = "2025-09-14T20:30:00"  # UTC; SS Cyg is high in the evening from Europe
SITE = (48.85, 2.35)
#: The demo's telescope: its sub names and its default (shortest non-expert) exposure.
_S50 = profile("s50")
_EXPTIME_S = _S50.exposures_s[0]


class DemoError(RuntimeError):
    """The demo cannot run here (its folder holds something it did not make)."""


def _shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the current folder when it is inside it, else absolute; quoted
    for a shell when it needs to be."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full)
    shown = rel if not rel.startswith(os.pardir) else full
    if os.sep not in shown:
        shown = os.path.join(os.curdir, shown)
    return shlex.quote(shown)


def command_name(argv0: str | None = None, executable: str | None = None) -> str:
    """How to run ``starnode`` again from this shell, as the hints print it: ``starnode`` when
    that name on PATH is this very program, else the path it was started by
    (``.venv/bin/starnode``), else ``<python> -m starnode`` with this interpreter.

    Parameters
    ----------
    argv0, executable : str, optional
        ``sys.argv[0]`` and ``sys.executable`` (default: this process's).

    Returns
    -------
    str
        A command line prefix that runs as printed.
    """
    import sys

    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if os.path.basename(argv0) == "starnode" and os.path.isfile(argv0):
        on_path = shutil.which("starnode")
        if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
            return "starnode"
        return _shown_path(argv0)
    return f"{_shown_path(executable)} -m starnode"


def _activate_hint(cmd: str) -> str:
    """For a ``.venv/bin/starnode`` command: how to make plain ``starnode`` work."""
    path = shlex.split(cmd)[0]
    activate = os.path.join(os.path.dirname(path), "activate")
    if cmd == "starnode" or not os.path.isfile(activate):
        return ""
    return (f"('starnode' alone is not on your PATH: run 'source {shlex.quote(activate)}' once "
            "in this shell to type 'starnode ...')\n")


def kept_frames_dir(root: Path) -> Path:
    """Where ``--keep`` puts this run's frames: ``<root>-frames/<UTC time>/``, beside the demo's
    folder, which a later demo empties; kept frames are never deleted by starnode."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = root.parent / f"{root.name}-frames"
    out, n = base / stamp, 1
    while out.exists():
        n += 1
        out = base / f"{stamp}-{n}"
    return out


def demo_config(data_dir: Path, watch: Path, workers: int) -> dict[str, Any]:
    """The demo's configuration (embedded defaults plus the bundled chart, offline)."""
    from .synthetic import DEMO_SEQUENCE_FILE

    return {
        "data_dir": str(data_dir),
        "workers": workers,
        "shutdown_grace": 30.0,
        "frame_timeout": 45.0,
        "watch": {"path": str(watch), "mode": "auto", "recursive": True, "catch_up": True,
                  "debounce_delay": 0.5, "poll_interval": 0.5, "max_wait": 10.0,
                  "stall_timeout": 2.0},
        "catalogs": {"sequence_file": str(DEMO_SEQUENCE_FILE), "offline": True},
        "aavso": {"observer_code": "DEMO", "mode": "outbox"},
    }


def night_plan(frames: int) -> list[dict[str, Any]]:
    """The night: ``frames`` good subs over ~5 hours, SS Cyg rising from 11.9 to 10.7 (the
    start of an outburst), plus three bad frames at fixed places."""
    from astropy.time import Time, TimeDelta

    start = Time(NIGHT_START, format="isot", scale="utc")
    span_min = 300.0
    plan: list[dict[str, Any]] = []
    for i in range(frames):
        minutes = span_min * i / max(frames - 1, 1)
        x = (minutes / span_min - 0.55) * 8.0
        mag = 11.9 - 1.2 / (1.0 + math.exp(-x))
        t = start + TimeDelta(minutes * 60.0, format="sec")
        plan.append({"kind": "good", "seed": 100 + i, "mag": round(mag, 3),
                     "date_obs": t.isot[:19]})
    def at(frac: float) -> str:
        return (start + TimeDelta(span_min * 60.0 * frac + 20.0, format="sec")).isot[:19]

    bad: list[dict[str, Any]] = [{"kind": "corrupt", "date_obs": at(0.2)},
                                 {"kind": "dark", "date_obs": at(0.5), "seed": 900},
                                 {"kind": "elsewhere", "date_obs": at(0.8), "seed": 901,
                                  "mag": 11.5}]
    for b in bad:  # slot each bad frame in at its time
        idx = next((k for k, p in enumerate(plan) if p["date_obs"] > b["date_obs"]), len(plan))
        plan.insert(idx, b)
    return plan


def _file_name(date_obs: str, exptime: float = _EXPTIME_S) -> str:
    stamp = date_obs.replace("-", "").replace(":", "").replace("T", "-")
    return _S50.light_name(TARGET, exptime, _S50.sub_filter, stamp)


def _frame_bytes(item: dict[str, Any]) -> bytes:
    from .synthetic import make_sub

    kind = item["kind"]
    if kind == "corrupt":  # what a failing SD card or a torn copy leaves behind
        rng = __import__("random").Random(7)
        return b"SIMPLE  =                    T / corrupt" + bytes(
            rng.randrange(256) for _ in range(5000))
    opts: dict[str, Any] = {"date_obs": item["date_obs"], "site": SITE, "exptime": _EXPTIME_S}
    if kind == "dark":
        opts["imagetyp"] = "Dark"
    if kind == "elsewhere":  # the mount slewed away: the target is not in the field
        opts["pointing_offset_arcmin"] = (0.0, 45.0)
    hdul, _truth = make_sub(target_mag=item.get("mag", 11.5), seed=item.get("seed", 0), **opts)
    buf = io.BytesIO()
    hdul.writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def write_slowly(path: Path, data: bytes, *, chunks: int = 6, pause: float = 0.03) -> None:
    """Write ``data`` into ``path`` in place, a chunk at a time (as the Seestar does over SMB:
    the file is visible while it grows, no temporary name, no rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = max(1, math.ceil(len(data) / chunks))
    with open(path, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(pause)


class _Telescope(threading.Thread):
    def __init__(self, folder: Path, plan: list[dict[str, Any]], interval: float) -> None:
        super().__init__(name="demo-telescope", daemon=True)
        self.folder = folder
        self.plan = plan
        self.interval = interval
        self.written: dict[str, dict[str, Any]] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for item in self.plan:
                data = _frame_bytes(item)
                path = self.folder / _file_name(item["date_obs"])
                write_slowly(path, data)
                self.written[str(path)] = item
                time.sleep(self.interval)
        except BaseException as exc:  # reported by run_demo
            self.error = exc


def _prepare(root: Path) -> None:
    if root.exists():
        if not (root / _MARKER).exists():
            raise DemoError(f"{root} exists and was not made by 'starnode demo'; remove it "
                            "or pass --data-dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / _MARKER).write_text(_MARKER_TEXT)


def run_demo(*, frames: int = 12, keep: bool = False, data_dir: str | None = None,
             workers: int | None = None, interval: float = 0.3,
             out: TextIO | None = None, timeout: float = 110.0,
             log_level: str | None = None) -> int:
    """Run the demo night; write the summary to ``out``. Returns the exit status (0 = the
    report validates and every good frame was measured). With ``log_level`` the logging is set
    up (console and ``data/logs/starnode.log``), as ``starnode demo`` does."""
    import sys

    from .config import Config
    from .node import Node

    out = out or sys.stdout
    frames = max(1, int(frames))
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    if data_dir:  # DIR is the data_dir itself, so 'starnode status --data-dir DIR' finds it
        root = Path(data_dir).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise DemoError(f"{root} is a file, not a folder; pass another --data-dir")
        if root.exists() and any(root.iterdir()):
            _prepare(root)  # only a folder a demo made is emptied
        else:
            root.mkdir(parents=True, exist_ok=True)
            (root / _MARKER).write_text(_MARKER_TEXT)
        data = root
    else:
        root = DEMO_DIR.resolve()
        _prepare(root)
        data = root / "data"
    if log_level is not None:  # the command line: console + data/logs/starnode.log
        from .logs import setup_logging

        setup_logging(log_level, data)
    # kept frames go beside the demo's folder (which the next demo empties), one folder a run
    frames_root = kept_frames_dir(root) if keep else Path(tempfile.mkdtemp(
        prefix="starnode-demo-"))
    myworks = frames_root / "MyWorks"
    sub_folder = myworks / f"{TARGET}_sub"
    myworks.mkdir(parents=True, exist_ok=True)
    cfg = Config(demo_config(data, myworks, workers), source="starnode demo")
    plan = night_plan(frames)
    out.write(f"starnode demo: a synthetic night of {TARGET} ({frames} subs + 3 bad frames), "
              f"written into {sub_folder}\n")
    out.flush()
    t0 = time.monotonic()
    scope = _Telescope(sub_folder, plan, interval)
    node = Node(cfg, workers=workers)
    scope.start()

    def done(n: Node) -> bool:
        if time.monotonic() - t0 > timeout:
            log.error("demo: giving up after %.0f s", timeout)
            return True
        if scope.is_alive():
            return False
        c = n.ledger.counts()
        return sum(c.values()) >= len(scope.written) and c["pending"] == 0 and \
            c["processing"] == 0 and not n.busy()

    node.run(until=done)
    scope.join(5)
    elapsed = time.monotonic() - t0
    if scope.error is not None:
        raise RuntimeError(f"the demo telescope failed: {scope.error}") from scope.error
    status = _summary(cfg, scope.written, elapsed, out)
    if not keep:
        shutil.rmtree(frames_root, ignore_errors=True)
    else:
        out.write(f"synthetic frames kept in {myworks} (a later demo does not delete them; "
                  "remove them yourself)\n")
    return status


def _outcome_text(counts: dict[str, int], problems: list[dict[str, Any]], written: int,
                  elapsed: float) -> str:
    from .node import short_reason

    text = (f"demo night done in {elapsed:.0f} s: {written} frames written, "
            f"{counts['reported']} measured and reported, {counts['measured']} measured only, "
            f"{counts['skipped']} skipped, {counts['failed']} failed\n")
    if problems:
        text += "skipped/failed, with reasons:\n"
    for p in problems:
        cat = f"[{p['category']}] " if p["category"] else ""
        text += (f"  {p['n']} {p['state']} {cat}{short_reason(p['reason'], p['example'])}  "
                 f"({Path(p['example']).name})\n")
    return text


def _truth_text(measured: list[Any], written: dict[str, dict[str, Any]]) -> str:
    """Measured minus true magnitude of the good frames; the ones far off, named."""
    diffs: list[float] = []
    off: list[str] = []
    for f in measured:
        truth = written.get(f.path)
        if not truth or truth.get("kind") != "good" or f.magnitude is None:
            continue
        d = f.magnitude - truth["mag"]
        diffs.append(d)
        if abs(d) > max(0.1, 3 * (f.uncertainty or 0.0)):
            off.append(f"  {f.name}: measured {f.magnitude:.3f} ± {f.uncertainty or 0:.3f} "
                       f"({f.quality}, {f.state}), true {truth['mag']:.3f}\n")
    text = ""
    if diffs:
        rms = math.sqrt(sum(d * d for d in diffs) / len(diffs))
        text += (f"measured - true magnitude over {len(diffs)} frames: mean "
                 f"{statistics.fmean(diffs):+.3f}, rms {rms:.3f} mag\n")
    if off:
        text += (f"WARNING: {len(off)} measurement(s) far from the truth the frame was made "
                 "with:\n" + "".join(off))
    return text


def _reports_text(cfg: Config) -> tuple[str, bool]:
    """Each outbox file with the validator's verdict; (text, all valid and at least one)."""
    from .aavso import outbox_files, validate_file
    from .aavso.validator import SYNTHETIC_RULE

    files = outbox_files(cfg)
    if not files:
        return "AAVSO report: none written (see the log above)\n", False
    text, ok = "", True
    for o in files:
        try:
            report = validate_file(o["path"])
        except OSError as exc:
            verdict, ok = f"unreadable: {exc}", False
        else:
            ok = ok and report.ok
            verdict = "valid (" + report.summary() + ")" if report.ok else \
                "REJECTED: " + "; ".join(str(e) for e in report.errors[:3])
            if any(f.rule == SYNTHETIC_RULE for f in report):
                verdict += "; SYNTHETIC DATA, never upload"
        text += f"AAVSO report: {o['path']}\n  {o.get('rows')} row(s), validator: {verdict}\n"
    return text, ok


def _curve_text(cfg: Config) -> tuple[str, bool]:
    from .morning.lightcurve import plot_lightcurve

    try:
        png, n = plot_lightcurve(cfg, TARGET)
    except LookupError as exc:
        return f"light curve: not drawn ({exc})\n", False
    return f"light curve: {png} ({n} points)\n", True


def _summary(cfg: Config, written: dict[str, dict[str, Any]], elapsed: float, out: TextIO) -> int:
    """Write the night's summary; 0 when reports validate and a light curve was drawn."""
    from .store import Ledger

    with Ledger(cfg) as led:
        counts = led.counts()
        problems = led.problems()
        measured = led.measurements(TARGET)
        n_rows = len(led.frames())
    out.write("\n" + "=" * 72 + "\n")
    out.write(_outcome_text(counts, problems, len(written), elapsed))
    out.write(_truth_text(measured, written))
    reports, reports_ok = _reports_text(cfg)
    out.write(reports)
    good = sum(1 for v in written.values() if v.get("kind") == "good")
    if counts["reported"] < good:  # declined by the quality gate: see 'starnode status'
        out.write(f"note: {good - counts['reported']} of the {good} good frame(s) not reported "
                  "(quality gate; 'starnode status' says why)\n")
    curve, curve_ok = _curve_text(cfg)
    out.write(curve)
    cmd, where = command_name(), _shown_path(cfg.data_dir)
    out.write(f"ledger and logs: {cfg.data_dir} ({n_rows} frames; "
              f"'{cmd} status --data-dir {where}')\n")
    out.write("observer code DEMO, outbox mode: nothing was uploaded; never upload synthetic "
              "data.\n")
    from .morning.summary import night_summary, render_text

    out.write("\n" + render_text(night_summary(cfg)) + f"\nsee it as a page: {cmd} serve "
              f"--data-dir {where}  (then open http://127.0.0.1:8765/)\n")
    activate = _activate_hint(cmd)
    if activate:
        out.write(activate)
    out.flush()
    return 0 if reports_ok and curve_ok and counts["reported"] > 0 else 1
