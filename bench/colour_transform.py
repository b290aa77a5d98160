"""Transformed V vs untransformed TG on synthetic subs with a known colour term (issue 11.7).

    .venv/bin/python bench/colour_transform.py [--seeds N] [--exptime S] [--colour-term T]

A red (B-V 1.6) and a blue (B-V 0.2) V 11 target, comps of
``synthetic.colour.write_colour_chart`` (B-V 0.2-1.6, 0.01 mag errors), the generator's
``colour_term`` (true Tv_bv = -colour_term). Each sub is measured with
``photometry.transform`` on; the TG value is the record's ``transformation.untransformed_mag``.
Prints one line per frame (``scope`` ``night``: transformed with the night's combined
coefficient, the frame's own being too uncertain) and a Markdown summary row per target, then
the night's combined Tv_bv (all frames of both targets: one telescope, one night).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from starnode import photometry, synthetic
from starnode.config import Config
from starnode.synthetic.colour import write_colour_chart


def run(seeds: int, exptime: float, colour_term: float) -> list[str]:
    """Measure the frames; the summary rows."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        chart = write_colour_chart(d / "chart.json")
        cfg = Config({"data_dir": str(d / "data"), "photometry": {
            "sequence_file": str(chart), "offline": True, "transform": True}})
        for bv in (1.6, 0.2):
            tg, v, tv, applied = [], [], [], 0
            for seed in range(100, 100 + seeds):
                hdul, truth = synthetic.make_sub(chart, seed=seed, target_mag=11.0,
                                                 target_bv=bv, colour_term=colour_term,
                                                 exptime=exptime)
                m = photometry.measure(synthetic.write_frame(d / "sub.fit", hdul), cfg)
                t = m.transformation
                assert t is not None
                tg_i = (t.untransformed_mag if t.applied else m.magnitude) - truth.target_mag
                tg.append(tg_i)
                if t.applied:
                    applied += 1
                    v.append(m.magnitude - truth.target_mag)
                    tv.append(t.coefficient)
                sys.stdout.write(f"B-V {bv} seed {seed}: TG {tg_i:+.3f}  "
                                 f"{'V ' + format(v[-1], '+.3f') if t.applied else 'not: '}"
                                 f"{'' if t.applied else t.reason}  Tv_bv {t.coefficient} "
                                 f"+- {t.coefficient_err} ({t.scope})\n")
            out.append(f"| B-V {bv} | {np.mean(tg):+.3f} (rms {np.sqrt(np.mean(np.square(tg))):.3f}"
                       f", {seeds} frames) | {np.mean(v):+.3f} (rms "
                       f"{np.sqrt(np.mean(np.square(v))):.3f}, {applied} frames transformed) | "
                       f"{np.mean(tv):.3f} |")
        from starnode.store.colourterms import ColourTerms

        night = ColourTerms(cfg).night(m.telescope or "", m.night or "")
        if night is not None:
            out.append(f"night {m.night}, {m.telescope}: Tv_bv = {night.value:.4f} +- "
                       f"{night.error:.4f} from {night.n_frames} frames (chi2/dof "
                       f"{night.chi2:.2f}; true {-colour_term:+.3f})")
    return out


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--exptime", type=float, default=60.0)
    ap.add_argument("--colour-term", type=float, default=0.15)
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = run(a.seeds, a.exptime, a.colour_term)
    sys.stdout.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
