"""The typed sections of the configuration, generated from ``config/schema.py``.

Do not edit: run ``python -m starnode.config.generate src/starnode/config/sections.py`` after
changing the schema (``tests/config/test_config_typed.py`` fails while the two differ). Values are
validated (and defaults filled in) by :class:`starnode.config.Config`; these classes only give
each key its type, so mypy checks every read such as ``cfg.watch.poll_interval``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "AavsoSettings",
    "AstrometrySettings",
    "CameraSettings",
    "CatalogsSettings",
    "HubSettings",
    "LimitsSettings",
    "NodeSettings",
    "PhotometrySettings",
    "PlanningSettings",
    "QualitySettings",
    "Section",
    "SiteSettings",
    "StarlistsSettings",
    "TargetToolSettings",
    "TelescopeSettings",
    "TypedConfig",
    "WatchSettings",
]


class Section(Mapping[str, Any]):
    """Base of every section: attributes (``cfg.camera.gain_e_per_adu``), and a read-only
    mapping too (``cfg["camera"]["gain_e_per_adu"]``), as the seed's plain dict was."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(fields(self))  # type: ignore[arg-type]


@dataclass(frozen=True)
class WatchSettings(Section):
    """``watch:`` (see :data:`starnode.config.SCHEMA`)."""

    #: folder the telescope writes into (e.g. the mounted MyWorks share)
    path: str | None
    #: auto: poll network/FUSE mounts, OS events elsewhere
    mode: Literal["auto", "events", "poll"]
    #: seconds of quiet before a file counts as written
    debounce_delay: float
    #: seconds between directory scans in poll mode
    poll_interval: float
    #: watch subfolders too (Seestar MyWorks/<Target>_sub/)
    recursive: bool
    #: process frames already present at start
    catch_up: bool
    #: file-name patterns (fnmatch) of frames to process; [] = every FITS file. Raw subs by
    #: default: a stack repeats its subs' photons, so measuring both would report the same light
    #: twice; use ['*Stacked_*'] when you do not save subs
    include: list[str]
    #: file extensions that count as FITS
    extensions: list[str]
    #: seconds after which a file that never completes is reported anyway, with a WARNING
    max_wait: float
    #: seconds an incomplete file may stay unchanged before it is taken for truncated (a torn copy)
    #: and measured, i.e. shown in 'starnode status' with its reason; it is looked at again if it
    #: changes later
    stall_timeout: float


@dataclass(frozen=True)
class LimitsSettings(Section):
    """``limits:`` (see :data:`starnode.config.SCHEMA`)."""

    #: largest frame read, in bytes: file size, and image data its header announces (decompressed);
    #: a larger file, or anything not a regular file, is skipped unread
    max_frame_bytes: int
    #: memory budget of the whole node in MiB (0 = none), shared by its workers: the node keeps
    #: 512, each worker's ceiling (address space) is the rest divided by workers; one file can
    #: never take the machine
    memory_mb: int
    #: a lower ceiling per worker in MiB (0 = the worker's share of memory_mb)
    worker_memory_mb: int


@dataclass(frozen=True)
class StarlistsSettings(Section):
    """``starlists:`` (see :data:`starnode.config.SCHEMA`)."""

    #: delete starlists of nights older than this many days (at start and daily; 0 = keep them all)
    keep_days: int
    #: pause writing starlists while the data folder has less free space than this (MiB): the
    #: report always comes first; each skipped starlist is recorded in
    #: data_dir/starlists/skipped.txt
    min_free_mb: int


@dataclass(frozen=True)
class NodeSettings(Section):
    """``node:`` (see :data:`starnode.config.SCHEMA`)."""

    #: where each measurement goes, in order: aavso (the AAVSO outbox: aavso.mode), hub (the
    #: network hub's queue, only while hub.url is set); [] = measure and keep the ledger only
    sinks: list[Any]


