"""One profile per telescope model: the camera's and the optics' numbers, and the limits a
planner needs.

The S50 numbers are the ones starnode already uses and measured on real subs
(``../shared/seestar``, ``docs/photometry.md``): 2.374"/px (plate solutions of real frames),
0.065 e-/ADU at GAIN 80 (photon transfer), read noise 1.5 e-, saturation 60000 ADU, raw GRBG,
1080 x 1920 portrait subs. Numbers marked ``unverified`` in :attr:`Instrument.notes` come from the
manufacturer's specifications or are carried over from the S50 and should be calibrated (the
planner calibrates its S/N model from starnode's own measurements where the store has them).

The photometric model is the one of :mod:`starnode.synthetic`: a star of magnitude ``m`` gives
``10**(-0.4 (m - zeropoint_e))`` electrons per second, ``green_fraction`` of which land on the
green pixels starnode measures; its peak pixel holds the fraction of a Gaussian of FWHM
``typical_fwhm_arcsec``. With the S50's numbers a star of 8.5 mag peaks at the saturation level
in 10 s, as observers report (``../shared/telescope`` section 3.3).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["MODELS", "PROFILES", "Instrument", "model_from_header", "profile"]

#: Gaussian FWHM / sigma.
_FWHM_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Instrument:
    """A telescope model: sensor, optics, exposure options and planning limits."""

    model: str  # s50 | s30 | s30pro | generic
    name: str  # as a member says it ("Seestar S50")
    sensor: str  # the sensor chip
    width_px: int  # raw frame, columns (NAXIS1)
    height_px: int  # raw frame, rows (NAXIS2)
    pixel_um: float
    focal_length_mm: float
    aperture_mm: float
    pixel_scale_arcsec: float  # per native pixel, as measured (or computed when unverified)
    bayer_pattern: str | None  # GRBG, RGGB, ... (None: mono)
    gain_setting: int  # the GAIN card (a setting, not e-/ADU)
    gain_e_per_adu: float  # electrons per ADU of the 16-bit file
    read_noise_e: float
    full_well_e: float
    saturation_adu: float  # a peak at or above this is saturated / non-linear
    linearity_limit_adu: float  # the highest peak still linear to ~1 %
    exposures_s: tuple[float, ...]  # the telescope's own exposure choices
    expert_exposures_s: tuple[float, ...] = ()  # only in expert mode / through Alpaca
    max_altaz_exposure_s: float = 20.0  # field rotation in alt-az mode
    min_altitude_deg: float = 30.0  # planner floor suggested for this model
    max_altitude_deg: float = 80.0  # alt-az tracking degenerates near the zenith
    zeropoint_e: float = 18.0  # magnitude giving 1 e-/s (green-plane model above)
    green_fraction: float = 0.5  # of a star's electrons on the measured (green) pixels
    typical_fwhm_arcsec: float = 9.0
    sky_e_per_s_px: float = 0.39  # dark-site sky per native pixel
    frame_overhead_s: float = 2.0  # download and save between frames
    setup_s: float = 60.0  # slew, settle and pointing check at the start of an item
    file_prefix: str = "Light_"  # sub names: Light_<Target>_<exp>s_<filter>_YYYYMMDD-HHMMSS.fit
    stack_prefix: str = "Stacked_"  # older firmware's stacks: Stacked_<N>_<Target>_<exp>s_...
    sub_filter: str = "IRCUT"  # the FILTER card and name part of a sub (not a photometric band)
    instrume: tuple[str, ...] = ()  # INSTRUME / TELESCOP values that identify the model
    instrume_card: str = ""  # the INSTRUME the telescope itself writes
    notes: tuple[str, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------ geometry
    @property
    def field_deg(self) -> tuple[float, float]:
        """Field of view (width, height) in degrees.

        Examples
        --------
        1080 x 1920 pixels of 2.374": 0.71 x 1.27 deg.

        >>> tuple(round(d, 3) for d in S50.field_deg)
        (0.712, 1.266)
        """
        return (self.width_px * self.pixel_scale_arcsec / 3600.0,
                self.height_px * self.pixel_scale_arcsec / 3600.0)

    @property
    def computed_scale_arcsec(self) -> float:
        """206.265 x pixel / focal length: the nominal scale from the optics."""
        return 206.264806 * self.pixel_um / self.focal_length_mm

    @property
    def focal_ratio(self) -> float:
        return self.focal_length_mm / self.aperture_mm

    # ------------------------------------------------------------------ photometry
    def electrons(self, mag: float, exposure_s: float) -> float:
        """Electrons of a star of ``mag`` in one exposure (all pixels, all colours).

        Examples
        --------
        ``zeropoint_e`` is the magnitude giving 1 electron per second; 5 mag brighter is 100
        times more:

        >>> S50.electrons(S50.zeropoint_e, 1.0), S50.electrons(S50.zeropoint_e - 5.0, 2.0)
        (1.0, 200.0)
        """
        return float(exposure_s) * 10.0 ** (-0.4 * (float(mag) - self.zeropoint_e))

    def _peak_fraction(self, fwhm_arcsec: float | None = None) -> float:
        sigma_px = (fwhm_arcsec or self.typical_fwhm_arcsec) / self.pixel_scale_arcsec \
            / _FWHM_SIGMA
        return min(1.0, 1.0 / (2.0 * math.pi * sigma_px ** 2))

    def peak_adu(self, mag: float, exposure_s: float, fwhm_arcsec: float | None = None) -> float:
        """The brightest pixel of a star of ``mag`` (ADU above the sky)."""
        return self.electrons(mag, exposure_s) * self._peak_fraction(fwhm_arcsec) \
            / self.gain_e_per_adu

    def saturation_mag(self, exposure_s: float, fwhm_arcsec: float | None = None) -> float:
        """The brightest magnitude whose peak stays below the linearity limit."""
        e_peak = self.linearity_limit_adu * self.gain_e_per_adu
        total = e_peak / self._peak_fraction(fwhm_arcsec)
        return self.zeropoint_e - 2.5 * math.log10(total / float(exposure_s))

    def saturates(self, mag: float, exposure_s: float) -> bool:
        return self.peak_adu(mag, exposure_s) >= self.linearity_limit_adu

    def snr(self, mag: float, exposure_s: float, *, sky_factor: float = 1.0,
            aperture_fwhm: float = 1.5) -> float:
        """S/N of one frame's green-plane aperture photometry (the CCD equation)."""
        s = self.electrons(mag, exposure_s) * self.green_fraction
        r_px = aperture_fwhm * self.typical_fwhm_arcsec / self.pixel_scale_arcsec
        n_pix = math.pi * r_px ** 2 * self.green_fraction
        noise2 = s + n_pix * (self.sky_e_per_s_px * sky_factor * exposure_s
                              + self.read_noise_e ** 2)
        return s / math.sqrt(noise2) if noise2 > 0 else 0.0

    def faint_limit(self, exposure_s: float, min_snr: float, *, snr_scale: float = 1.0) -> float:
        """The faintest magnitude reaching ``min_snr`` in one frame (``snr_scale`` multiplies
        the model's S/N: the calibration from measured frames)."""
        lo, hi = -5.0, 30.0
        for _ in range(60):  # bisection: snr falls monotonically with magnitude
            mid = 0.5 * (lo + hi)
            if self.snr(mid, exposure_s) * snr_scale >= min_snr:
                lo = mid
            else:
                hi = mid
        return lo

    def allowed_exposures(self, *, altaz: bool = True, expert: bool = True) -> tuple[float, ...]:
        """Exposure choices, shortest first (alt-az: capped by field rotation).

        Examples
        --------
        >>> S50.allowed_exposures(), S50.allowed_exposures(expert=False)
        ((2.0, 5.0, 10.0, 20.0), (10.0, 20.0))
        """
        opts = set(self.exposures_s) | (set(self.expert_exposures_s) if expert else set())
        if altaz:
            opts = {e for e in opts if e <= self.max_altaz_exposure_s}
        return tuple(sorted(opts))

    def light_name(self, target: str, exposure_s: float, filter_name: str, stamp: str) -> str:
        """The Seestar's sub name: ``Light_<Target>_<exp>s_<filter>_YYYYMMDD-HHMMSS.fit``, the
        exposure with one decimal as on real subs (``Light_M 94_10.0s_IRCUT_20250326-212046.fit``).

        Examples
        --------
        >>> S50.light_name("SS Cyg", 10, "IRCUT", "20250501-001741")
        'Light_SS Cyg_10.0s_IRCUT_20250501-001741.fit'
        """
        return f"{self.file_prefix}{target}_{exposure_s:.1f}s_{filter_name}_{stamp}.fit"

    def target_in_name(self, name: str) -> str | None:
        """The target a sub's or an older firmware's stack's file name carries
        (``Light_<Target>_10.0s_...``, ``Stacked_<N>_<Target>_10.0s_...``), or None.

        Examples
        --------
        >>> S50.target_in_name("Light_SS Cyg_10.0s_IRCUT_20250501-001741.fit")
        'SS Cyg'
        >>> S50.target_in_name("Stacked_30_M 94_10.0s_IRCUT_20250326-212046.fit")
        'M 94'
        >>> S50.target_in_name("notes.txt") is None
        True
        """
        m = re.match(rf"^(?:{re.escape(self.file_prefix.rstrip('_'))}|"
                     rf"{re.escape(self.stack_prefix)}\d+)_(.+?)_\d+(?:\.\d+)?s_", name,
                     re.IGNORECASE)
        return m.group(1) if m else None

    def header_cards(self) -> dict[str, tuple[Any, str]]:
        """The model's fixed FITS cards, as the Seestar writes them on its subs (a driver that
        captures frames itself adds OBJECT, DATE-OBS, EXPTIME, RA/DEC, site and TELESCOP)."""
        cards: dict[str, tuple[Any, str]] = {
            "INSTRUME": (self.instrume_card or self.name, "Camera model"),
            "FOCALLEN": (self.focal_length_mm, "Focal length of telescope in mm"),
            "XPIXSZ": (self.pixel_um, "pixel size in microns (with binning)"),
            "YPIXSZ": (self.pixel_um, "pixel size in microns (with binning)"),
            "XBINNING": (1, "Camera X Bin"),
            "YBINNING": (1, "Camera Y Bin"),
            "GAIN": (self.gain_setting, "Gain Value"),
            "IMAGETYP": ("Light", "Type of image"),
        }
        if self.bayer_pattern:
            cards["BAYERPAT"] = (self.bayer_pattern, "Bayer pattern")
        return cards

    def to_dict(self) -> dict[str, Any]:
        w, h = self.field_deg
        return {"model": self.model, "name": self.name, "sensor": self.sensor,
                "width_px": self.width_px, "height_px": self.height_px,
                "pixel_um": self.pixel_um, "focal_length_mm": self.focal_length_mm,
                "aperture_mm": self.aperture_mm, "pixel_scale_arcsec": self.pixel_scale_arcsec,
                "field_deg": [round(w, 3), round(h, 3)], "bayer_pattern": self.bayer_pattern,
                "gain_setting": self.gain_setting, "gain_e_per_adu": self.gain_e_per_adu,
                "read_noise_e": self.read_noise_e, "full_well_e": self.full_well_e,
                "saturation_adu": self.saturation_adu,
                "linearity_limit_adu": self.linearity_limit_adu,
                "exposures_s": list(self.exposures_s),
                "expert_exposures_s": list(self.expert_exposures_s),
                "max_altaz_exposure_s": self.max_altaz_exposure_s,
                "min_altitude_deg": self.min_altitude_deg,
                "max_altitude_deg": self.max_altitude_deg, "notes": list(self.notes)}


