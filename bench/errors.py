"""Are the reported errors honest between consecutive subs? Per-star chi2/dof of pairs.

    .venv/bin/python bench/errors.py [--shared ../shared] [--subs N] [--skip-real] [--legacy]
        [--before-after]

For each pair of consecutive subs of the same field, every star measured in both (the
pipeline's own ``measure_stars``: re-centring, FWHM, aperture, errors with the excess noise)
gives d = m2 - m1; chi2/dof = sum((d - <d>)^2 / (e1^2 + e2^2)) / (n - 1) (:func:`pair_chi2`).
Honest errors: ~1 (issue 11 asks 0.8-1.25).

- **real**: the five M 94 subs in ``shared/data/seestar-s50`` (field stars detected with sep,
  matched by registration);
- **NGC 7023 real pair**: the two older-firmware alt-az subs (bench/errors_real.py has the
  evidence tables); under each real set, the sky part of the error model alone, on 800
  apertures on blank sky (:func:`blank_sky`);
- **undersampled**: synthetic subs with FWHM 1.2, 1.4 and 1.6 green-plane px, random sub-pixel
  phases (``dither_px``), 1 % pixel-response non-uniformity, 120 field stars;
- **sharp core** (older-firmware-like): synthetic subs whose stars put half their light in a
  1.2 native-px core on a 1.5 px Moffat (measured FWHM ~1.5 green-plane px), a 450 ADU
  pedestal, 1500 field stars, random phases;
- **vignetting**: noise-free synthetic subs with 20 % corner vignetting measured by ``measure``
  (target error vs the truth with a constant zero point and with the illumination model).

Each set prints chi2/dof per S/N bin (< 20, 20-50, > 50), pooled over its pairs; under a real
set, also what honest errors would read on the same stars (``noise.honest_bin_chi2``: their
16-84 % range, how often at least the measured value, how often outside 0.8-1.25). A star is
placed by its S/N over all the subs (``noise.star_snr``), not by the fainter sub's of a pair:
that one falls with the difference under test and biases the bins (high below an edge, low
above it) even for honest errors. ``--legacy``: the 0.1.0 error model (no excess noise, no
aperture floor, no CFA correction); ``--before-after``: every set with the 0.2.0 model (no
CFA correction) and with this version's.
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
from starnode.frame.detect import field_stars
from starnode.frame.load import Frame, load_frame
from starnode.photometry import measure, measure_stars, times
from starnode.photometry.noise import honest_bin_chi2, pair_chi2, pair_z2, snr_bins, star_snr
from starnode.photometry.register import register

BINS = ((0.0, 20.0), (20.0, 50.0), (50.0, np.inf))


def _bin_name(lo: float, hi: float) -> str:
    return f"<{hi:.0f}" if lo == 0 else (f">{lo:.0f}" if hi == np.inf else f"{lo:.0f}-{hi:.0f}")


class Bins:
    """Each star-pair's z^2 per S/N bin, with the star it belongs to, so that a bin's chi2/dof
    gets a bootstrap interval over stars: consecutive pairs share subs and a star appears in
    every pair, so the star-pairs are not independent and sqrt(2/n) understates the spread."""

    def __init__(self) -> None:
        self.z2: dict[tuple[float, float], list[float]] = {b: [] for b in BINS}
        self.star: dict[tuple[float, float], list[str]] = {b: [] for b in BINS}

    def add(self, z2: np.ndarray, snr: np.ndarray, sel: np.ndarray, tag: str) -> None:
        for b, idx in snr_bins(snr, sel, BINS).items():
            self.z2[b] += [float(z2[i]) for i in idx]
            self.star[b] += [f"{tag}:{i}" for i in idx]

    def extend(self, other: Bins) -> None:
        for b in BINS:
            self.z2[b] += other.z2[b]
            self.star[b] += other.star[b]

    @staticmethod
    def interval(z2: list[float], stars: list[str], draws: int = 1000,
                 seed: int = 1) -> tuple[float, float]:
        """The 16-84 % range of chi2/dof over bootstrap resamples of the stars."""
        names = sorted(set(stars))
        index = {s: i for i, s in enumerate(names)}
        sums = np.zeros(len(names))
        counts = np.zeros(len(names))
        np.add.at(sums, [index[s] for s in stars], z2)
        np.add.at(counts, [index[s] for s in stars], 1)
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(names), size=(draws, len(names)))
        chi = sums[pick].sum(axis=1) / np.maximum(counts[pick].sum(axis=1), 1)
        lo, hi = np.percentile(chi, [16, 84])
        return float(lo), float(hi)

    def line(self, label: str) -> str:
        allz = [x for v in self.z2.values() for x in v]
        out = f"    {label} n={len(allz):4d} chi2 {np.mean(allz) if allz else float('nan'):.2f}"
        for lo, hi in BINS:
            v, s = self.z2[(lo, hi)], self.star[(lo, hi)]
            if not v:
                out += f" | S/N {_bin_name(lo, hi)}: n=   0"
                continue
            a, b = self.interval(v, s)
            out += (f" | S/N {_bin_name(lo, hi)}: n={len(v):4d} ({len(set(s))} stars) chi2 "
                    f"{np.mean(v):.2f} [{a:.2f}-{b:.2f}]")
        return out


def _pairs(frames: list[Frame], positions: list[np.ndarray], cfg: Config,
           airmass: float | None = None, verbose: bool = False,
           isolated: np.ndarray | None = None, tag: str = "",
           quiet: bool = False, honest: bool = False) -> tuple[list[float], Bins, Bins]:
    """chi2/dof per pair (stars of S/N > 10) and the star-pairs per S/N bin (S/N > 5),
    printed unless ``quiet``; a star's S/N is its mean over the subs (:func:`star_snr`);
    with ``isolated``, a second set of the stars it marks. ``tag`` names the field, so that
    stars of several fields stay apart; ``honest``: also what honest errors would read on the
    same stars (:func:`honest_line`)."""
    ms = []
    for fr, pos in zip(frames, positions, strict=True):
        am = airmass if airmass is not None else times(
            fr, fr.ra_deg, fr.dec_deg)[2]  # type: ignore[arg-type]
        ms.append(measure_stars(fr, pos, cfg, airmass=am))
    out = []
    bins, bins_i = Bins(), Bins()
    snr = star_snr([m.snr for m in ms])  # the star's, over all subs: not the pair's difference
    oks = []
    for a, b in itertools.pairwise(ms):
        ok = ~(a.saturated | b.saturated | a.edge | b.edge) & (snr > 10)
        chi, n = pair_chi2(a.mag[ok], a.mag_err[ok], b.mag[ok], b.mag_err[ok])
        out.append(chi)
        if verbose:
            print(f"    pair: n={n:3d} chi2/dof={chi:.2f}  FWHM {a.fwhm:.2f} px, "
                  f"r {a.radius:.2f} px, excess {a.excess_mag:.4f} mag")
        ok = (~(a.saturated | b.saturated | a.edge | b.edge) & (snr > 5)
              & np.isfinite(a.mag) & np.isfinite(b.mag))
        oks.append(ok)
        z2 = pair_z2(a.mag, a.mag_err, b.mag, b.mag_err, ok)
        bins.add(z2, snr, ok, tag)
        if isolated is not None:
            bins_i.add(z2, snr, ok & isolated, tag)
    if not quiet:
        print(bins.line("all"))
        if isolated is not None:
            print(bins_i.line("isolated"))
        if honest:
            print(honest_line(bins, honest_bin_chi2([m.mag_err for m in ms], oks, snr, BINS)))
    return out, bins, bins_i


def honest_line(bins: Bins, sims: dict[tuple[float, float], np.ndarray]) -> str:
    """Per bin, what honest errors read on the same stars (16-84 % of the draws), how often
    they read at least the measured value, and how often outside the target 0.8-1.25."""
    out = "    honest errors, these stars:"
    for lo, hi in BINS:
        v, got = sims[(lo, hi)], bins.z2[(lo, hi)]
        if not len(v) or not got:
            continue
        a, b = np.percentile(v, [16, 84])
        seen = float(np.mean(got))
        out += (f" | S/N {_bin_name(lo, hi)}: [{a:.2f}-{b:.2f}], P(>= {seen:.2f}) "
                f"{np.mean(v >= seen):.3f}, outside 0.8-1.25 {np.mean((v < 0.8) | (v > 1.25)):.2f}")
    return out


def real(shared: Path, cfg: Config, folder_name: str = "S50_1d3fe189_M94_2025-03-27",
         all_detections: bool = False) -> list[float]:
    folder = shared / "data" / "seestar-s50" / folder_name
    frames = [load_frame(p, cfg) for p in sorted(folder.glob("*.fit"))]
    if all_detections:  # every unblended detection, as bench/errors_real.py
        det = [field_stars(fr.plane, min_area=2) for fr in frames]
        keep = [~d.blended for d in det]
    else:
        det = [field_stars(fr.plane) for fr in frames]
        keep = [d.starlike for d in det]
    ref, ref_flux = det[0].xy[keep[0]], det[0].flux[keep[0]]
    positions = [ref] + [register(ref, ref_flux, d.xy[k], d.flux[k])
                         for d, k in zip(det[1:], keep[1:], strict=True)]
    out = _pairs(frames, positions, cfg, honest=True)[0]
    blank_sky(frames, positions, cfg)
    return out


def blank_sky(frames: list[Frame], positions: list[np.ndarray], cfg: Config, n: int = 800,
              seed: int = 1) -> None:
    """The error model's sky part on real subs: ``n`` apertures on blank sky (> 15 px from
    every detection, min area 2), at the same sky positions in every sub (the stars' median
    shift), measured by ``measure_stars`` as a star that is not re-centred, at the sub's own
    FWHM, with the stars masked in the annuli. Honest sky errors: flux / error has a standard
    deviation of 1 in each sub, and consecutive subs' differences a chi2/dof of 1."""
    from scipy.spatial import cKDTree

    ny, nx = frames[0].plane.shape
    rng = np.random.default_rng(seed)
    cand = np.column_stack([rng.uniform(20, nx - 20, 8 * n), rng.uniform(20, ny - 20, 8 * n)])
    found = field_stars(frames[0].plane, min_area=2)
    dist, _ = cKDTree(found.xy).query(cand)
    blank = cand[dist > 15][:n]
    ms = []
    for fr, pos in zip(frames, positions, strict=True):
        shift = np.median(pos - positions[0], axis=0)
        fwhm = measure_stars(fr, pos, cfg).fwhm
        ms.append(measure_stars(fr, blank + shift, cfg, recentre=False, neighbours=pos,
                                fwhm=fwhm))
    std = [float(np.std(m.flux / m.flux_err)) for m in ms]
    chi2 = [float(np.mean(((b.flux - a.flux) / np.hypot(a.flux_err, b.flux_err)) ** 2))
            for a, b in itertools.pairwise(ms)]
    print(f"    blank sky, {len(blank)} apertures: flux/error std per sub "
          f"{' '.join(f'{v:.2f}' for v in std)}; consecutive chi2/dof "
          f"{' '.join(f'{v:.2f}' for v in chi2)}")


