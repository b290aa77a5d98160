"""The ``telescope:`` section and the site as one typed object (:class:`TelescopeSettings`).

Read once where the program starts (:meth:`TelescopeSettings.from_config`); the driver, the
safety manager and the runner take this object, never the raw configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..instruments import Instrument, profile

__all__ = ["Site", "TelescopeSettings"]


@dataclass(frozen=True)
class Site:
    """Where the telescope stands (degrees east-positive, metres)."""

    lat_deg: float
    lon_deg: float
    height_m: float = 0.0


@dataclass(frozen=True)
class TelescopeSettings:
    """``telescope.*`` (docs/telescope.md) plus the configured site (None: not configured)."""

    driver: str = "none"
    address: str = "127.0.0.1:32323"
    telescope_device: int = 0
    camera_device: int = 0
    motion: bool = False
    sun_limit: float = -12.0
    min_altitude: float = profile("s50").min_altitude_deg
    max_altitude: float = profile("s50").max_altitude_deg
    horizon: tuple[tuple[float, float], ...] = ()
    model: str = "s50"
    site: Site | None = None
    watch_path: str | None = None
    data_dir: str | None = None

    @property
    def instrument(self) -> Instrument:
        """The model's profile (:mod:`starnode.instruments`): the header cards a frame needs."""
        return profile(self.model)

    @classmethod
    def from_config(cls, cfg: Any) -> TelescopeSettings:
        """From a :class:`~starnode.config.Config` (its ``telescope``, ``site``, ``watch``)."""
        t = cfg.telescope
        site = None
        if cfg.site.latitude is not None and cfg.site.longitude is not None:
            lon = float(cfg.site.longitude)
            site = Site(float(cfg.site.latitude), lon - 360.0 if lon > 180 else lon,
                        float(cfg.site.elevation or 0.0))
        return cls(driver=str(t.driver), address=str(t.address),
                   telescope_device=int(t.telescope_device), camera_device=int(t.camera_device),
                   motion=bool(t.motion), sun_limit=float(t.sun_limit),
                   min_altitude=float(t.min_altitude), max_altitude=float(t.max_altitude),
                   horizon=tuple((float(a), float(h)) for a, h in t.horizon),
                   model=str(t.model or "s50"), site=site,
                   watch_path=str(cfg.watch.path) if cfg.watch.path else None,
                   data_dir=str(cfg.data_dir))
