"""Are the reported errors honest between consecutive subs? Per-star chi2/dof of pairs.

    .venv/bin/python bench/errors.py [--shared ../shared] [--subs N] [--skip-real]
        [--vignetting-only]

For each pair of consecutive subs of the same field, every star measured in both (the
pipeline's own ``measure_stars``: re-centring, FWHM, aperture, errors with the excess noise)
gives d = m2 - m1; chi2/dof = sum((d - <d>)^2 / (e1^2 + e2^2)) / (n - 1) (:func:`pair_chi2`).
Honest errors: ~1 (issue 11 asks 0.8-1.25).

- **real**: the five M 94 subs in ``shared/data/seestar-s50`` (field stars detected with sep,
  matched by registration);
- **undersampled**: synthetic subs with FWHM 1.2, 1.4 and 1.6 green-plane px, random sub-pixel
  phases (``dither_px``), 1 % pixel-response non-uniformity, 120 field stars;
- **vignetting**: noise-free synthetic subs with 20 % corner vignetting measured by ``measure``
  (target error vs the truth with a constant zero point and with the illumination model).

Use ``--legacy`` to measure with the 0.1.0 error model (no excess noise, no aperture floor).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from starnode import synthetic
from starnode.config import Config
from starnode.frame.load import Frame, load_frame
from starnode.photometry import measure, measure_stars, times
from starnode.photometry.detect import detect_stars, register
from starnode.photometry.noise import pair_chi2


def _pairs(frames: list[Frame], positions: list[np.ndarray], cfg: Config) -> list[float]:
    ms = []
    for fr, pos in zip(frames, positions, strict=True):
        airmass = times(fr, fr.ra_deg, fr.dec_deg)[2]  # type: ignore[arg-type]
        ms.append(measure_stars(fr, pos, cfg, airmass=airmass))
    out = []
    for a, b in itertools.pairwise(ms):
        ok = ~(a.saturated | b.saturated | a.edge | b.edge) & (a.snr > 10) & (b.snr > 10)
        chi, n = pair_chi2(a.mag[ok], a.mag_err[ok], b.mag[ok], b.mag_err[ok])
        out.append(chi)
        print(f"    pair: n={n:3d} chi2/dof={chi:.2f}  FWHM {a.fwhm:.2f} px, "
              f"r {a.radius:.2f} px, excess {getattr(a, 'excess_mag', 0.0):.4f} mag")
    return out


def real(shared: Path, cfg: Config) -> list[float]:
    folder = shared / "data" / "seestar-s50" / "S50_1d3fe189_M94_2025-03-27"
    frames = [load_frame(p, cfg) for p in sorted(folder.glob("*.fit"))]
    det = [detect_stars(fr) for fr in frames]
    ref, ref_flux = det[0].xy[det[0].starlike], det[0].flux[det[0].starlike]
    positions = [ref] + [register(ref, ref_flux, d.xy[d.starlike], d.flux[d.starlike])
                         for d in det[1:]]
    return _pairs(frames, positions, cfg)


def undersampled(cfg: Config, n_subs: int, tmp: Path) -> list[float]:
    out = []
    for fwhm_px in (1.2, 1.4, 1.6):
        frames, placed = [], []
        for k in range(n_subs):
            hdul, truth = synthetic.make_sub(
                seed=100 + k, fwhm_arcsec=fwhm_px * 2 * synthetic.S50_SCALE_ARCSEC,
                pointing_offset_arcmin=(6.0, 2.0), rotation_deg=30.0, dither_px=3.0,
                extra_stars=120, prnu=0.01, field_seed=7, psf="moffat", moffat_beta=2.5)
            path = synthetic.write_frame(tmp / f"u{fwhm_px}_{k}.fit", hdul)
            frames.append(load_frame(path, cfg))
            placed.append({s.label: (s.plane_x, s.plane_y) for s in truth.stars
                           if s.in_frame})
        common = sorted(set.intersection(*(set(p) for p in placed)))
        positions = [np.array([p[label] for label in common]) for p in placed]
        print(f"  FWHM {fwhm_px} px:")
        out += _pairs(frames, positions, cfg)
    return out


def vignetting(cfg_map: dict[str, Any], tmp: Path, n: int = 6) -> list[float]:
    """Noise-free frames (the systematic error alone), constant vs the configured model."""
    errs = []
    for k in range(n):
        hdul, truth = synthetic.make_sub(seed=300 + k, vignetting=0.2, noise=False)
        path = synthetic.write_frame(tmp / f"v{k}.fit", hdul)
        line = f"    seed {300 + k}:"
        models = ("constant", cfg_map.get("photometry", {}).get("illumination", "auto"))
        for i, model in enumerate(models):
            cfg = Config({**cfg_map, "photometry": {**cfg_map.get("photometry", {}),
                                                    "illumination": model}})
            m = measure(path, cfg)
            err = m.magnitude - truth.target_mag
            line += f"  {model}: {err:+.4f}"
            if i == 1:
                errs.append(err)
                ill = m.illumination
                line += f" ({ill.model if ill else None})"
        print(line)
    return errs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent
                    / "shared")
    ap.add_argument("--subs", type=int, default=6)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--legacy", action="store_true", help="the 0.1.0 error model")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cfg_map: dict[str, Any] = {"data_dir": str(tmp / "data")}
        if args.legacy:
            cfg_map["photometry"] = {"excess_noise": False, "aperture_min_px": 0.0,
                                     "illumination": "constant"}
        try:
            cfg = Config(cfg_map)
        except Exception as exc:  # a config without the new keys (0.1.0 code)
            print(f"legacy keys not known ({exc}); default config")
            cfg_map = {"data_dir": str(tmp / "data")}
            cfg = Config(cfg_map)
        if not args.skip_real and args.shared.is_dir():
            print("M 94 real subs (consecutive pairs):")
            r = real(args.shared, cfg)
            print(f"  mean chi2/dof {np.mean(r):.2f}")
        print("undersampled synthetic subs (consecutive pairs):")
        u = undersampled(cfg, args.subs, tmp)
        print(f"  mean chi2/dof {np.mean(u):.2f} (range {min(u):.2f}-{max(u):.2f})")
        print("20 % corner vignetting, target error:")
        v = vignetting(cfg_map, tmp)
        print(f"  max |error| {max(abs(x) for x in v):.4f} mag")
    return 0


if __name__ == "__main__":
    sys.exit(main())
