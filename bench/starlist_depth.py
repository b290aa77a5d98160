"""Starlist detection on a stack: the full green plane against cheaper planes, by depth and time.

    .venv/bin/python bench/starlist_depth.py [--seeds N] [--extra-stars N]

The starlist's whole-frame detection (``frame.detect.field_stars``: sep's background with a
32 px mesh, then ``sep.extract``) is most of a warm stack measurement's time (issue 18, item 8).
The one cheaper detection that keeps the starlist's meaning (every source of the frame) is a
detection on fewer pixels: the green plane binned 2 x 2 (one CFA cell a pixel, as a sub's
plane is), or a coarser background mesh. This measures what each would cost in stars found.

Frames: synthetic native RGB stacks (:func:`starnode.synthetic.make_stack`, bilinear-debayered as
the scope's are) of the bundled chart's field with ``--extra-stars`` random field stars of
V 13-16.5, at three depths (20 subs; 3 subs; 3 subs under a four times brighter sky). A
detection counts as a true star within 2.5 px of one (plane px); "spurious" are the others.
Reported per variant and depth, summed over ``--seeds`` fields: detections, true stars found,
spurious ones, the 95th percentile and the faintest V found, and the median CPU time per frame.
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

import numpy as np
from scipy.spatial import cKDTree

from starnode import synthetic
from starnode.frame.detect import field_stars, find_stars
from starnode.frame.load import load_frame

DEPTHS = (("20 subs", 20, None), ("3 subs", 3, None), ("3 subs, bright sky", 3, 800.0))
MATCH_PX = 2.5


def binned(plane: np.ndarray) -> np.ndarray:
    """The plane binned 2 x 2 (sums; an odd last row or column dropped)."""
    ny, nx = (s // 2 * 2 for s in plane.shape)
    p = plane[:ny, :nx].astype(np.float32)
    return p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]


def _on_binned(min_area: int) -> Callable[[np.ndarray], np.ndarray]:
    def detect(plane: np.ndarray) -> np.ndarray:
        return field_stars(binned(plane), min_area=min_area).xy * 2.0 + 0.5
    return detect


def _mesh64(plane: np.ndarray) -> np.ndarray:
    """:func:`field_stars`'s detection (its settings) with a 64 px background mesh."""
    return find_stars(plane, threshold_sigma=3.0, max_stars=None, min_area=4, mesh_px=64,
                      point_sources=False, brightest_first=False, windowed=False).xy


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full plane (today)": lambda plane: field_stars(plane).xy,
    "full plane, 64 px mesh": _mesh64,
    "binned 2x2, min area 4": _on_binned(4),
    "binned 2x2, min area 2": _on_binned(2),
    "binned 2x2, min area 1": _on_binned(1),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--extra-stars", type=int, default=400)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"{'depth':<20}{'variant':<26}{'found':>7}{'spurious':>9}{'of true':>8}"
          f"{'V 95%':>7}{'V max':>7}{'CPU ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, stackcnt, sky in DEPTHS:
            found = {k: [0, 0] for k in VARIANTS}
            mags: dict[str, list[float]] = {k: [] for k in VARIANTS}
            cpu: dict[str, list[float]] = {k: [] for k in VARIANTS}
            n_true = 0
            for seed in range(2, 2 + args.seeds):
                options: dict[str, object] = {"extra_stars": args.extra_stars}
                if sky is not None:
                    options["sky_adu"] = sky
                hdul, truth = synthetic.make_stack(seed=seed, stackcnt=stackcnt, **options)
                plane = load_frame(synthetic.write_frame(Path(tmp) / "stack.fit", hdul)).plane
                ny, nx = plane.shape
                true = [s for s in truth.stars if s.in_frame and 2 < s.plane_x < nx - 3
                        and 2 < s.plane_y < ny - 3]
                tree = cKDTree([(s.plane_x, s.plane_y) for s in true])
                v = np.array([s.v_mag for s in true])
                n_true += len(true)
                for name, detect in VARIANTS.items():
                    t = time.process_time()
                    xy = detect(plane)
                    cpu[name].append(time.process_time() - t)
                    dist, idx = tree.query(xy) if len(xy) else (np.empty(0), np.empty(0, int))
                    hit = set(idx[dist < MATCH_PX].tolist())
                    found[name][0] += len(hit)
                    found[name][1] += int(np.sum(dist >= MATCH_PX))
                    mags[name] += v[sorted(hit)].tolist()
            for name in VARIANTS:
                m = np.array(mags[name])
                print(f"{label:<20}{name:<26}{found[name][0]:>7}{found[name][1]:>9}{n_true:>8}"
                      f"{np.percentile(m, 95):>7.2f}{m.max():>7.2f}"
                      f"{1e3 * statistics.median(cpu[name]):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