def sharp_core(cfg: Config, n_subs: int, tmp: Path) -> list[float]:
    """Older-firmware-like subs: a sharp core on the CFA, pedestal, random phases."""
    frames, truths = [], []
    for k in range(n_subs):
        hdul, truth = synthetic.make_sub(seed=100 + k, **synthetic.SHARP_CORE_SUB,
                                         extra_stars=1500, core_fraction=0.6, zeropoint=21.0)
        path = synthetic.write_frame(tmp / f"core{k}.fit", hdul)
        frames.append(load_frame(path, cfg))
        truths.append(truth)
    return _pairs(frames, synthetic.common_positions(truths), cfg, airmass=1.2,
                  isolated=truths[0].isolated(synthetic.common_labels(truths)))[0]


def undersampled(cfg: Config, n_subs: int, tmp: Path, fields: int = 4) -> list[float]:
    """Moffat stars of FWHM 1.2, 1.4 and 1.6 green-plane px, random phases, 1 % PRNU; each
    FWHM on ``fields`` star fields of ``n_subs`` subs (one field's handful of bright stars
    makes the S/N > 50 bin: a single field's chi2/dof there is a property of those stars)."""
    out = []
    pooled = Bins()
    for fwhm_px in (1.2, 1.4, 1.6):
        per_fwhm = Bins()
        print(f"  FWHM {fwhm_px} px:")
        for f in range(fields):
            frames, truths = [], []
            for k in range(n_subs):
                hdul, truth = synthetic.make_sub(
                    seed=100 + k + 1000 * f,
                    fwhm_arcsec=fwhm_px * 2 * synthetic.S50_SCALE_ARCSEC,
                    pointing_offset_arcmin=(6.0, 2.0), rotation_deg=30.0, dither_px=3.0,
                    extra_stars=120, prnu=0.01, field_seed=7 + f, psf="moffat",
                    moffat_beta=2.5)
                path = synthetic.write_frame(tmp / f"u{fwhm_px}_{f}_{k}.fit", hdul)
                frames.append(load_frame(path, cfg))
                truths.append(truth)
            chi, bins, _ = _pairs(frames, synthetic.common_positions(truths), cfg,
                                  verbose=f == 0, tag=f"{fwhm_px}/{f}", quiet=True)
            out += chi
            per_fwhm.extend(bins)
        print(per_fwhm.line(f"{fields} fields"))
        pooled.extend(per_fwhm)
    print(pooled.line("the set"))
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