@dataclass(frozen=True)
class CameraSettings(Section):
    """``camera:`` (see :data:`starnode.config.SCHEMA`)."""

    #: camera gain in electrons per ADU of the 16-bit file (the Seestar GAIN card is a setting, not
    #: e-/ADU; 0.065 = S50 at GAIN 80, photon transfer of real subs, docs/photometry.md)
    gain_e_per_adu: float
    #: read noise in electrons
    read_noise_e: float
    #: a star whose peak reaches this many ADU is saturated / non-linear and never measured
    saturation_adu: float
    #: override BAYERPAT (RGGB, GRBG, GBRG, BGGR)
    bayer_pattern: Literal["RGGB", "GRBG", "GBRG", "BGGR"] | None
    #: override the pixel scale (default: from FOCALLEN and XPIXSZ)
    pixel_scale_arcsec: float | None
    #: telescope aperture in mm, for the scintillation noise (S50: 50, S30: 30)
    aperture_mm: float


@dataclass(frozen=True)
class SiteSettings(Section):
    """``site:`` (see :data:`starnode.config.SCHEMA`)."""

    #: degrees north (default: SITELAT)
    latitude: float | None
    #: degrees east (default: SITELONG)
    longitude: float | None
    #: metres above sea level
    elevation: float


@dataclass(frozen=True)
class TelescopeSettings(Section):
    """``telescope:`` (see :data:`starnode.config.SCHEMA`)."""

    #: none: nothing moves (the default); alpaca: an ASCOM Alpaca telescope and camera (the
    #: Seestar's own server)
    driver: Literal["none", "alpaca"]
    #: HOST:PORT of the Alpaca server (the Seestar's own is on port 32323)
    address: str
    #: Alpaca device number of the telescope (mount)
    telescope_device: int
    #: Alpaca device number of the camera
    camera_device: int
    #: nothing moves until this is true
    motion: bool
    #: degrees: the sun at or below this is night; the same value for planning, gating and parking
    #: at dawn
    sun_limit: float
    #: degrees: lowest altitude observed, held over an item's whole window
    min_altitude: float
    #: degrees: highest altitude observed (alt-az tracking degenerates near the zenith)
    max_altitude: float
    #: [[azimuth, altitude], ...] where trees and houses are: the floor is the higher of
    #: min_altitude and this mask (interpolated in azimuth)
    horizon: list[list[float]]
    #: s50, s30, s30pro or generic: the instrument profile (default: from the frames' INSTRUME,
    #: else s50)
    model: Literal["s50", "s30", "s30pro", "generic"] | None
    #: none, or alpaca: an Alpaca weather device whose veto (unsafe, rain, cloud) stops new items,
    #: parks, and tells the hub
    weather: Literal["none", "alpaca"]
    #: safetymonitor (IsSafe) or observingconditions (RainRate, CloudCover)
    weather_kind: Literal["safetymonitor", "observingconditions"]
    #: HOST:PORT of the weather device's Alpaca server (default: telescope.address)
    weather_address: str | None
    #: Alpaca device number of the weather device
    weather_device: int
    #: observingconditions: a cloud cover above this (percent) is a veto
    weather_max_cloud: float
    #: a hub alert is inserted only when its target is observable for at least this long from now
    #: (minutes)
    alert_min_minutes: float


@dataclass(frozen=True)
class TargetToolSettings(Section):
    """``target_tool:`` (see :data:`starnode.config.SCHEMA`)."""

    #: the AAVSO Target Tool API key (better: $STARNODE_TARGET_TOOL_KEY); optional: without it the
    #: plan uses the targets list only
    key: str
    #: the Target Tool API
    url: str
    #: Target Tool lists asked for: ac (Alerts & Campaigns, observed first) and all (the general
    #: list)
    sections: list[str]
    #: hours a Target Tool answer is reused before asking again (an older one is used when the
    #: network fails)
    cache_hours: float
    #: seconds per Target Tool request
    http_timeout: float


