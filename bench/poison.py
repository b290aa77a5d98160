"""Benchmark: the poison run of ``tests/system/test_chaos.py`` (a real ``starnode run`` whose share
receives a name that is not UTF-8, a FIFO, a folder named ``x.fit``, a symlink to /dev/zero, a
sparse frame announcing 20000 x 20000 pixels, then good synthetic subs): peak RSS of the node
and its workers (sampled every 0.2 s), seconds from SIGTERM to exit, what happened to each file.

    .venv/bin/python bench/poison.py [--good 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "system"))

from test_chaos import run_poison


def main() -> None:
    """Run the scenario once and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--good", type=int, default=3, help="good frames after the poison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = run_poison(Path(tmp), good=args.good)
    sys.stdout.write(f"peak RSS node + workers: {out['peak_rss'] / 2**20:.0f} MiB\n"
                     f"SIGTERM to exit: {out['stop_seconds']:.1f} s (exit {out['exit']})\n")
    for name, (state, cat, reason) in sorted(out["states"].items()):
        sys.stdout.write(f"  {state:<9} [{cat}] {name}: {reason[:90]}\n")


if __name__ == "__main__":
    main()
