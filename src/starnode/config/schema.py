"""Every configuration key, declared once: its type, default, allowed range and description.

:mod:`starnode.config` validates a YAML file against :data:`SCHEMA`; ``starnode doctor`` and
``config.example.yaml`` show the descriptions. A new key goes here, in its section.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..instruments import profile

__all__ = ["MOVED_KEYS", "NUM", "SCHEMA", "SINK_NAMES", "TARGET_KEYS", "Field",
           "folder_problem", "secret_keys"]

#: The camera and altitude defaults are the S50's (its profile holds the numbers and where
#: they come from).
_S50 = profile("s50")


@dataclass(frozen=True)
class Field:
    """One configuration key."""

    type: type | tuple[type, ...]
    default: Any
    doc: str
    optional: bool = False  # None is allowed
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    path: bool = False  # a file or folder: ``~`` and ``$VARS`` are expanded
    secret: bool = False  # never shown: ``starnode config`` and error messages redact it


def _str_list(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    return None


def _str_map(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return "must be a mapping of strings to strings"
    return None


def _address(value: Any) -> str | None:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be HOST:PORT (e.g. 127.0.0.1:32323)"
    return None


def _horizon(value: Any) -> str | None:
    """``[[azimuth, altitude], ...]``: azimuth 0-360, altitude 0-90."""
    if not isinstance(value, list):
        return "must be a list of [azimuth, altitude] pairs"
    for i, point in enumerate(value):
        ok = (isinstance(point, list) and len(point) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point))
        if not ok:
            return f"entry {i + 1} must be [azimuth, altitude] in degrees"
        if not 0 <= point[0] <= 360 or not 0 <= point[1] <= 90:
            return f"entry {i + 1}: azimuth must be 0-360 and altitude 0-90"
    return None


#: The node's sinks (:mod:`starnode.node.sinks`): where each measurement goes.
SINK_NAMES = ("aavso", "hub")


def _sinks(value: Any) -> str | None:
    """A list of sink names, each known (did-you-mean for a typo) and listed once."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of sink names (e.g. [aavso, hub])"
    for name in value:
        if name not in SINK_NAMES:
            near = difflib.get_close_matches(name, SINK_NAMES, n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            return f"unknown sink '{name}'{hint}; known sinks: {', '.join(SINK_NAMES)}"
    if len(set(value)) != len(value):
        return "lists a sink twice"
    return None


#: The keys of one ``targets:`` entry (name required) and their checks.
TARGET_KEYS: dict[str, tuple[float, float]] = {
    "ra": (0.0, 360.0), "dec": (-90.0, 90.0), "brightest": (-30.0, 30.0),
    "faintest": (-30.0, 30.0), "cadence_days": (0.0, 3650.0)}


def _targets(value: Any) -> str | None:
    """``[{name, ra?, dec?, brightest?, faintest?, cadence_days?}, ...]``."""
    if not isinstance(value, list):
        return "must be a list of targets ({name: SS Cyg, ra: 325.678, dec: 43.586, ...})"
    for i, t in enumerate(value):
        where = f"entry {i + 1}"
        if isinstance(t, str):  # a bare name
            t = {"name": t}
        if not isinstance(t, dict):
            return f"{where} must be a mapping with at least a name"
        name = t.get("name")
        if not isinstance(name, str) or not name.strip():
            return f"{where} needs a name"
        where = f"{where} ({name})"
        unknown = set(t) - {"name"} - set(TARGET_KEYS)
        if unknown:
            return (f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: "
                    f"name, {', '.join(TARGET_KEYS)}")
        for key, (lo, hi) in TARGET_KEYS.items():
            v = t.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                return f"{where}: {key} must be a number"
            if not lo <= v <= hi:
                return f"{where}: {key} must be in {lo:g}..{hi:g}"
        if (t.get("ra") is None) != (t.get("dec") is None):
            return f"{where}: give both ra and dec, or neither (VSX fills them)"
        b, f = t.get("brightest"), t.get("faintest")
        if b is not None and f is not None and b > f:
            return f"{where}: brightest ({b}) must be a smaller magnitude than faintest ({f})"
    return None


def _http_url(value: Any) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ("must be an http:// or https:// address with a host, e.g. "
                "https://hub.example.org")
    return None


#: The database engines the hub runs on (docs/hub.md).
DATABASE_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres", "sqlite")


def _database_url(value: Any) -> str | None:
    scheme = str(value).partition("://")[0].lower() if "://" in str(value) else ""
    if scheme not in DATABASE_SCHEMES:
        return (f"the engine {scheme or '(none)'!r} is not supported: use postgresql://... "
                "(production) or sqlite:///path (trying it out)")
    return None


def folder_problem(value: Any) -> str | None:
    """A folder, or a path that can become one: no part of it may be an existing file."""
    path = Path(os.path.expanduser(os.path.expandvars(str(value))))
    for part in (path, *path.parents):
        try:
            if part.exists() or part.is_symlink():
                return None if part.is_dir() else f"{part} is a file, not a folder"
        except OSError:  # not ours to look into: the store says so when it is used
            return None
    return None


F = Field
NUM = (int, float)

#: section -> key -> Field. Top-level scalar keys live in the "" section.
SCHEMA: dict[str, dict[str, Field]] = {
    "": {
        "data_dir": F(str, None, "where the ledger, caches, outbox and logs live "
                      "(default: $STARNODE_DATA_DIR or ~/.local/share/starnode)", optional=True,
                      path=True, check=folder_problem),
        "workers": F(int, 1, "frames measured in parallel (processes)", min=1, max=64),
        "log_level": F(str, "INFO", "console log level",
                       choices=("DEBUG", "INFO", "WARNING", "ERROR")),
        "frame_timeout": F(NUM, 600.0, "seconds a worker may spend on one frame before it is "
                           "stopped and the frame marked failed", min=1),
        "shutdown_grace": F(NUM, 30.0, "seconds a stopping node waits for frames in hand before "
                            "putting them back in the queue", min=0),
        "targets": F(list, [], "what to observe: [{name, ra, dec, brightest, faintest, "
                     "cadence_days}, ...]; only the name is needed (VSX fills coordinates and "
                     "range, cached for offline use), e.g. [{name: SS Cyg, ra: 325.678, dec: "
                     "43.586, brightest: 8.2, faintest: 12.4}]", check=_targets),
    },
    "watch": {
        "path": F(str, None, "folder the telescope writes into (e.g. the mounted MyWorks share)",
                  optional=True, path=True),
        "mode": F(str, "auto", "auto: poll network/FUSE mounts, OS events elsewhere",
                  choices=("auto", "events", "poll")),
        "debounce_delay": F(NUM, 3.0, "seconds of quiet before a file counts as written", min=0),
        "poll_interval": F(NUM, 2.0, "seconds between directory scans in poll mode", min=0.05,
                           ),
        "recursive": F(bool, True, "watch subfolders too (Seestar MyWorks/<Target>_sub/)"),
        "catch_up": F(bool, True, "process frames already present at start"),
        "include": F(list, [f"{_S50.file_prefix}*"],
                     "file-name patterns (fnmatch) of frames to process; [] = every FITS file. "
                     "Raw subs by default: a stack repeats its subs' photons, so measuring both "
                     "would report the same light twice; use ['*Stacked_*'] when you do not "
                     "save subs",
                     check=_str_list),
        "extensions": F(list, [".fit", ".fits"], "file extensions that count as FITS",
                        check=_str_list),
        "max_wait": F(NUM, 600.0, "seconds after which a file that never completes is "
                      "reported anyway, with a WARNING", min=1),
        "stall_timeout": F(NUM, 30.0, "seconds an incomplete file may stay unchanged before "
                           "it is taken for truncated (a torn copy) and measured, i.e. shown "
                           "in 'starnode status' with its reason; it is looked at again if it "
                           "changes later", min=1),
    },
    "limits": {
        "max_frame_bytes": F(int, 256 * 2**20, "largest frame read, in bytes: file size, and "
                             "image data its header announces (decompressed); a larger file, "
                             "or anything not a regular file, is skipped unread", min=2880),
        "memory_mb": F(int, 3072, "memory budget of the whole node in MiB (0 = none), "
                       "shared by its workers: the node keeps 512, each worker's ceiling "
                       "(address space) is the rest divided by workers; one file can never "
                       "take the machine", min=0),
        "worker_memory_mb": F(int, 0, "a lower ceiling per worker in MiB (0 = the worker's "
                              "share of memory_mb)", min=0),
    },
    "starlists": {
        "keep_days": F(int, 0, "delete starlists of nights older than this many days (at "
                       "start and daily; 0 = keep them all)", min=0),
        "min_free_mb": F(int, 500, "pause writing starlists while the data folder has less "
                         "free space than this (MiB): the report always comes first; each "
                         "skipped starlist is recorded in data_dir/starlists/skipped.txt",
                         min=0),
    },
    "node": {
        "sinks": F(list, ["aavso", "hub"], "where each measurement goes, in order: aavso (the "
                   "AAVSO outbox: aavso.mode), hub (the network hub's queue, only while hub.url "
                   "is set); [] = measure and keep the ledger only", check=_sinks),
    },
    "camera": {
        "gain_e_per_adu": F(NUM, _S50.gain_e_per_adu, "camera gain in electrons per ADU of "
                            "the 16-bit file (the Seestar GAIN card is a setting, not e-/ADU; "
                            "0.065 = S50 at GAIN 80, photon transfer of real subs, "
                            "docs/photometry.md)",
                            min=0, min_exclusive=True),
        "read_noise_e": F(NUM, _S50.read_noise_e, "read noise in electrons", min=0),
        "saturation_adu": F(NUM, _S50.linearity_limit_adu, "a star whose peak reaches this "
                            "many ADU is saturated / non-linear and never measured", min=1),
        "bayer_pattern": F(str, None, "override BAYERPAT (RGGB, GRBG, GBRG, BGGR)", optional=True,
                           choices=("RGGB", "GRBG", "GBRG", "BGGR")),
        "pixel_scale_arcsec": F(NUM, None, "override the pixel scale (default: from FOCALLEN "
                                "and XPIXSZ)", optional=True, min=0, min_exclusive=True),
        "aperture_mm": F(NUM, _S50.aperture_mm, "telescope aperture in mm, for the "
                         "scintillation noise (S50: 50, S30: 30)", min=0, min_exclusive=True),
    },
    "site": {
        "latitude": F(NUM, None, "degrees north (default: SITELAT)", optional=True,
                      min=-90, max=90),
        "longitude": F(NUM, None, "degrees east (default: SITELONG)", optional=True,
                       min=-180, max=360),
        "elevation": F(NUM, 0.0, "metres above sea level", min=-500, max=9000),
    },
    "telescope": {
        "driver": F(str, "none", "none: nothing moves (the default); alpaca: an ASCOM Alpaca "
                    "telescope and camera (the Seestar's own server)", choices=("none", "alpaca")),
        "address": F(str, "127.0.0.1:32323", "HOST:PORT of the Alpaca server (the Seestar's own "
                     "is on port 32323)", check=_address),
        "telescope_device": F(int, 0, "Alpaca device number of the telescope (mount)", min=0),
        "camera_device": F(int, 0, "Alpaca device number of the camera", min=0),
        "motion": F(bool, False, "nothing moves until this is true"),
        "sun_limit": F(NUM, -12.0, "degrees: the sun at or below this is night; the same value "
                       "for planning, gating and parking at dawn", min=-30, max=0),
        "min_altitude": F(NUM, _S50.min_altitude_deg, "degrees: lowest altitude observed, held "
                          "over an item's whole window", min=0, max=89),
        "max_altitude": F(NUM, _S50.max_altitude_deg, "degrees: highest altitude observed "
                          "(alt-az tracking degenerates near the zenith)", min=1, max=90),
        "horizon": F(list, [], "[[azimuth, altitude], ...] where trees and houses are: the "
                     "floor is the higher of min_altitude and this mask (interpolated in "
                     "azimuth)", check=_horizon),
        "model": F(str, None, "s50, s30, s30pro or generic: the instrument profile (default: "
                   "from the frames' INSTRUME, else s50)", optional=True,
                   choices=("s50", "s30", "s30pro", "generic")),
        "weather": F(str, "none", "none, or alpaca: an Alpaca weather device whose veto (unsafe, "
                     "rain, cloud) stops new items, parks, and tells the hub",
                     choices=("none", "alpaca")),
        "weather_kind": F(str, "safetymonitor", "safetymonitor (IsSafe) or observingconditions "
                          "(RainRate, CloudCover)",
                          choices=("safetymonitor", "observingconditions")),
        "weather_address": F(str, None, "HOST:PORT of the weather device's Alpaca server "
                             "(default: telescope.address)", optional=True, check=_address),
        "weather_device": F(int, 0, "Alpaca device number of the weather device", min=0),
        "weather_max_cloud": F(NUM, 50.0, "observingconditions: a cloud cover above this "
                               "(percent) is a veto", min=0, max=100),
        "alert_min_minutes": F(NUM, 20.0, "a hub alert is inserted only when its target is "
                               "observable for at least this long from now (minutes)", min=1,
                               max=600),
    },
    "target_tool": {
        "key": F(str, "", "the AAVSO Target Tool API key (better: $STARNODE_TARGET_TOOL_KEY); "
                 "optional: without it the plan uses the targets list only", secret=True),
        "url": F(str, "https://targettool.aavso.org/TargetTool/api/v1/targets",
                 "the Target Tool API"),
        "sections": F(list, ["ac", "all"], "Target Tool lists asked for: ac (Alerts & "
                      "Campaigns, observed first) and all (the general list)", check=_str_list),
        "cache_hours": F(NUM, 12.0, "hours a Target Tool answer is reused before asking again "
                         "(an older one is used when the network fails)", min=0),
        "http_timeout": F(NUM, 30.0, "seconds per Target Tool request", min=0.1),
    },
    "planning": {
        "min_snr": F(NUM, 10.0, "signal-to-noise a target's faintest magnitude must reach in "
                     "one frame (calibrated from this node's measured frames when it has some)",
                     min=0),
        "cadence_days": F(NUM, 1.0, "a target observed less than this long ago is skipped "
                          "(a target's own cadence_days or the Target Tool's wins)", min=0),
        "slot_minutes": F(NUM, 30.0, "time given to one target (less when its window is "
                          "shorter)", min=1, max=720),
        "min_slot_minutes": F(NUM, 10.0, "shortest window worth observing", min=1, max=720),
        "step_minutes": F(NUM, 5.0, "time grid of the planner; windows are verified minute "
                          "by minute", min=1, max=30),
        "moon_min_separation": F(NUM, 10.0, "degrees from the Moon, always (when it is up)",
                                 min=0, max=180),
        "moon_full_separation": F(NUM, 40.0, "degrees from a full Moon (scaled by its "
                                  "illuminated fraction; the larger of the two applies)",
                                  min=0, max=180),
        "moon_max_illumination": F(NUM, 1.0, "with the Moon up and more illuminated than this "
                                   "fraction, nothing is observed (1: never)", min=0, max=1),
        "expert_exposures": F(bool, True, "allow the short exposures of expert mode (2 and 5 s "
                              "on a Seestar) for bright targets"),
        "max_targets": F(int, 0, "at most this many targets in a night (0: as many as fit)",
                         min=0),
    },
    # The catalogues (VSX, VSP, Gaia, files, cache); until 0.2.0 these keys were under
    # photometry: (still read, with a deprecation line: MOVED_KEYS).
    "catalogs": {
        "sequence_file": F(str, None, "local AAVSO VSP chart JSON used instead of asking VSP",
                           optional=True, path=True),
        "vsp_url": F(str, "https://apps.aavso.org/vsp/api/chart/", "VSP chart API"),
        "vsx_url": F(str, "https://vsx.aavso.org/index.php", "VSX API"),
        "offline": F(bool, False, "never use the network: cache, sequence_file, bundled data"),
        "cache_days": F(NUM, 30.0, "days a catalogue answer is reused", min=0),
        "http_timeout": F(NUM, 20.0, "seconds per catalogue request", min=0.1),
        "http_retries": F(int, 3, "attempts per catalogue request", min=1, max=10),
        "maglimit": F(NUM, 15.0, "faintest comparison star asked for (V)", min=0, max=25),
        "gaia_fallback": F(bool, True, "use Gaia DR3 comps (clearly labelled) when VSP has none"),
        "gaia_tap_url": F(str, "https://gea.esac.esa.int/tap-server/tap/sync",
                          "Gaia archive TAP sync endpoint (ADQL, CSV answer)"),
        "http_backoff": F(NUM, 2.0, "seconds before the first catalogue retry (doubles each "
                          "time; a server's Retry-After is honoured, up to 60 s)", min=0),
        "http_quiet_minutes": F(NUM, 5.0, "after a catalogue server failed every attempt, do "
                                "not ask it again for this long (cache/fallbacks meanwhile)",
                                min=0),
        "vsx_cone_arcmin": F(NUM, 3.0, "radius of the VSX cone search around RA/DEC when OBJECT "
                             "is 'Unknown' or absent", min=0.1, max=60),
    },
    "photometry": {
        "target": F(str, None, "measure this star whatever OBJECT says", optional=True),
        "target_aliases": F(dict, {}, "OBJECT value -> AAVSO star name", check=_str_map),
        "filter_map": F(dict, {"V": "V", "B": "B", "R": "R", "I": "I", "": "CV", "L": "CV",
                               "CLEAR": "CV", "C": "CV", "NONE": "CV"},
                        "mono FILTER card -> AAVSO filter code", check=_str_map),
        "aperture_fwhm": F(NUM, 1.5, "aperture radius in FWHM", min=0.5, max=5),
        "annulus_gap_fwhm": F(NUM, 1.5, "gap between aperture and sky annulus in FWHM", min=0),
        "annulus_width_fwhm": F(NUM, 3.0, "sky annulus width in FWHM", min=0.5),
        "aperture_radius_px": F(NUM, None, "fixed aperture radius in measured-plane pixels "
                                "(overrides aperture_fwhm)", optional=True, min=0.5),
        "edge_margin_px": F(NUM, 5.0, "stars closer to the edge than annulus + this are skipped",
                            min=0),
        "min_comps": F(int, 2, "fewest comparison stars for a measurement", min=1),
        "max_comps": F(int, 20, "most comparison stars in the ensemble", min=1),
        "comp_clip_sigma": F(NUM, 3.0, "iterative clipping of outlier comps", min=1),
        "check_star": F(str, None, "AUID or label of the check star (default: chosen "
                        "automatically)", optional=True),
        "aperture_min_px": F(NUM, 2.5, "smallest aperture radius in measured-plane px, so an "
                             "undersampled PSF's flux does not depend on sub-pixel position",
                             min=0),
        "excess_noise": F(bool, True, "add each frame's excess noise (measured on its own "
                          "stars) to every star's error"),
        "cfa_correction": F(bool, True, "raw subs: correct each star's green flux for where "
                            "its core falls on the colour filter array (fitted per frame on "
                            "the green-site asymmetry of its bright stars; docs/photometry.md)"),
        "illumination": F(str, "auto", "zero point across the field: auto (radial when "
                          "significant), constant, radial", choices=("auto", "constant",
                                                                      "radial")),
        "starlists": F(bool, True, "write a per-frame ECSV list of every star, gzip-"
                       "compressed, under data_dir/starlists/<night>/ (see the starlists "
                       "section)"),
        "min_snr": F(NUM, 5.0, "below this target SNR the frame is not measured", min=0),
        "scintillation_factor": F(NUM, 1.5, "scintillation noise in the uncertainty: this "
                                  "multiple of Young's (1967) estimate (1.5: Osborn et al. 2015, "
                                  "median conditions; 0: off)", min=0, max=10),
        "transform": F(bool, False, "one-shot-colour frames: fit the colour term Tv_bv on each "
                       "frame's comps (VSP B and V, TB and TG planes) and report V with "
                       "TRANS=YES when it is good enough (else TG as usual)"),
        "transform_max_error": F(NUM, 0.02, "largest error of the fitted Tv_bv for which the "
                                 "transformation is applied", min=0, min_exclusive=True),
    },
    "astrometry": {
        "min_matches": F(int, 6, "matched stars needed to accept a WCS", min=3),
        "max_rms_px": F(NUM, 1.0, "largest accepted residual (measured-plane pixels)",
                        min=0, min_exclusive=True),
        "search_radius_deg": F(NUM, 1.0, "how far from the header RA/DEC the field may be",
                               min=0.1, max=10),
        "blind": F(bool, True, "try blind solvers (tetra3rs, ASTAP, solve-field) when needed"),
        "astap_path": F(str, None, "ASTAP executable (default: found on PATH)", optional=True,
                        path=True),
        "solve_field_path": F(str, None, "astrometry.net solve-field (default: found on PATH)",
                              optional=True, path=True),
        "cache": F(bool, True, "keep solutions in data_dir keyed by file content"),
        "scale_tolerance": F(NUM, 0.05, "largest relative difference between the solved and "
                             "the nominal pixel scale", min=0.005, max=0.5),
        "guess_tolerance_arcmin": F(NUM, 4.0, "how far off a WCS guess (header, previous "
                                    "frame, hint) may be", min=0.1, max=60),
        "tetra3rs": F(bool, True, "use tetra3rs as a blind solver (when astrometry.blind)"),
        "tetra3rs_generate": F(bool, False, "build the tetra3rs database in the background on "
                               "first need (1-3 min, about 1.1 GB of memory, a 350 MB file; "
                               "better: run 'starnode solver-db' once)"),
        "blind_timeout_s": F(NUM, 30.0, "time limit of one blind solver run (seconds)",
                             min=1, max=3600),
        "deep_gaia_g": F(NUM, 14.0, "sparse fields (fewer than 3 x min_matches G<10 stars): "
                         "Gaia DR3 stars to this G, asked once per field and kept in the "
                         "catalogue cache for offline use (0: off)", min=0, max=18),
    },
    "quality": {
        "good_snr": F(NUM, 100.0, "target SNR needed for 'good'", min=0),
        "acceptable_snr": F(NUM, 20.0, "target SNR needed for 'acceptable'", min=0),
        "good_max_error": F(NUM, 0.03, "largest uncertainty for 'good' (mag)", min=0),
        "acceptable_max_error": F(NUM, 0.1, "largest uncertainty for 'acceptable' (mag)", min=0),
        "good_min_comps": F(int, 3, "comparison stars needed for 'good'", min=1),
        "good_max_check_deviation": F(NUM, 0.05, "largest |K - Kcat| for 'good' (mag)", min=0),
        "acceptable_max_check_deviation": F(NUM, 0.15, "largest |K - Kcat| for 'acceptable'",
                                            min=0),
        "good_max_airmass": F(NUM, 2.0, "largest airmass for 'good'", min=1),
        "acceptable_max_airmass": F(NUM, 3.0, "largest airmass for 'acceptable'", min=1),
    },
    "aavso": {
        "observer_code": F(str, None, "your AAVSO observer code (required to report)",
                           optional=True),
        "date_type": F(str, "HJD", "#DATE of the report", choices=("HJD", "JD")),
        "mode": F(str, "outbox", "outbox: files for you to upload; dry_run: write and validate "
                  "only; webobs: upload (explicit opt-in)",
                  choices=("outbox", "dry_run", "webobs")),
        "bin_minutes": F(NUM, 0.0, "average consecutive measurements into bins of this many "
                         "minutes (0 = one row per frame)", min=0, max=120),
        "submit_poor_quality": F(bool, False, "report measurements flagged 'poor' too"),
        "max_check_deviation": F(NUM, 0.2, "a check star further than this from its catalogue "
                                 "value blocks the report (mag)", min=0),
        "webobs_url": F(str, "https://www.aavso.org/webobs/file", "WebObs upload page"),
        "username_env": F(str, "STARNODE_AAVSO_USERNAME", "environment variable with the "
                          "WebObs user name"),
        "password_env": F(str, "STARNODE_AAVSO_PASSWORD", "environment variable with the "
                          "WebObs password"),
        "credentials_file": F(str, None, "file with 'username:password', readable by its owner "
                              "only", optional=True, path=True),
        "http_timeout": F(NUM, 60.0, "seconds per upload request", min=0.1),
        "http_retries": F(int, 3, "attempts per upload", min=1, max=10),
        "retry_backoff": F(NUM, 5.0, "seconds before the 2nd upload attempt (doubling after)",
                           min=0),
        "webobs_success_pattern": F(
            str, r"(\d+) observations? (?:were|was|have been|has been) (?:successfully )?"
            r"(?:submitted|uploaded|accepted)",
            "regular expression a WebObs confirmation page must match (a group, if any, must "
            "equal the number of rows sent); anything else is not counted as accepted"),
    },
    # The network hub (docs/hub.md): node-side keys first, then the hub server's own.
    "hub": {
        "url": F(str, None, "node: the hub to forward measurements to (e.g. "
                 "https://hub.example.org); none = no forwarding", optional=True,
                 check=_http_url),
        "token": F(str, None, "node: this node's hub token (better: $STARNODE_HUB_TOKEN)",
                   optional=True, secret=True),
        "batch_size": F(int, 50, "node: measurements per push", min=1, max=1000),
        "heartbeat_interval": F(NUM, 60.0, "node: seconds between heartbeats", min=1),
        "retry_backoff": F(NUM, 2.0, "node: seconds before the first retry of a failed push "
                           "(doubles each time)", min=0.01),
        "max_backoff": F(NUM, 300.0, "node: longest wait between retries (seconds)", min=0.1),
        "http_timeout": F(NUM, 15.0, "node: seconds per hub request", min=0.1),
        "flush_timeout": F(NUM, 10.0, "node: seconds 'starnode process' spends at its end "
                           "pushing what is queued (the rest goes with the next run)", min=0),
        "database_url": F(str, None, "hub: SQLAlchemy URL (postgresql://... in production; "
                          "default: a SQLite file hub.sqlite3 in data_dir)", optional=True,
                          check=_database_url, secret=True),
        "listen": F(str, "127.0.0.1:8750", "hub: HOST:PORT to serve on (TLS: a reverse proxy "
                    "in front, docs/hub.md)"),
        "workers": F(int, 1, "hub: uvicorn worker processes", min=1, max=64),
        "window_minutes": F(NUM, 15.0, "hub: measurements of a target from different nodes "
                            "within this window are cross-checked", min=0.5, max=240),
        "min_nodes": F(int, 3, "hub: nodes needed in a window for a consensus", min=2),
        "outlier_sigma": F(NUM, 3.0, "hub: a point further than this many sigma (and than "
                           "outlier_min_mag) from the consensus is flagged", min=1),
        "outlier_min_mag": F(NUM, 0.1, "hub: smallest difference flagged (mag)", min=0),
        "offset_sigma": F(NUM, 3.0, "hub: a node's nightly offset beyond this many sigma (and "
                          "offset_min_mag) holds the node for review", min=1),
        "offset_min_mag": F(NUM, 0.05, "hub: smallest nightly offset that holds a node (mag)",
                            min=0),
        "max_body_kb": F(NUM, 2048.0, "hub: largest request body accepted (KiB)", min=1),
        "rate_limit_per_minute": F(int, 600, "hub: requests one node may make per minute",
                                   min=1),
        "unauthenticated_per_minute": F(int, 60, "hub: requests without a valid token one "
                                        "client address may make per minute", min=1),
        "body_timeout": F(NUM, 10.0, "hub: seconds a request body may take to arrive",
                          min=0.1, max=600),
        "date_type": F(str, "HJD", "hub: #DATE of members' reports", choices=("HJD", "JD")),
        "plan_step_minutes": F(NUM, 10.0, "hub: time step of the nightly allocation's "
                               "visibility grid (minutes)", min=1, max=60),
        "plan_min_window_minutes": F(NUM, 60.0, "hub: a node is given a target only if it can "
                                     "observe it this long in one stretch (minutes)", min=0,
                                     max=720),
        "plan_slot_minutes": F(NUM, 45.0, "hub: dark time per target when counting how many "
                               "targets a node can take in a night (minutes)", min=5, max=720),
        "plan_alert_nodes": F(int, 2, "hub: nodes asked to observe each alert target (where "
                              "that many can see it)", min=1, max=20),
        "plan_lead_hours": F(NUM, 2.0, "hub: allocate a night this long before the first "
                             "node's dusk (hours)", min=0, max=24),
        "plan_interval": F(NUM, 300.0, "hub: seconds between the server's allocation checks "
                           "(0: never automatically)", min=0),
        "plan_max_heartbeat_age": F(NUM, 1800.0, "hub: a node silent for longer gets nothing "
                                    "in the allocation (seconds)", min=60),
    },
    # The telescope (docs/telescope.md): what drives the mount, and the limits nothing crosses.
}


#: Keys that moved: ``(old section, key) -> new section`` (the key keeps its name). The old
#: place is still read, with one deprecation line; giving both is refused.
MOVED_KEYS: dict[tuple[str, str], str] = {
    ("photometry", key): "catalogs" for key in SCHEMA["catalogs"]}


def secret_keys() -> list[tuple[str, str]]:
    """``(section, key)`` of every secret: never printed, never logged."""
    return [(section, key) for section, fields in SCHEMA.items()
            for key, field in fields.items() if field.secret]
