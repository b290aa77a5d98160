"""Why do older-firmware alt-az subs scatter more than their errors? Evidence on the real pair.

    .venv/bin/python bench/errors_real.py [--shared ../shared] [--plot docs/img/cfa_sampling.png]

On the two consecutive NGC 7023 subs in ``shared/data/seestar-s50/S50_NGC7023_2024-07-30_altaz``
(PROGRAM 2.76, alt-az, FWHM ~1.4 green-plane px) every star sep detects in the first sub is
mapped into the second (registration) and measured in both with the pipeline's own
``measure_stars``. Per star: d = m2 - m1 with the weighted mean (the zero-point change) removed
and z = d / sqrt(e1^2 + e2^2). The tables give chi2/dof = mean(z^2) per S/N bin and against each
candidate cause: S/N, distance from the frame centre, elongation, CFA phase, aperture radius,
clipped / hot pixels in the aperture, the light of all four CFA sites against the green sites.
Then the same with the CFA correction (docs/photometry.md, "Why older-firmware alt-az subs
scatter"), and a scan of its KAPPA.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from photutils.aperture import CircularAperture, aperture_photometry

from starnode.config import Config
from starnode.frame.detect import field_stars
from starnode.frame.load import Frame, load_frame
from starnode.photometry import cfa as cfa_mod
from starnode.photometry import measure_stars, times
from starnode.photometry.apertures import StarMeasurement
from starnode.photometry.noise import star_snr
from starnode.photometry.register import register

PAIR = "S50_NGC7023_2024-07-30_altaz"
BINS = ((0.0, 20.0), (20.0, 50.0), (50.0, np.inf))


@dataclass
class Pair:
    a: StarMeasurement
    b: StarMeasurement
    ok: np.ndarray
    d: np.ndarray  # zero-point change removed
    var: np.ndarray
    snr: np.ndarray

    @property
    def z2(self) -> np.ndarray:
        return self.d**2 / self.var


def _load(shared: Path) -> tuple[list[Frame], np.ndarray, np.ndarray, list[float | None]]:
    folder = shared / "data" / "seestar-s50" / PAIR
    files = sorted(folder.glob("*.fit"))
    if len(files) != 2:
        raise SystemExit(f"{folder}: expected the two NGC 7023 subs")
    cfg = Config({"data_dir": "/nonexistent"})
    frames = [load_frame(p, cfg) for p in files]
    det = [field_stars(fr.plane, min_area=2) for fr in frames]
    sel = ~det[0].blended
    ref = det[0].xy[sel]
    pos2 = register(ref, det[0].flux[sel], det[1].xy, det[1].flux)
    airmass = [times(fr, fr.ra_deg, fr.dec_deg)[2] for fr in frames]  # type: ignore[arg-type]
    return frames, ref, pos2, airmass


def measure_pair(frames: list[Frame], pos: list[np.ndarray], airmass: list[float | None],
                 photometry: dict[str, Any], recentre: bool = True) -> Pair:
    cfg = Config({"data_dir": "/nonexistent", "photometry": photometry})
    a, b = (measure_stars(fr, p, cfg, airmass=am, recentre=recentre)
            for fr, p, am in zip(frames, pos, airmass, strict=True))
    snr = star_snr([a.snr, b.snr])  # the star's, not the fainter sub's (noise.star_snr)
    ok = (~(a.saturated | b.saturated | a.edge | b.edge) & (snr > 5)
          & np.isfinite(a.mag) & np.isfinite(b.mag))
    d = b.mag - a.mag
    var = a.mag_err**2 + b.mag_err**2
    w = 1.0 / var
    d = d - float(np.sum((w * d)[ok]) / np.sum(w[ok]))
    return Pair(a, b, ok, d, var, snr)


def bin_line(p: Pair, label: str) -> str:
    out = f"  {label:34s} all n={int(p.ok.sum()):3d} chi2 {np.mean(p.z2[p.ok]):.2f}"
    for lo, hi in BINS:
        m = p.ok & (p.snr >= lo) & (p.snr < hi)
        name = f"<{hi:.0f}" if lo == 0 else (f">{lo:.0f}" if hi == np.inf else f"{lo:.0f}-{hi:.0f}")
        if m.any():
            out += (f" | S/N {name}: n={int(m.sum()):2d} chi2 {np.mean(p.z2[m]):.2f} "
                    f"rms {np.std(p.d[m]):.3f} err {np.median(np.sqrt(p.var[m])):.3f}")
        else:
            out += f" | S/N {name}: n= 0"
    return out


def by(p: Pair, values: np.ndarray, edges: list[float], name: str, bright: bool = True) -> None:
    sel = p.ok & (p.snr >= 20) if bright else p.ok
    line = f"  {name:28s}"
    for lo, hi in itertools.pairwise(edges):
        m = sel & (values >= lo) & (values < hi)
        line += (f" [{lo:g},{hi:g}): n={int(m.sum()):2d} chi2 {np.mean(p.z2[m]):.2f}" if m.any()
                 else f" [{lo:g},{hi:g}): n= 0")
    print(line)


def _site_sums(frame: Frame, pos: np.ndarray, radius_native: float = 5.0) -> dict[str, Any]:
    """Sky-subtracted sums of each CFA site class in a native-pixel aperture."""
    raw = np.asarray(frame.raw, dtype=float)
    xy = np.column_stack([2 * pos[:, 0] + 0.5, 2 * pos[:, 1] + 0.5])
    out = {}
    for name, (r0, c0) in {"G1": (0, 0), "G2": (1, 1), "R": (0, 1), "B": (1, 0)}.items():
        mask = np.zeros_like(raw)
        mask[r0::2, c0::2] = 1.0
        ap = CircularAperture(xy, radius_native)
        s = np.asarray(aperture_photometry(raw * mask, ap, method="exact")["aperture_sum"])
        area = np.asarray(aperture_photometry(mask, ap, method="exact")["aperture_sum"])
        out[name] = s - area * float(np.median(raw[r0::4, c0::4]))
    return out


def candidates(frames: list[Frame], pos: list[np.ndarray], p: Pair) -> None:
    a, b = p.a, p.b
    ny, nx = frames[0].plane.shape
    rho = np.hypot(a.x - (nx - 1) / 2, a.y - (ny - 1) / 2) / np.hypot(nx / 2, ny / 2)
    print("\nchi2/dof of the 0.2.0 model against each candidate (S/N >= 20 unless said):")
    by(p, p.snr, [5, 10, 20, 30, 40, 60], "S/N (all stars)", bright=False)
    by(p, rho, [0, 0.3, 0.5, 0.7, 1.01], "distance from centre rho")
    import sep  # elongation and angle from sep's second moments
    from scipy.spatial import cKDTree

    data = np.ascontiguousarray(frames[0].plane, dtype=np.float32)
    bkg = sep.Background(data, bw=32, bh=32)
    objs = sep.extract(data - bkg.back(), 3.0, err=bkg.globalrms, minarea=2)
    _, j = cKDTree(np.column_stack([objs["x"], objs["y"]])).query(np.column_stack([a.x, a.y]))
    elong = objs["b"][j] / objs["a"][j]
    angle = np.degrees(objs["theta"][j]) % 180.0
    by(p, elong, [0, 0.75, 0.85, 0.92, 1.01], "roundness b/a")
    by(p, angle, [0, 45, 90, 135, 180], "major-axis angle (deg)")
    cx_a, cy_a = cfa_mod.phases(cfa_mod.native_centroids(frames[0].raw, pos[0]))
    cx_b, cy_b = cfa_mod.phases(cfa_mod.native_centroids(frames[1].raw, pos[1]))
    dphase = np.abs(cx_b * cy_b - cx_a * cy_a)
    by(p, dphase, [0, 0.2, 0.5, 1.0, 2.01], "|change of cx cy| (CFA phase)")
    zeros = np.array([_count(frames[0], x, y, a.radius) for x, y in zip(a.x, a.y, strict=True)])
    by(p, zeros, [0, 1, 100], "clipped (0) pixels in aperture")
    hot = _hot(frames, a, b)
    by(p, hot, [0, 1, 100], "hot pixels in aperture")
    br = p.ok & (p.snr >= 20)
    print(f"  correlation of d with -(change of cx cy): "
          f"{np.corrcoef(p.d[br], -(cx_b * cy_b - cx_a * cy_a)[br])[0, 1]:+.2f} "
          f"(S/N >= 20, n={int(br.sum())})")
    sa, sb = _site_sums(frames[0], pos[0]), _site_sums(frames[1], pos[1])

    def rms(key: tuple[str, ...]) -> float:
        fa = sum(sa[k] for k in key)
        fb = sum(sb[k] for k in key)
        d = -2.5 * np.log10(fb / fa)
        return float(np.std(d[br] - np.median(d[br])))

    print(f"  rms of d for S/N >= 20 in a 5 native-px aperture: green sites {rms(('G1', 'G2')):.3f}"
          f", all four sites {rms(('G1', 'G2', 'R', 'B')):.3f}, red {rms(('R',)):.3f} mag")


def _count(frame: Frame, x: float, y: float, r: float) -> int:
    assert frame.green is not None
    n = 0
    for site in frame.green:
        cut = site[max(int(y - r), 0):int(y + r) + 2, max(int(x - r), 0):int(x + r) + 2]
        n += int(np.sum(cut == 0))
    return n


def _hot(frames: list[Frame], a: StarMeasurement, b: StarMeasurement) -> np.ndarray:
    """Pixels in the aperture but more than 1.5 px from the star's centre that stand > 8 sigma
    above their 3x3 median in either sub (a single-pixel spike that is not the star's core:
    fixed hot pixels or hits)."""
    from scipy.ndimage import median_filter

    out = np.zeros(len(a.x), dtype=int)
    for fr, m in zip(frames, (a, b), strict=True):
        plane = fr.plane
        med = median_filter(plane, size=3)
        sig = 1.4826 * float(np.median(np.abs(plane - np.median(plane))))
        spike = (plane - med) > 8 * sig
        for i, (x, y) in enumerate(zip(m.x, m.y, strict=True)):
            ny, nx = plane.shape
            ys = slice(max(int(y - m.radius), 0), min(int(y + m.radius) + 2, ny))
            xs = slice(max(int(x - m.radius), 0), min(int(x + m.radius) + 2, nx))
            yy, xx = np.mgrid[ys, xs]
            ring = ((xx - x) ** 2 + (yy - y) ** 2 > 1.5**2) & (
                (xx - x) ** 2 + (yy - y) ** 2 <= m.radius**2)
            out[i] += int(np.sum(spike[ys, xs] & ring))
    return out


def plot(p_before: Pair, p_after: Pair, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for axis, p, title in ((ax[0], p_before, "0.2.0 (green sum as measured)"),
                           (ax[1], p_after, "CFA-corrected")):
        axis.scatter(p.snr[p.ok], (p.d / np.sqrt(p.var))[p.ok], s=9, color="k")
        axis.axhline(0, color="0.6", lw=0.8)
        for k in (-2, 2):
            axis.axhline(k, color="0.6", lw=0.8, ls="--")
        axis.set_xscale("log")
        axis.set_xlabel("S/N (fainter of the two subs)")
        axis.set_title(title, fontsize=10)
    ax[0].set_ylabel("(m2 - m1 - <d>) / error")
    fig.suptitle("NGC 7023, two consecutive older-firmware alt-az 10 s subs", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent
                    / "shared")
    ap.add_argument("--plot", type=Path, default=None, help="write the residual plot (PNG)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")
    if not (args.shared / "data" / "seestar-s50" / PAIR).is_dir():
        print(f"{args.shared}: the shared NGC 7023 pair is not there; nothing to do")
        return 0
    frames, ref, pos2, airmass = _load(args.shared)
    pos = [ref, pos2]
    print(f"NGC 7023 pair ({PAIR}), airmass {airmass[0]:.3f}; "
          f"chi2/dof = mean z^2 per S/N bin:")
    before = measure_pair(frames, pos, airmass, {"cfa_correction": False})
    print(bin_line(before, "0.2.0 model (no CFA correction)"))
    ccd = measure_pair(frames, pos, airmass, {"cfa_correction": False, "excess_noise": False})
    print(bin_line(ccd, "CCD equation + scintillation only"))
    for r in (3.0, 4.0, 5.0):
        big = measure_pair(frames, pos, airmass, {"cfa_correction": False,
                                                  "excess_noise": False,
                                                  "aperture_radius_px": r})
        print(bin_line(big, f"  aperture radius {r:.1f} px"))
    candidates(frames, pos, before)
    after = measure_pair(frames, pos, airmass, {})
    print("\nwith the CFA correction (this version):")
    print(bin_line(after, "corrected, CFA model in the errors"))
    for fr, m in zip(frames, (after.a, after.b), strict=True):
        c = m.cfa
        print(f"  {fr.path.name}: FWHM {m.fwhm:.2f} px, T1 {c.t1 if c else float('nan'):.3f}, "
              f"sampling left {c.sampling_mag if c else 0:.4f} mag, uncorrected "
              f"{c.uncorrected_mag if c else 0:.4f} mag, frame excess {m.excess_mag:.4f} mag")
    print("\nKAPPA scan (T2 = KAPPA T1^2), errors without any added term:")
    keep = cfa_mod.KAPPA
    try:
        for k in (0.0, 1.0, 1.5, 2.0, 2.5, 3.0):
            cfa_mod.KAPPA = k
            p = measure_pair(frames, pos, airmass, {"excess_noise": False})
            print(bin_line(p, f"KAPPA {k:.1f}"))
    finally:
        cfa_mod.KAPPA = keep
    if args.plot:
        plot(before, after, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
