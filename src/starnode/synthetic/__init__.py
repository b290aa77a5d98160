"""Realistic synthetic Seestar frames with a known truth (tests, benchmarks, the demo).

The stars are the real comparison stars of an AAVSO VSP chart (default: the bundled SS Cyg chart
X41941HP, :data:`DEMO_SEQUENCE_FILE`) at their catalogue positions and V magnitudes, plus the
variable itself at a magnitude you choose, plus optional faint random field stars.

API
---
``make_sub(sequence=DEMO_SEQUENCE_FILE, *, target_mag=11.5, seed=0, **options) -> (HDUList, Truth)``
    A raw Seestar S50 sub: one 2-D uint16 HDU (BITPIX 16, BZERO 32768), 1920 rows x 1080 columns,
    Bayer GRBG (numpy: green at [0,0] and [1,1]), the header cards of a real S50 sub (DATE-OBS,
    EXPTIME, RA/DEC of the *requested target*, SITELAT/SITELONG, BAYERPAT, GAIN=80 ...) and **no
    WCS**. The frame centre is 5-9' from the target (pointing offset), the field is rotated and
    mirrored (CD determinant > 0), stars have a Gaussian or Moffat PSF, Poisson and read noise
    at ``gain`` e-/ADU, a sky, dark-subtraction clipping at 0 (about 6 % of dark-sky pixels are
    0 with the defaults) and saturation at ``full_scale``.
``make_stack(sequence=DEMO_SEQUENCE_FILE, *, stackcnt=20, ...) -> (HDUList, Truth)``
    A native RGB stack: (3, ny, nx) uint16 in R, G, B order (mean of ``stackcnt`` subs,
    bilinear-debayered, so neighbouring pixels are correlated as in real stacks), STACKCNT,
    TOTALEXP, BAYERPAT still present, and an on-board TAN WCS about 1' off the truth
    (``wcs_error_arcmin``), as the scope writes it. DATE-OBS is the start of the first sub.
``make_mono(sequence=DEMO_SEQUENCE_FILE, *, filter_name="V", ...) -> (HDUList, Truth)``
    A 2-D mono frame (no BAYERPAT) with a FILTER card and, by default, a correct TAN WCS.
``write_frame(path, hdul) -> Path``
    Write the frame (atomically: a temporary file in the same folder, then rename).

Options shared by all three (keyword only): ``exptime`` (s, per sub), ``date_obs`` (UTC ISO
string, exposure start), ``site`` ((lat, lon) degrees east-positive, or None for no SITELAT/
SITELONG), ``fwhm_arcsec``, ``psf`` ("gaussian" | "moffat"), ``moffat_beta``,
``pointing_offset_arcmin`` ((east, north) offset of the frame centre from the target; default a
seeded random 5-9'), ``rotation_deg`` (default seeded random), ``mirrored`` (True: det CD > 0),
``sky_adu`` (mean sky per raw pixel), ``gain`` (e-/ADU), ``read_noise_e``, ``zeropoint``
(green magnitude giving 1 e-/s in total), ``colour_term`` (m_G = V + colour_term * ((B-V) - 0.6)),
``extra_stars`` (number of random field stars, V 13-16.5), ``zero_clip`` (True: dark-subtracted
data clipped at 0 like the newer firmware; False: a bias pedestal is kept, as older firmware
does), ``pedestal_adu`` (default 0 with ``zero_clip``, else 1000), ``full_scale`` (ADU),
``shape`` ((rows, cols) of the sensor),
``bayer`` (pattern), ``imagetyp``, ``object_name`` (OBJECT card; default the chart's star),
``header_extra`` (dict of cards added/overriding; a value None removes the card), ``noise``
(False: the noise-free expectation, rounded), ``mag_overrides`` ({label or AUID: V}),
``target_bv`` (B-V of the variable), ``scale_arcsec`` (per native pixel, default 2.374),
``scintillation`` (multiple of Young's 1967 scintillation noise applied to each star's flux,
default 1.5 like the photometry's default; 0 = none), ``aperture_mm`` (50), ``airmass``
(for the scintillation; default from the site, time and target), ``dither_px`` (the frame
centre moves by a seeded random offset of up to this many native px: random sub-pixel phases
for consecutive subs), ``vignetting`` (fraction of the light lost in the corners, radial
quadratic fall-off, sky and stars alike: a raw, un-flat-fielded sub), ``prnu`` (relative rms of
a fixed pixel-response pattern, one per ``sensor_seed``: flat-field errors), ``field_seed``
(the ``extra_stars`` drawn from this seed around the target: the same field in every sub),
``core_fraction`` (share of each star's light in a sharp Gaussian seeing core of
``core_fwhm_px`` native px on top of the PSF: the older-firmware alt-az subs put ~30 % of a
star's light in one native pixel, so the green sites' share of it depends on which CFA site the
core falls on), ``jitter_px`` (per-star random image motion, native px rms, drawn per sub).

Undersampled subs (FWHM 1.2-1.6 green-plane px, as the older firmware's alt-az subs) are
``fwhm_arcsec`` of 2.4-3.2 native px, i.e. ``fwhm_arcsec=1.4 * 2 * S50_SCALE_ARCSEC``.

:class:`Truth` carries the true native WCS (``wcs``, 0-based pixels of the full array), the WCS of
the measured plane (``plane_wcs``: green 2x2 superpixels for a sub, the G plane of a stack, the
frame for mono), the binning, the target's true magnitude and position, and one
:class:`TrueStar` per rendered star (native and plane pixel positions, V, B-V, the green
instrumental flux in measured-plane ADU, the noise-free peak ADU over all CFA sites and whether
it saturates).

Everything is deterministic for a given ``seed``; a sub takes about 0.15-0.25 s (the first call
of a process ~1 s more: astropy initialisation for the airmass).
"""

from __future__ import annotations

from .frames import SHARP_CORE_SUB, make_mono, make_stack, make_sub, write_frame
from .scene import DEMO_SEQUENCE_FILE, S50_GAIN_E_PER_ADU, S50_SCALE_ARCSEC
from .truth import TrueStar, Truth, common_labels, common_positions, plane_tan_wcs, tan_wcs

__all__ = [
    "DEMO_SEQUENCE_FILE",
    "S50_GAIN_E_PER_ADU",
    "S50_SCALE_ARCSEC",
    "SHARP_CORE_SUB",
    "TrueStar",
    "Truth",
    "common_labels",
    "common_positions",
    "make_mono",
    "make_stack",
    "make_sub",
    "plane_tan_wcs",
    "tan_wcs",
    "write_frame",
]
