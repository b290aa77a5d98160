"""Two versions of ``measure()`` side by side, paired: which is faster, on a noisy machine.

    .venv/bin/python bench/photometry_paired.py OLD NEW [--kind sub|stack] [--rounds 40]
        [--batch 3]

OLD and NEW are git commits (``git archive`` of their ``src/``) or ``tree`` (this working
tree). Each runs in one **persistent** worker process (imported once, the frames measured cold
once, then warm), and the two take turns in small batches of warm measurements, the order
alternating from round to round. Reported: the medians of both and the median of the paired
differences (NEW - OLD, per round) with its quartiles, CPU time.

Why beside bench/photometry_compare.py: that one starts a new process per version and round,
in a fixed order, and measures 5 times right after the cold measurement; when the host's
speed swings by tens of per cent within seconds (it does on the shared machine), its 12
rounds do not separate versions 5 % apart, and two runs minutes apart disagree. Paired
batches a second apart do (docs/performance.md, fourth pass). The frames are the same
synthetic S50 sub and 20-frame stack (written by this tree's :mod:`starnode.synthetic`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photometry_compare import ROOT, _export, _write_frames  # a sibling script

_CHILD = r"""
import json, logging, sys, tempfile, time
from pathlib import Path
logging.basicConfig(level=logging.ERROR)
from starnode.config import Config
from starnode.photometry import measure
frames = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    cfg = Config({"data_dir": tmp + "/data", "photometry": {
        "sequence_file": str(frames / "sequence.json"), "offline": True}})
    path = frames / (sys.argv[2] + ".fit")
    for _ in range(3):
        measure(path, cfg)
    print("ready", flush=True)
    for line in sys.stdin:
        out = []
        for _ in range(int(line)):
            t = time.process_time()
            measure(path, cfg)
            out.append(time.process_time() - t)
        print(json.dumps(out), flush=True)
"""


def _source(version: str, tmp: Path) -> Path:
    """``src/`` of a commit (git archive), or this tree's for ``tree``."""
    return ROOT / "src" if version == "tree" else _export(version, tmp / version)


def _frames(dest: Path) -> Path:
    _write_frames(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--kind", choices=("sub", "stack"), default="sub")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--batch", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="starnode-paired-") as tmp_:
        tmp = Path(tmp_)
        frames = _frames(tmp / "frames")
        workers = {}
        for label in ("old", "new"):
            src = _source(getattr(args, label), tmp / label)
            workers[label] = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(frames), args.kind], text=True,
                env={**os.environ, "PYTHONPATH": str(src)}, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE)
        medians: dict[str, list[float]] = {"old": [], "new": []}
        try:
            for w in workers.values():
                assert w.stdout is not None and w.stdout.readline().strip() == "ready"
            for i in range(args.rounds):
                for label in ("old", "new") if i % 2 == 0 else ("new", "old"):
                    w = workers[label]
                    assert w.stdin is not None and w.stdout is not None
                    w.stdin.write(f"{args.batch}\n")
                    w.stdin.flush()
                    medians[label].append(statistics.median(json.loads(w.stdout.readline())))
        finally:
            for w in workers.values():
                if w.stdin is not None:
                    w.stdin.close()
                w.wait()
    diffs = [(n - o) * 1e3 for o, n in zip(medians["old"], medians["new"], strict=True)]
    q1, _, q3 = statistics.quantiles(diffs, n=4)
    print(f"{args.kind}: {args.old} {statistics.median(medians['old']) * 1e3:.2f} ms, "
          f"{args.new} {statistics.median(medians['new']) * 1e3:.2f} ms CPU (medians of "
          f"{args.rounds} rounds x {args.batch}); paired difference new - old "
          f"{statistics.median(diffs):+.2f} ms (quartiles {q1:+.2f} / {q3:+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