_SEESTAR_EXPOSURES = (10.0, 20.0, 30.0, 60.0)
_SEESTAR_EXPERT = (2.0, 5.0)

S50 = Instrument(
    model="s50", name="Seestar S50", sensor="Sony IMX462", width_px=1080, height_px=1920,
    pixel_um=2.9, focal_length_mm=250.0, aperture_mm=50.0, pixel_scale_arcsec=2.374,
    bayer_pattern="GRBG", gain_setting=80, gain_e_per_adu=0.065, read_noise_e=1.5,
    full_well_e=65535 * 0.065, saturation_adu=65535.0, linearity_limit_adu=60000.0,
    exposures_s=_SEESTAR_EXPOSURES, expert_exposures_s=_SEESTAR_EXPERT,
    instrume=("seestar s50", "s50"), instrume_card="Seestar S50",
    notes=("scale 2.374\"/px from plate solutions of real subs (nominal 2.39)",
           "gain 0.065 e-/ADU at GAIN 80 from photon transfer of real subs",
           "saturation ~8.5 mag in 10 s (observers' reports; the model agrees)",
           "subs are 1080 x 1920 portrait, raw GRBG, BZERO 32768"),
)

S30 = replace(
    S50, model="s30", name="Seestar S30", sensor="Sony IMX662", focal_length_mm=150.0,
    aperture_mm=30.0, pixel_scale_arcsec=round(206.264806 * 2.9 / 150.0, 3),
    zeropoint_e=18.0 + 5.0 * math.log10(30.0 / 50.0), instrume=("seestar s30", "s30", "imx662"),
    instrume_card="Seestar S30",
    notes=("scale computed from 2.9 um / 150 mm (unverified on real subs)",
           "gain, read noise, Bayer pattern and sky carried over from the S50 (unverified)",
           "zero point scaled from the S50 by aperture area"),
)

