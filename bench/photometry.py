"""Photometry benchmark: warm per-frame time of ``measure`` against the floor.

    .venv/bin/python bench/photometry.py [--repeats N]

Frames: a synthetic S50 raw sub (1920 x 1080 GRBG, no WCS) and a synthetic 20-frame RGB stack
(3 x 1920 x 1080) of the SS Cyg field with the bundled VSP chart, written to a temporary folder.
"Warm" = the frame measured once before (the catalogue answer, the sequence file and the
astrometric solution are cached - the node's steady state, where each new file of a target
reuses them); the real solver is used (its cache is keyed by the file content).
The floor is what no measurement can avoid: reading the file and making the green plane
(astropy), plus one pass over the plane (its sum).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from photometry_compare import floor_pass
from starnode import synthetic
from starnode.config import Config
from starnode.photometry import measure


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), min(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config({"data_dir": str(Path(tmp) / "data"),
                      "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE),
                                     "offline": True}})
        frames = {
            "sub": synthetic.make_sub(seed=1, target_mag=11.5)[0],
            "stack": synthetic.make_stack(seed=2, target_mag=11.5, stackcnt=20)[0],
        }
        print(f"{'frame':<8}{'cold ms':>10}{'warm ms':>10}{'(min)':>8}{'floor ms':>10}"
              f"{'ratio':>8}   result")
        for kind, hdul in frames.items():
            path = synthetic.write_frame(Path(tmp) / f"{kind}.fit", hdul)
            t = time.perf_counter()
            r = measure(path, cfg)
            cold = time.perf_counter() - t
            warm, warm_min = _time(lambda p=path: measure(p, cfg), args.repeats)
            floor, _ = _time(lambda p=path, k=kind: floor_pass(p, k), args.repeats)
            print(f"{kind:<8}{cold * 1e3:>10.0f}{warm * 1e3:>10.1f}{warm_min * 1e3:>8.1f}"
                  f"{floor * 1e3:>10.1f}{warm / floor:>8.1f}   {r.magnitude:.3f} +/- "
                  f"{r.uncertainty:.3f} ({r.comparison_stars} comps, "
                  f"{r.astrometry.method if r.astrometry else None})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