@dataclass(frozen=True)
class PlanningSettings(Section):
    """``planning:`` (see :data:`starnode.config.SCHEMA`)."""

    #: signal-to-noise a target's faintest magnitude must reach in one frame (calibrated from this
    #: node's measured frames when it has some)
    min_snr: float
    #: a target observed less than this long ago is skipped (a target's own cadence_days or the
    #: Target Tool's wins)
    cadence_days: float
    #: time given to one target (less when its window is shorter)
    slot_minutes: float
    #: shortest window worth observing
    min_slot_minutes: float
    #: time grid of the planner; windows are verified minute by minute
    step_minutes: float
    #: degrees from the Moon, always (when it is up)
    moon_min_separation: float
    #: degrees from a full Moon (scaled by its illuminated fraction; the larger of the two applies)
    moon_full_separation: float
    #: with the Moon up and more illuminated than this fraction, nothing is observed (1: never)
    moon_max_illumination: float
    #: allow the short exposures of expert mode (2 and 5 s on a Seestar) for bright targets
    expert_exposures: bool
    #: at most this many targets in a night (0: as many as fit)
    max_targets: int


@dataclass(frozen=True)
class CatalogsSettings(Section):
    """``catalogs:`` (see :data:`starnode.config.SCHEMA`)."""

    #: local AAVSO VSP chart JSON used instead of asking VSP
    sequence_file: str | None
    #: VSP chart API
    vsp_url: str
    #: VSX API
    vsx_url: str
    #: never use the network: cache, sequence_file, bundled data
    offline: bool
    #: days a catalogue answer is reused
    cache_days: float
    #: seconds per catalogue request
    http_timeout: float
    #: attempts per catalogue request
    http_retries: int
    #: faintest comparison star asked for (V)
    maglimit: float
    #: use Gaia DR3 comps (clearly labelled) when VSP has none
    gaia_fallback: bool
    #: Gaia archive TAP sync endpoint (ADQL, CSV answer)
    gaia_tap_url: str
    #: seconds before the first catalogue retry (doubles each time; a server's Retry-After is
    #: honoured, up to 60 s)
    http_backoff: float
    #: after a catalogue server failed every attempt, do not ask it again for this long
    #: (cache/fallbacks meanwhile)
    http_quiet_minutes: float
    #: radius of the VSX cone search around RA/DEC when OBJECT is 'Unknown' or absent
    vsx_cone_arcmin: float


@dataclass(frozen=True)
class PhotometrySettings(Section):
    """``photometry:`` (see :data:`starnode.config.SCHEMA`)."""

    #: measure this star whatever OBJECT says
    target: str | None
    #: OBJECT value -> AAVSO star name
    target_aliases: dict[str, str]
    #: mono FILTER card -> AAVSO filter code
    filter_map: dict[str, str]
    #: aperture radius in FWHM
    aperture_fwhm: float
    #: gap between aperture and sky annulus in FWHM
    annulus_gap_fwhm: float
    #: sky annulus width in FWHM
    annulus_width_fwhm: float
    #: fixed aperture radius in measured-plane pixels (overrides aperture_fwhm)
    aperture_radius_px: float | None
    #: stars closer to the edge than annulus + this are skipped
    edge_margin_px: float
    #: fewest comparison stars for a measurement
    min_comps: int
    #: most comparison stars in the ensemble
    max_comps: int
    #: iterative clipping of outlier comps
    comp_clip_sigma: float
    #: AUID or label of the check star (default: chosen automatically)
    check_star: str | None
    #: smallest aperture radius in measured-plane px, so an undersampled PSF's flux does not depend
    #: on sub-pixel position
    aperture_min_px: float
    #: add each frame's excess noise (measured on its own stars) to every star's error
    excess_noise: bool
    #: raw subs: correct each star's green flux for where its core falls on the colour filter array
    #: (fitted per frame on the green-site asymmetry of its bright stars; docs/photometry.md)
    cfa_correction: bool
    #: zero point across the field: auto (radial when significant), constant, radial
    illumination: Literal["auto", "constant", "radial"]
    #: write a per-frame ECSV list of every star, gzip-compressed, under
    #: data_dir/starlists/<night>/ (see the starlists section)
    starlists: bool
    #: below this target SNR the frame is not measured
    min_snr: float
    #: scintillation noise in the uncertainty: this multiple of Young's (1967) estimate (1.5:
    #: Osborn et al. 2015, median conditions; 0: off)
    scintillation_factor: float
    #: one-shot-colour frames: fit the colour term Tv_bv on each frame's comps (VSP B and V, TB and
    #: TG planes) and report V with TRANS=YES when it is good enough (else TG as usual)
    transform: bool
    #: largest error of the fitted Tv_bv for which the transformation is applied
    transform_max_error: float


