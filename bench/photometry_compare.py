"""Side-by-side photometry benchmark: releases of ``measure()`` on the same frames, one machine.

    .venv/bin/python bench/photometry_compare.py [--rounds N] [--repeats N]
        [--ref LABEL=COMMIT ...] [--no-tree]

Each version is the ``src/`` of a git commit (``git archive`` into a temporary folder) or this
working tree's ``src/`` (label ``tree``), imported by the same Python (this venv's packages) in
a subprocess of its own. All versions measure the **same files** (a synthetic S50 raw sub and a
synthetic 20-frame RGB stack, written once by this tree's :mod:`starnode.synthetic`), exactly as
bench/photometry.py does: one cold ``measure``, then warm ones (catalogue, sequence and
astrometric solution cached - the node's steady state).

The machine is shared and noisy, so the versions take turns: ``--rounds`` rounds, each running
every version for ``--repeats`` warm measurements and as many floor passes (reading the file,
making the green plane, one pass over it; measured after the version's measurements, with
glibc's allocator in the same state for all). Reported: medians over all rounds, wall-clock
and process CPU time (CPU time is what a loaded machine distorts least), and the ratio of each
to the floor (the same code for every version: its samples are pooled). Default versions:
0.1.0 (0a44280), 0.2.0 (d866ff5) and this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFS = ("0.1.0=0a44280", "0.2.0=d866ff5")
KINDS = ("sub", "stack")


# --------------------------------------------------------------------------------------------
# the subprocess: one version, measured on the given frames


def floor_pass(path: Path, kind: str) -> float:
    """The floor of a measurement: read the file, make the green plane, one pass over it
    (numpy and astropy imported here: the module itself imports only the standard library, so
    that any version's worker can run it)."""
    import numpy as np
    from astropy.io import fits

    with fits.open(path, memmap=False) as h:
        data = h[0].data
        plane = (data[0::2, 0::2].astype(np.float32) + data[1::2, 1::2]) if kind == "sub" \
            else data[1].astype(np.float32)
    return float(plane.sum())


def _clock(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return wall, cpu


def _reuse_freed_memory() -> None:
    """glibc's mmap/trim thresholds as ``starnode.util.memory`` sets them (0.1.0 has no such
    module), so that the floor is measured in one allocator state whatever the version."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _summary(r: Any) -> dict[str, Any]:
    """The headline of a result, dict (0.1.0) or Measurement (0.2.0 on)."""
    d = r if isinstance(r, dict) else r.to_dict()
    return {k: d.get(k) for k in ("magnitude", "uncertainty", "comparison_stars",
                                  "quality_flag")}


def worker(frames_dir: Path, repeats: int, starlists: bool = True) -> int:
    """Measure the frames in ``frames_dir`` with whatever ``starnode`` is on the path; JSON out.

    ``starlists=False`` sets ``photometry.starlists: false`` (exit 3 for a version without
    that key)."""
    import logging

    import starnode
    from starnode.config import Config
    from starnode.photometry import measure

    logging.basicConfig(level=logging.ERROR)
    out: dict[str, Any] = {"starnode": str(Path(starnode.__file__).parent)}
    with tempfile.TemporaryDirectory() as tmp:
        seq = frames_dir / "sequence.json"
        phot: dict[str, Any] = {"sequence_file": str(seq), "offline": True}
        if not starlists:
            phot["starlists"] = False
        try:
            cfg = Config({"data_dir": str(Path(tmp) / "data"), "photometry": phot})
        except Exception:  # 0.1.0 has no such key (its own ConfigError class)
            return 3
        for kind in KINDS:
            path = frames_dir / f"{kind}.fit"
            r = measure(path, cfg)  # cold: solve, catalogue
            wall, cpu = _clock(lambda p=path: measure(p, cfg), repeats)
            out[kind] = {"wall": wall, "cpu": cpu, "result": _summary(r)}
        # the floor last, in the same allocator state for every version (freed memory kept,
        # as the current tree sets it on its first detection), warmed up once
        _reuse_freed_memory()
        for kind in KINDS:
            path = frames_dir / f"{kind}.fit"
            floor_pass(path, kind)
            out[kind]["floor_wall"], out[kind]["floor_cpu"] = _clock(
                lambda p=path, k=kind: floor_pass(p, k), repeats)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


# --------------------------------------------------------------------------------------------
# the parent: sources, frames, rounds, table


def _export(commit: str, dest: Path) -> Path:
    """``src/`` of ``commit`` under ``dest`` (git archive; no worktree, nothing to clean up)."""
    dest.mkdir(parents=True)
    tar = dest / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(tar), commit,
                    "src"], check=True)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return dest / "src"


def _write_frames(dest: Path) -> None:
    import shutil

    from starnode import synthetic

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(synthetic.DEMO_SEQUENCE_FILE, dest / "sequence.json")
    synthetic.write_frame(dest / "sub.fit", synthetic.make_sub(seed=1, target_mag=11.5)[0])
    synthetic.write_frame(dest / "stack.fit",
                          synthetic.make_stack(seed=2, target_mag=11.5, stackcnt=20)[0])


def add_version_arguments(ap: argparse.ArgumentParser) -> None:
    """The options :func:`versions` reads (``--ref``, ``--no-tree``, ``--without-starlists``)
    and the hidden ones of a version's worker subprocess (``--worker``, ``--no-starlists``)."""
    ap.add_argument("--ref", action="append", default=None, metavar="LABEL=COMMIT",
                    help=f"a version to compare (default: {' '.join(DEFAULT_REFS)})")
    ap.add_argument("--no-tree", action="store_true", help="leave out this working tree")
    ap.add_argument("--without-starlists", action="store_true",
                    help="also run each version that has the key with photometry.starlists off "
                         "(rows 'LABEL-sl'), to see what the starlists cost")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--no-starlists", action="store_true", help=argparse.SUPPRESS)


def versions(args: argparse.Namespace, tmp: Path) -> tuple[list[tuple[str, Path, bool]], Path]:
    """The versions to run (``args.ref``, this tree unless ``args.no_tree``), each
    ``(label, src, starlists)`` (and ``LABEL-sl`` without starlists when
    ``args.without_starlists``), and the frames they measure, all under ``tmp``."""
    srcs: dict[str, Path] = {}
    for ref in args.ref or DEFAULT_REFS:
        label, _, commit = ref.partition("=")
        srcs[label] = _export(commit or label, tmp / label)
    if not args.no_tree:
        srcs["tree"] = ROOT / "src"
    frames = tmp / "frames"
    _write_frames(frames)
    variants = [(label, src, True) for label, src in srcs.items()]
    if args.without_starlists:
        variants += [(f"{label}-sl", src, False) for label, src in srcs.items()]
    return variants, frames


def _run(src: Path, frames: Path, repeats: int, starlists: bool = True) -> dict[str, Any] | None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(frames),
                        "--repeats", str(repeats)] + ([] if starlists else ["--no-starlists"]),
                       env=env, capture_output=True, text=True, check=False)
    if p.returncode == 3:
        return None
    if p.returncode != 0:
        raise RuntimeError(f"{src}: worker failed:\n{p.stderr[-2000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def _table(labels: list[str], runs: dict[str, list[dict[str, Any]]]) -> str:
    """Medians; the floor is the same code for every version, so its samples are pooled."""
    lines = [f"{'version':<10}{'frame':<7}{'wall ms':>9}{'x floor':>9}{'cpu ms':>9}"
             f"{'x floor':>9}   result"]
    for kind in KINDS:
        fw, fc = (statistics.median(v for runs_ in runs.values() for r in runs_
                                    for v in r[kind][key]) for key in ("floor_wall", "floor_cpu"))
        lines.append(f"{'floor':<10}{kind:<7}{fw * 1e3:>9.1f}{1:>9.1f}{fc * 1e3:>9.1f}{1:>9.1f}"
                     "   reading the file, the green plane, one pass")
        for label in labels:
            w, c = (statistics.median(v for r in runs[label] for v in r[kind][key])
                    for key in ("wall", "cpu"))
            res = runs[label][0][kind]["result"]
            lines.append(f"{label:<10}{kind:<7}{w * 1e3:>9.1f}{w / fw:>9.1f}{c * 1e3:>9.1f}"
                         f"{c / fc:>9.1f}   {res['magnitude']:.3f} +/- "
                         f"{res['uncertainty']:.3f} ({res['comparison_stars']} comps, "
                         f"{res['quality_flag']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    add_version_arguments(ap)
    args = ap.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.repeats, starlists=not args.no_starlists)
    with tempfile.TemporaryDirectory(prefix="starnode-compare-") as tmp:
        variants, frames = versions(args, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in variants}
        for i in range(args.rounds):
            for label, src, starlists in variants:
                r = _run(src, frames, args.repeats, starlists)
                if r is not None:
                    runs[label].append(r)
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
        print(f"median of {args.rounds} rounds x {args.repeats} warm measurements; "
              "x floor = ratio to the floor measured alike in the same process"
              + ("; -sl: photometry.starlists off" if args.without_starlists else ""))
        print(_table([label for label, r in runs.items() if r], runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