S30PRO = replace(
    S30, model="s30pro", name="Seestar S30 Pro", sensor="Sony IMX585", width_px=2160,
    height_px=3840, focal_length_mm=160.0,
    pixel_scale_arcsec=round(206.264806 * 2.9 / 160.0, 3),
    instrume=("seestar s30 pro", "s30 pro", "s30pro", "imx585"), instrume_card="imx585",
    notes=("2160 x 3840 (1080 x 1920 binned); scale from 2.9 um / 160 mm (unverified)",
           "gain, read noise, Bayer pattern and sky carried over from the S50 (unverified; "
           "telescope.settings said RGGB, the IMX585's native pattern, before it read this "
           "profile: check BAYERPAT on a real S30 Pro sub)",
           "zero point scaled from the S50 by aperture area"),
)

GENERIC = replace(
    S50, model="generic", name="camera", sensor="unknown", exposures_s=(5.0, 10.0, 20.0, 30.0,
                                                                        60.0, 120.0),
    expert_exposures_s=(1.0, 2.0), max_altaz_exposure_s=60.0, instrume=(), instrume_card="",
    notes=("a generic one-shot-colour camera with the S50's numbers: set camera.* in the "
           "config for yours",),
)

#: Every profile by model name.
PROFILES: dict[str, Instrument] = {p.model: p for p in (S50, S30, S30PRO, GENERIC)}
MODELS: tuple[str, ...] = tuple(PROFILES)