@dataclass(frozen=True)
class AstrometrySettings(Section):
    """``astrometry:`` (see :data:`starnode.config.SCHEMA`)."""

    #: matched stars needed to accept a WCS
    min_matches: int
    #: largest accepted residual (measured-plane pixels)
    max_rms_px: float
    #: how far from the header RA/DEC the field may be
    search_radius_deg: float
    #: try blind solvers (tetra3rs, ASTAP, solve-field) when needed
    blind: bool
    #: ASTAP executable (default: found on PATH)
    astap_path: str | None
    #: astrometry.net solve-field (default: found on PATH)
    solve_field_path: str | None
    #: keep solutions in data_dir keyed by file content
    cache: bool
    #: largest relative difference between the solved and the nominal pixel scale
    scale_tolerance: float
    #: how far off a WCS guess (header, previous frame, hint) may be
    guess_tolerance_arcmin: float
    #: use tetra3rs as a blind solver (when astrometry.blind)
    tetra3rs: bool
    #: build the tetra3rs database in the background on first need (1-3 min, about 1.1 GB of
    #: memory, a 350 MB file; better: run 'starnode solver-db' once)
    tetra3rs_generate: bool
    #: time limit of one blind solver run (seconds)
    blind_timeout_s: float
    #: sparse fields (fewer than 3 x min_matches G<10 stars): Gaia DR3 stars to this G, asked once
    #: per field and kept in the catalogue cache for offline use (0: off)
    deep_gaia_g: float


@dataclass(frozen=True)
class QualitySettings(Section):
    """``quality:`` (see :data:`starnode.config.SCHEMA`)."""

    #: target SNR needed for 'good'
    good_snr: float
    #: target SNR needed for 'acceptable'
    acceptable_snr: float
    #: largest uncertainty for 'good' (mag)
    good_max_error: float
    #: largest uncertainty for 'acceptable' (mag)
    acceptable_max_error: float
    #: comparison stars needed for 'good'
    good_min_comps: int
    #: largest |K - Kcat| for 'good' (mag)
    good_max_check_deviation: float
    #: largest |K - Kcat| for 'acceptable'
    acceptable_max_check_deviation: float
    #: largest airmass for 'good'
    good_max_airmass: float
    #: largest airmass for 'acceptable'
    acceptable_max_airmass: float


@dataclass(frozen=True)
class AavsoSettings(Section):
    """``aavso:`` (see :data:`starnode.config.SCHEMA`)."""

    #: your AAVSO observer code (required to report)
    observer_code: str | None
    #: #DATE of the report
    date_type: Literal["HJD", "JD"]
    #: outbox: files for you to upload; dry_run: write and validate only; webobs: upload (explicit
    #: opt-in)
    mode: Literal["outbox", "dry_run", "webobs"]
    #: average consecutive measurements into bins of this many minutes (0 = one row per frame)
    bin_minutes: float
    #: report measurements flagged 'poor' too
    submit_poor_quality: bool
    #: a check star further than this from its catalogue value blocks the report (mag)
    max_check_deviation: float
    #: WebObs upload page
    webobs_url: str
    #: environment variable with the WebObs user name
    username_env: str
    #: environment variable with the WebObs password
    password_env: str
    #: file with 'username:password', readable by its owner only
    credentials_file: str | None
    #: seconds per upload request
    http_timeout: float
    #: attempts per upload
    http_retries: int
    #: seconds before the 2nd upload attempt (doubling after)
    retry_backoff: float
    #: regular expression a WebObs confirmation page must match (a group, if any, must equal the
    #: number of rows sent); anything else is not counted as accepted
    webobs_success_pattern: str


