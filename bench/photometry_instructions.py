"""Instructions per warm ``measure()``: releases side by side, counted, not timed.

    .venv/bin/python bench/photometry_instructions.py [--repeats N]
        [--ref LABEL=COMMIT ...] [--no-tree] [--without-starlists] [--keep DIR]

The same versions and frames as bench/photometry_compare.py (a synthetic S50 raw sub and a
synthetic 20-frame stack; one cold ``measure``, then warm ones), but each version runs under
valgrind's callgrind, which counts the machine instructions the process executes. A count does
not depend on what else the machine is doing: the same tree gives the same count to within
0.01 % (a timing on this shared machine drifts by up to 50 % within seconds). It is not a time:
an instruction that waits for memory counts as much as one that does not, so the two
benchmarks complement each other (seconds: what a night costs; instructions: what the code
does, the figure to compare releases by).

How: the worker starts with instrumentation off (imports, the cold measurement and two warm
ones run uninstrumented), then the parent, between the worker's steps, switches counting on,
zeroes it, lets the worker run ``--repeats`` warm measurements of one frame, dumps the count,
and the same for as many floor passes (reading the file, the green plane, one pass:
:func:`photometry_compare.floor_pass`). Reported: millions of instructions per measurement,
and the ratio to the floor (the floor's count is the same code for every version). Needs
valgrind (``apt install valgrind``); about 2 minutes per version.

``--keep DIR`` keeps each dump (``callgrind_annotate DIR/<label>-<kind>.*`` shows where the
instructions go).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photometry_compare import (  # a sibling script
    KINDS,
    add_version_arguments,
    floor_pass,
    versions,
)

log = logging.getLogger("bench.instructions")


# --------------------------------------------------------------------------------------------
# the worker: runs under callgrind, one step per line of standard input


def worker(frames_dir: Path, starlists: bool = True) -> int:
    """Measure on request: ``measure KIND N`` / ``floor KIND N`` per line, ``ok`` after each."""
    import logging as _logging

    from starnode.config import Config
    from starnode.photometry import measure

    _logging.basicConfig(level=_logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        phot: dict[str, Any] = {"sequence_file": str(frames_dir / "sequence.json"),
                                "offline": True}
        if not starlists:
            phot["starlists"] = False
        try:
            cfg = Config({"data_dir": str(Path(tmp) / "data"), "photometry": phot})
        except Exception:  # a version without that key (0.1.0's own ConfigError class)
            sys.stdout.write("unsupported\n")
            sys.stdout.flush()
            return 3
        for kind in KINDS:  # cold (solve, catalogue), then warm twice: the steady state
            for _ in range(3):
                measure(frames_dir / f"{kind}.fit", cfg)
            floor_pass(frames_dir / f"{kind}.fit", kind)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for line in sys.stdin:
            what, kind, n = line.split()
            path = frames_dir / f"{kind}.fit"
            for _ in range(int(n)):
                if what == "measure":
                    measure(path, cfg)
                else:
                    floor_pass(path, kind)
            sys.stdout.write("ok\n")
            sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# the parent: one callgrind run per version


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{dump}: no totals line")


def count(src: Path, frames: Path, repeats: int, out: Path, label: str,
          starlists: bool = True) -> dict[str, float] | None:
    """Instructions per warm measurement and per floor pass of each kind (None: the version
    has no such setting)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
           f"--callgrind-out-file={out / label}.%p", sys.executable,
           str(Path(__file__).resolve()), "--worker", str(frames)]
    if not starlists:
        cmd.append("--no-starlists")
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    first = p.stdout.readline().strip()
    if first != "ready":
        p.kill()
        err = p.stderr.read()
        p.wait()
        if first == "unsupported":
            return None
        raise RuntimeError(f"{label}: worker failed: {first}\n{err[-2000:]}")
    result: dict[str, float] = {}
    try:
        for kind in KINDS:
            for what in ("measure", "floor"):
                _control(p.pid, "--instr=on")
                _control(p.pid, "--zero")
                p.stdin.write(f"{what} {kind} {repeats}\n")
                p.stdin.flush()
                if p.stdout.readline().strip() != "ok":
                    raise RuntimeError(f"{label}: {what} {kind} failed\n"
                                       f"{p.stderr.read()[-2000:]}")
                _control(p.pid, f"--dump={label}-{kind}-{what}")
                _control(p.pid, "--instr=off")
                dumps = sorted(out.glob(f"{label}.{p.pid}.*"), key=lambda d: int(
                    d.suffix[1:]))
                result[f"{kind}_{what}"] = _total(dumps[-1]) / repeats
    finally:
        p.stdin.close()
        p.wait(timeout=600)
    return result


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'version':<12}" + "".join(f"{kind + ' Minstr':>14}{'x floor':>9}"
                                          for kind in KINDS)]
    floors = {kind: min(r[f"{kind}_floor"] for r in results.values()) for kind in KINDS}
    lines.append(f"{'floor':<12}" + "".join(f"{floors[kind] / 1e6:>14.1f}{1:>9.2f}"
                                            for kind in KINDS))
    for label, r in results.items():
        lines.append(f"{label:<12}" + "".join(
            f"{r[f'{kind}_measure'] / 1e6:>14.1f}{r[f'{kind}_measure'] / floors[kind]:>9.2f}"
            for kind in KINDS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    add_version_arguments(ap)
    ap.add_argument("--keep", type=Path, help="keep the callgrind dumps in this folder")
    args = ap.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, starlists=not args.no_starlists)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="starnode-instructions-") as tmp:
        variants, frames = versions(args, Path(tmp))
        dumps = args.keep or Path(tmp) / "dumps"
        results: dict[str, dict[str, float]] = {}
        for label, src, starlists in variants:
            r = count(src, frames, args.repeats, dumps, label, starlists)
            if r is not None:
                results[label] = r
            print(f"{label} counted", file=sys.stderr)
        print(f"instructions per warm measurement (callgrind, mean of {args.repeats}); "
              "x floor = ratio to reading the file, the green plane, one pass"
              + ("; -sl: photometry.starlists off" if args.without_starlists else ""))
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