def model_from_header(header: Mapping[str, Any] | None) -> str | None:
    """The model a frame's INSTRUME / TELESCOP cards name (``Seestar S50``, ``S30 Pro_<serial>``,
    ``imx585``), or None when they name none.

    Examples
    --------
    >>> model_from_header({"INSTRUME": "Seestar S50"})
    's50'
    >>> model_from_header({"TELESCOP": "S30 Pro_1234"})  # longest name first: not the S30
    's30pro'
    >>> model_from_header({"INSTRUME": "QHY268M"}) is None
    True
    """
    if not header:
        return None
    text = " ".join(str(header.get(k) or "") for k in ("INSTRUME", "TELESCOP")).lower()
    text = text.replace("_", " ")
    # longest identifiers first: "s30 pro" before "s30"
    pairs = sorted(((ident, p.model) for p in PROFILES.values() for ident in p.instrume),
                   key=lambda x: -len(x[0]))
    for ident, model in pairs:
        if ident in text:
            return model
    return None


def profile(model: str | None = None, *, header: Mapping[str, Any] | None = None) -> Instrument:
    """The profile of ``model`` (config ``telescope.model``); without one, the model a frame's
    header names; else the S50.

    Raises
    ------
    KeyError
        An unknown model name (the message lists the known ones).

    Examples
    --------
    >>> s50 = profile("Seestar S50")
    >>> s50.name, s50.aperture_mm, s50.focal_length_mm, s50.pixel_scale_arcsec
    ('Seestar S50', 50.0, 250.0, 2.374)
    >>> profile("S30 Pro").name, profile(header={"INSTRUME": "Seestar S30"}).model, profile().model
    ('Seestar S30 Pro', 's30', 's50')
    >>> profile("S70")
    Traceback (most recent call last):
    ...
    KeyError: "unknown telescope model 'S70'; known: s50, s30, s30pro, generic"
    """
    if model:
        key = model.lower().replace(" ", "").replace("_", "").replace("seestar", "")
        if key not in PROFILES:
            raise KeyError(f"unknown telescope model {model!r}; known: {', '.join(MODELS)}")
        return PROFILES[key]
    return PROFILES[model_from_header(header) or "s50"]
