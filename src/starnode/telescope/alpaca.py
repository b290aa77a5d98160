"""``telescope.driver: alpaca``: any ASCOM Alpaca telescope and camera through ``alpyca``
(``pip install 'starnode[telescope]'``), including the Seestar's own server on port 32323.

Coordinates are converted at send time from ICRS to the ``EquatorialSystem`` the mount reports
(:mod:`.coords`); an unknown system is refused. Images are fetched with ``application/
imagebytes`` when the server offers it (JSON otherwise) under our own timeout (alpyca's image
download has none). Every HTTP call has a timeout; a refused, reset or timed-out connection is
:class:`~.driver.ConnectionLost`, any other device error :class:`~.driver.DriverError`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import requests

from .clock import Clock
from .coords import SYSTEMS, UnknownSystem, to_mount
from .driver import ConnectionLost, Driver, DriverError, MountState
from .settings import Site

log = logging.getLogger(__name__)

__all__ = ["AlpacaDriver"]

T = TypeVar("T")
_ALIGN = {0: "altaz", 1: "polar", 2: "germanpolar"}
#: ImageBytes element types -> numpy dtypes (ASCOM ImageArrayElementTypes).
_DTYPES = {1: "<i2", 2: "<i4", 3: "<f8", 4: "<f4", 5: "<u8", 6: "<u1", 7: "<i8", 8: "<u2"}


class _TimeoutSession(requests.Session):
    """A session that never waits longer than ``cap`` seconds for an answer."""

    def __init__(self, cap: float) -> None:
        super().__init__()
        self.cap = cap

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        tmo = kwargs.get("timeout")
        kwargs["timeout"] = self.cap if tmo is None else min(float(tmo), self.cap)
        return super().request(*args, **kwargs)


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """alpyca and requests exceptions as :class:`DriverError` / :class:`ConnectionLost`."""
    from alpaca import exceptions as ax

    try:
        yield
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ConnectionLost(f"{what}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    except (ax.AlpacaRequestException, ax.DriverException, ax.InvalidOperationException,
            ax.InvalidValueException, ax.NotConnectedException, ax.NotImplementedException,
            ax.ParkedException, ax.ValueNotSetException, ax.SlavedException,
            ax.OperationCancelledException, ax.ActionNotImplementedException,
            requests.RequestException, ValueError, KeyError) as exc:
        raise DriverError(f"{what}: {type(exc).__name__}: {str(exc)[:300]}") from exc


class AlpacaDriver(Driver):
    """An Alpaca telescope and camera.

    Parameters
    ----------
    address : str
        ``HOST:PORT``.
    telescope_device, camera_device : int
        Alpaca device numbers.
    site : Site
        For the coordinate conversion.
    clock : Clock
        Times commands and polls.
    http_timeout_s : float
        Longest wait for any answer (images: ``image_timeout_s``).
    """

    name = "alpaca"

    def __init__(self, address: str, telescope_device: int, camera_device: int,
                 site: Site | None, clock: Clock, *, http_timeout_s: float = 10.0,
                 image_timeout_s: float = 120.0) -> None:
        super().__init__(site, clock)
        try:
            from alpaca.camera import Camera
            from alpaca.telescope import Telescope
        except ImportError as exc:  # pragma: no cover - the extra is not installed
            raise DriverError("the alpaca driver needs alpyca: pip install "
                              "'starnode[telescope]'") from exc
        self.address = address
        self.tel = Telescope(address, telescope_device)
        self.cam = Camera(address, camera_device)
        for dev in (self.tel, self.cam):
            dev.rqs = _TimeoutSession(http_timeout_s)
        self.image_timeout_s = image_timeout_s
        self._system: str | None = None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with _errors(what):
            return fn()

    def connect(self) -> None:
        self._log("telescope", "connect", address=self.address)

        def go() -> None:
            self.tel.Connected = True
            self.cam.Connected = True
            self._system = SYSTEMS.get(int(self.tel.EquatorialSystem), "other")

        self._call("connect", go)

    def disconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.tel.Connected = False
            self.cam.Connected = False

    def state(self) -> MountState:
        def read() -> MountState:
            t = self.tel
            system = SYSTEMS.get(int(t.EquatorialSystem), "other")
            self._system = system
            align = "unknown"
            with contextlib.suppress(Exception):
                align = _ALIGN.get(int(t.AlignmentMode), "unknown")
            return MountState(bool(t.Connected), bool(t.AtPark), bool(t.Slewing),
                              bool(t.Tracking), float(t.RightAscension) * 15.0,
                              float(t.Declination), system, align)

        return self._call("state", read)

    def is_slewing(self) -> bool:
        return self._call("slewing", lambda: bool(self.tel.Slewing))

    def is_parked(self) -> bool:
        return self._call("atpark", lambda: bool(self.tel.AtPark))

    def unpark(self) -> None:
        self._log("telescope", "unpark")
        self._call("unpark", self.tel.Unpark)

    def park(self) -> None:
        self._log("telescope", "park")
        self._call("park", self.tel.Park)

    def goto(self, ra_deg: float, dec_deg: float, name: str) -> None:
        if self.site is None:
            raise DriverError("no site: cannot convert coordinates")
        system = self._system or self.state().equatorial_system
        try:
            ra, dec = to_mount(ra_deg, dec_deg, system, self.clock.now(), self.site)
        except UnknownSystem as exc:
            raise DriverError(str(exc)) from exc
        self._log("telescope", "slewtocoordinatesasync", target=name,
                  RightAscension=f"{ra / 15:.5f}h", Declination=f"{dec:+.4f}", system=system)

        def go() -> None:
            with contextlib.suppress(Exception):
                if not self.tel.Tracking:
                    self.tel.Tracking = True
            self.tel.SlewToCoordinatesAsync(ra / 15.0, dec)

        self._call("slew", go)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.tel.Slewing:
                self._log("telescope", "abortslew")
                self.tel.AbortSlew()
        with contextlib.suppress(Exception):
            if int(self.cam.CameraState) in (1, 2, 3):  # waiting, exposing, reading
                self._log("camera", "abortexposure")
                self.cam.AbortExposure()

    def start_exposure(self, seconds: float) -> None:
        self._log("camera", "startexposure", Duration=seconds, Light=True)
        self._call("startexposure", lambda: self.cam.StartExposure(seconds, True))

    def image_ready(self) -> bool:
        return self._call("imageready", lambda: bool(self.cam.ImageReady))

    def image(self) -> np.ndarray:
        self._log("camera", "imagearray")
        with _errors("imagearray"):
            r = self.cam.rqs.get(f"{self.cam.base_url}/imagearray",
                                 params={"ClientID": "1", "ClientTransactionID": "1"},
                                 headers={"accept": "application/imagebytes"},
                                 timeout=self.image_timeout_s)
            if r.status_code != 200:
                raise DriverError(f"imagearray: HTTP {r.status_code}")
            return _decode(r)


def _decode(r: requests.Response) -> np.ndarray:
    """An Alpaca image answer (ImageBytes or JSON, indexed [x][y]) as a (rows, columns) array."""
    if "application/imagebytes" in r.headers.get("content-type", ""):
        b = r.content
        head = np.frombuffer(b[:44], dtype="<i4")
        if head[1] != 0:
            raise DriverError(f"imagearray: error {head[1]}: {b[44:].decode(errors='replace')}")
        start, xmit, rank, d1, d2 = (int(v) for v in (head[4], head[6], head[7], head[8],
                                                      head[9]))
        if rank != 2 or xmit not in _DTYPES:
            raise DriverError(f"imagearray: rank {rank} / element type {xmit} not supported")
        a = np.frombuffer(b[start:], dtype=_DTYPES[xmit]).reshape(d1, d2)
    else:
        j = r.json()
        if j.get("ErrorNumber"):
            raise DriverError(f"imagearray: {j.get('ErrorMessage')}")
        a = np.asarray(j["Value"])
        if a.ndim != 2:
            raise DriverError(f"imagearray: rank {a.ndim} not supported")
    return np.ascontiguousarray(a.T)