@dataclass(frozen=True)
class HubSettings(Section):
    """``hub:`` (see :data:`starnode.config.SCHEMA`)."""

    #: node: the hub to forward measurements to (e.g. https://hub.example.org); none = no
    #: forwarding
    url: str | None
    #: node: this node's hub token (better: $STARNODE_HUB_TOKEN)
    token: str | None
    #: node: measurements per push
    batch_size: int
    #: node: seconds between heartbeats
    heartbeat_interval: float
    #: node: seconds before the first retry of a failed push (doubles each time)
    retry_backoff: float
    #: node: longest wait between retries (seconds)
    max_backoff: float
    #: node: seconds per hub request
    http_timeout: float
    #: node: seconds 'starnode process' spends at its end pushing what is queued (the rest goes
    #: with the next run)
    flush_timeout: float
    #: hub: SQLAlchemy URL (postgresql://... in production; default: a SQLite file hub.sqlite3 in
    #: data_dir)
    database_url: str | None
    #: hub: HOST:PORT to serve on (TLS: a reverse proxy in front, docs/hub.md)
    listen: str
    #: hub: uvicorn worker processes
    workers: int
    #: hub: measurements of a target from different nodes within this window are cross-checked
    window_minutes: float
    #: hub: nodes needed in a window for a consensus
    min_nodes: int
    #: hub: a point further than this many sigma (and than outlier_min_mag) from the consensus is
    #: flagged
    outlier_sigma: float
    #: hub: smallest difference flagged (mag)
    outlier_min_mag: float
    #: hub: a node's nightly offset beyond this many sigma (and offset_min_mag) holds the node for
    #: review
    offset_sigma: float
    #: hub: smallest nightly offset that holds a node (mag)
    offset_min_mag: float
    #: hub: largest request body accepted (KiB)
    max_body_kb: float
    #: hub: requests one node may make per minute
    rate_limit_per_minute: int
    #: hub: requests without a valid token one client address may make per minute
    unauthenticated_per_minute: int
    #: hub: seconds a request body may take to arrive
    body_timeout: float
    #: hub: #DATE of members' reports
    date_type: Literal["HJD", "JD"]
    #: hub: time step of the nightly allocation's visibility grid (minutes)
    plan_step_minutes: float
    #: hub: a node is given a target only if it can observe it this long in one stretch (minutes)
    plan_min_window_minutes: float
    #: hub: dark time per target when counting how many targets a node can take in a night
    #: (minutes)
    plan_slot_minutes: float
    #: hub: nodes asked to observe each alert target (where that many can see it)
    plan_alert_nodes: int
    #: hub: allocate a night this long before the first node's dusk (hours)
    plan_lead_hours: float
    #: hub: seconds between the server's allocation checks (0: never automatically)
    plan_interval: float
    #: hub: a node silent for longer gets nothing in the allocation (seconds)
    plan_max_heartbeat_age: float


class TypedConfig:
    """The typed face of :class:`starnode.config.Config`: the top-level keys and one
    attribute per section."""

    #: where the ledger, caches, outbox and logs live (default: $STARNODE_DATA_DIR or
    #: ~/.local/share/starnode)
    data_dir: Path
    #: frames measured in parallel (processes)
    workers: int
    #: console log level
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    #: seconds a worker may spend on one frame before it is stopped and the frame marked failed
    frame_timeout: float
    #: seconds a stopping node waits for frames in hand before putting them back in the queue
    shutdown_grace: float
    #: what to observe: [{name, ra, dec, brightest, faintest, cadence_days}, ...]; only the name is
    #: needed (VSX fills coordinates and range, cached for offline use), e.g. [{name: SS Cyg, ra:
    #: 325.678, dec: 43.586, brightest: 8.2, faintest: 12.4}]
    targets: list[Any]
    watch: WatchSettings
    limits: LimitsSettings
    starlists: StarlistsSettings
    node: NodeSettings
    camera: CameraSettings
    site: SiteSettings
    telescope: TelescopeSettings
    target_tool: TargetToolSettings
    planning: PlanningSettings
    catalogs: CatalogsSettings
    photometry: PhotometrySettings
    astrometry: AstrometrySettings
    quality: QualitySettings
    aavso: AavsoSettings
    hub: HubSettings