def _run(cfg_map: dict[str, Any], args: argparse.Namespace, tmp: Path, label: str) -> None:
    cfg = Config(cfg_map)
    print(f"== {label}")
    if not args.skip_real and args.shared.is_dir():
        print("M 94 real subs (newer firmware, EQ; consecutive pairs):")
        r = real(args.shared, cfg)
        print(f"  mean chi2/dof {np.mean(r):.2f}")
        if (args.shared / "data" / "seestar-s50" / "S50_NGC7023_2024-07-30_altaz").is_dir():
            print("NGC 7023 real pair (older firmware, alt-az):")
            real(args.shared, cfg, "S50_NGC7023_2024-07-30_altaz", all_detections=True)
    print("sharp-core synthetic subs (older-firmware-like, consecutive pairs):")
    sharp_core(cfg, args.subs, tmp)
    if not args.before_after:
        print("undersampled synthetic subs (consecutive pairs):")
        u = undersampled(cfg, args.subs, tmp, args.fields)
        print(f"  mean chi2/dof {np.mean(u):.2f} (range {min(u):.2f}-{max(u):.2f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent
                    / "shared")
    ap.add_argument("--subs", type=int, default=6)
    ap.add_argument("--fields", type=int, default=4,
                    help="star fields per FWHM in the undersampled set")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--legacy", action="store_true", help="the 0.1.0 error model")
    ap.add_argument("--before-after", action="store_true",
                    help="the 0.2.0 model (no CFA correction), then this version's")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        base: dict[str, Any] = {"data_dir": str(tmp / "data")}
        if args.before_after:
            _run({**base, "photometry": {"cfa_correction": False}}, args, tmp,
                 "before: 0.2.0 model (no CFA correction)")
            _run(base, args, tmp, "after: CFA correction, its uncertainty in every error")
            return 0
        if args.legacy:
            base["photometry"] = {"excess_noise": False, "aperture_min_px": 0.0,
                                  "illumination": "constant", "cfa_correction": False}
        _run(base, args, tmp, "legacy (0.1.0) model" if args.legacy else "this version")
        print("20 % corner vignetting, target error:")
        v = vignetting(base, tmp)
        print(f"  max |error| {max(abs(x) for x in v):.4f} mag")
    return 0


if __name__ == "__main__":
    sys.exit(main())
