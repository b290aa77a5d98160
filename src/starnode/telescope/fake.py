"""A fake Alpaca telescope and camera on loopback, with faults to inject (tests, benches, demo).

Stdlib only (:class:`http.server.ThreadingHTTPServer`), speaking the Alpaca REST API that
``alpyca`` uses (``/api/v1/telescope/0/...``, ``/api/v1/camera/0/...``, ``/management/...``),
ImageBytes for images. Time is the runner's :class:`~starnode.telescope.clock.Clock`, so slews,
parks and exposures take simulated time and a whole night runs in seconds.

Faults (attributes of :class:`Faults`, changed at any moment by a test): a slew that never ends,
``AtPark`` stuck false, HTTP 500 on chosen methods, answers that hang (client timeouts), the
server going down (connection refused/reset: "dropped mid-exposure" with ``drop_on_exposure``),
``ImageReady`` never true, a clock jump when an exposure starts, and the weather (a
SafetyMonitor whose ``IsSafe`` turns false, ObservingConditions with rain or cloud).

Every PUT the fake receives is recorded in :attr:`FakeAlpaca.received` with the simulated time,
so a test asserts what the *mount* was told, not what the client meant to say.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from .clock import Clock

log = logging.getLogger(__name__)

__all__ = ["FakeAlpaca", "Faults", "Received"]

#: ``image(ra_deg, dec_deg, exposure_s, start) -> (rows, columns) uint16``.
ImageFactory = Callable[[float, float, float, datetime], np.ndarray]


@dataclass
class Faults:
    """What goes wrong (all off by default)."""

    slew_never_ends: bool = False
    atpark_stuck_false: bool = False
    http500: set[str] = field(default_factory=set)  # method names, or "*"
    hang: set[str] = field(default_factory=set)  # method names answered after hang_s
    hang_s: float = 2.0
    fail_next: dict[str, int] = field(default_factory=dict)  # method -> the next N get 500
    down: bool = False  # every request: connection closed without an answer
    drop_on_exposure: bool = False  # goes down right after a startexposure
    drop_for_s: float | None = None  # ... and comes back after this many (clock) seconds
    up_at: datetime | None = None
    imageready_never: bool = False
    jump_on_exposure_s: float = 0.0  # the clock jumps when an exposure starts (once)
    equatorial_system: int = 1  # 1 topocentric (JNow), 2 J2000, 0 other
    unsafe: bool = False  # the SafetyMonitor's IsSafe is false
    rain_rate: float = 0.0  # ObservingConditions: mm/h
    cloud_cover: float = 0.0  # ObservingConditions: percent


@dataclass(frozen=True)
class Received:
    """One command the fake received."""

    t: datetime
    device: str
    method: str
    params: dict[str, str]


class _State:
    def __init__(self) -> None:
        self.connected = {"telescope": False, "camera": False, "safetymonitor": False,
                          "observingconditions": False}
        self.parked = True
        self.tracking = False
        self.ra_h = 0.0
        self.dec = 90.0
        self.slew_end: datetime | None = None
        self.park_end: datetime | None = None
        self.exp_end: datetime | None = None
        self.exp_start: datetime | None = None
        self.exp_s = 0.0
        self.image: np.ndarray | None = None


def _value(v: Any) -> bytes:
    return json.dumps({"Value": v, "ClientTransactionID": 0, "ServerTransactionID": 0,
                       "ErrorNumber": 0, "ErrorMessage": ""}).encode()


def _error(n: int, msg: str) -> bytes:
    return json.dumps({"ClientTransactionID": 0, "ServerTransactionID": 0, "ErrorNumber": n,
                       "ErrorMessage": msg}).encode()


class FakeAlpaca:
    """The fake server. ``with FakeAlpaca(clock) as fake: fake.address`` (``127.0.0.1:PORT``).

    Parameters
    ----------
    clock : Clock
        Simulated (or real) time for slews, parks and exposures.
    slew_s, park_s : float
        Simulated seconds a slew / a park takes.
    image : callable, optional
        The camera's picture (default: a small noise frame).
    """

    def __init__(self, clock: Clock, *, slew_s: float = 15.0, park_s: float = 10.0,
                 image: ImageFactory | None = None, shape: tuple[int, int] = (16, 24)) -> None:
        self.clock = clock
        self.slew_s, self.park_s = slew_s, park_s
        self.faults = Faults()
        self.st = _State()
        self.received: list[Received] = []
        self._image = image or self._noise
        self._shape = shape
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAlpaca:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-alpaca",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _noise(self, ra: float, dec: float, exposure_s: float, start: datetime) -> np.ndarray:
        rng = np.random.default_rng(int(start.timestamp()))
        return rng.integers(900, 1100, size=self._shape).astype(np.uint16)

    def commands(self, device: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if device is None or r.device == device]

    # the device model ----------------------------------------------------------------
    def _settle(self, now: datetime) -> None:
        st = self.st
        if st.slew_end is not None and now >= st.slew_end and not self.faults.slew_never_ends:
            st.slew_end = None
        if st.park_end is not None and now >= st.park_end:
            st.park_end = None
            if not self.faults.atpark_stuck_false:
                st.parked = True

    def get(self, device: str, method: str) -> Any:
        now = self.clock.now()
        with self._lock:
            self._settle(now)
            st = self.st
            if device == "telescope":
                return self._get_telescope(method, now)
            if device in ("safetymonitor", "observingconditions"):
                return self._get_weather(device, method)
            values: dict[str, Any] = {
                "connected": st.connected["camera"], "connecting": False,
                "imageready": (not self.faults.imageready_never and st.exp_end is not None
                               and now >= st.exp_end),
                "camerastate": self._camera_state(now),
                "cameraxsize": self._shape[1], "cameraysize": self._shape[0],
                "sensortype": 2, "name": "starnode fake camera", "interfaceversion": 3,
                "gain": 80, "bayeroffsetx": 0, "bayeroffsety": 0,
            }
            if method not in values:
                raise KeyError(method)
            return values[method]

    def _get_weather(self, device: str, method: str) -> Any:
        f = self.faults
        values: dict[str, Any] = {"connected": self.st.connected[device], "connecting": False,
                                  "name": f"starnode fake {device}", "interfaceversion": 2}
        if device == "safetymonitor":
            values["issafe"] = not f.unsafe
        else:
            values.update(rainrate=f.rain_rate, cloudcover=f.cloud_cover)
        if method not in values:
            raise KeyError(method)
        return values[method]

    def _camera_state(self, now: datetime) -> int:
        """ASCOM CameraState: 0 idle, 2 exposing, 3 reading (an image that never comes)."""
        st = self.st
        if st.exp_end is None:
            return 0
        if now < st.exp_end:
            return 2
        return 3 if self.faults.imageready_never else 0

    def _get_telescope(self, method: str, now: datetime) -> Any:
        st = self.st
        values: dict[str, Any] = {
            "connected": st.connected["telescope"], "connecting": False,
            "atpark": st.parked, "slewing": st.slew_end is not None or st.park_end is not None,
            "tracking": st.tracking, "rightascension": st.ra_h, "declination": st.dec,
            "equatorialsystem": self.faults.equatorial_system, "alignmentmode": 0,
            "canpark": True, "canunpark": True, "cansettracking": True, "canslewasync": True,
            "name": "starnode fake telescope", "interfaceversion": 4,
        }
        if method not in values:
            raise KeyError(method)
        return values[method]

    def put(self, device: str, method: str, p: dict[str, str]) -> tuple[int, str]:
        """Returns (ASCOM error number, message)."""
        now = self.clock.now()
        with self._lock:
            self.received.append(Received(now, device, method, dict(p)))
            self._settle(now)
            if method == "connected":
                self.st.connected[device] = p.get("Connected", "").lower() == "true"
                return 0, ""
            if device == "telescope":
                return self._put_telescope(method, p, now)
            if device != "camera":
                return 0x400, f"{method} not implemented"
            return self._put_camera(method, p, now)

    def _put_telescope(self, method: str, p: dict[str, str], now: datetime) -> tuple[int, str]:
        st = self.st
        if not st.connected["telescope"]:
            return 0x407, "not connected"
        if method == "unpark":
            st.parked = False
        elif method == "park":
            st.tracking = False
            st.slew_end = None
            st.park_end = now + timedelta(seconds=self.park_s)
        elif method == "tracking":
            if st.parked:
                return 0x408, "parked"
            st.tracking = p.get("Tracking", "").lower() == "true"
        elif method == "slewtocoordinatesasync":
            if st.parked:
                return 0x408, "parked"
            st.ra_h, st.dec = float(p["RightAscension"]), float(p["Declination"])
            st.slew_end = now + timedelta(seconds=self.slew_s)
        elif method == "abortslew":
            if st.parked:
                return 0x408, "parked"
            st.slew_end = None
        else:
            return 0x400, f"{method} not implemented"
        return 0, ""

    def _put_camera(self, method: str, p: dict[str, str], now: datetime) -> tuple[int, str]:
        st = self.st
        if not st.connected["camera"]:
            return 0x407, "not connected"
        if method == "startexposure":
            st.exp_s = float(p["Duration"])
            st.exp_start = now
            st.exp_end = now + timedelta(seconds=st.exp_s)
            st.image = None
            if self.faults.drop_on_exposure:
                self.faults.drop_on_exposure = False
                self.faults.down = True
                if self.faults.drop_for_s is not None:
                    self.faults.up_at = now + timedelta(seconds=self.faults.drop_for_s)
            if self.faults.jump_on_exposure_s and hasattr(self.clock, "jump"):
                self.clock.jump(self.faults.jump_on_exposure_s)
                self.faults.jump_on_exposure_s = 0.0
        elif method in ("abortexposure", "stopexposure"):
            st.exp_end = None
        else:
            return 0x400, f"{method} not implemented"
        return 0, ""

    def image_bytes(self) -> bytes | None:
        with self._lock:
            st = self.st
            if st.exp_end is None or st.exp_start is None or self.clock.now() < st.exp_end:
                return None
            if st.image is None:
                st.image = np.asarray(self._image(st.ra_h * 15.0, st.dec, st.exp_s,
                                                  st.exp_start), dtype=np.uint16)
            img = st.image
        xy = np.ascontiguousarray(img.T).astype("<u2")  # Alpaca: [x][y]
        head = np.array([1, 0, 0, 0, 44, 8, 8, 2, xy.shape[0], xy.shape[1], 0], dtype="<i4")
        return head.tobytes() + xy.tobytes()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one small answer must not wait 40 ms for a delayed ACK
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)

    @property
    def fake(self) -> FakeAlpaca:
        return self.server.fake  # type: ignore[attr-defined,no-any-return]

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("fake alpaca: " + fmt, *args)

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> tuple[str, str] | None:
        parts = urlparse(self.path).path.strip("/").split("/")
        if len(parts) == 5 and parts[0] == "api" and parts[2] in (
                "telescope", "camera", "safetymonitor", "observingconditions"):
            return parts[2], parts[4].lower()
        return None

    def _routed(self) -> tuple[str, str] | None:
        """The request's (device, method); None once answered (404, or an injected fault)."""
        route = self._route()
        if route is None:
            self._send(404, b"not found", "text/plain")
            return None
        return None if self._faulty(route[1]) else route

    def _faulty(self, method: str) -> bool:
        fake = self.fake
        f = fake.faults
        if f.down and f.up_at is not None and fake.clock.now() >= f.up_at:
            f.down, f.up_at = False, None
        if f.down:
            self.close_connection = True
            self.connection.close()
            return True
        if method in f.hang or "*" in f.hang:
            time.sleep(f.hang_s)
        if f.fail_next.get(method, 0) > 0:
            f.fail_next[method] -= 1
            self._send(500, b"injected failure", "text/plain")
            return True
        if method in f.http500 or "*" in f.http500:
            self._send(500, b"injected failure", "text/plain")
            return True
        return False

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path.startswith("/management/"):
            if self.fake.faults.down:
                self.connection.close()
                return
            devs = [{"DeviceName": "fake", "DeviceType": t, "DeviceNumber": 0,
                     "UniqueID": f"fake-{t}"} for t in ("Telescope", "Camera", "SafetyMonitor",
                                                        "ObservingConditions")]
            value: Any = [1] if path.endswith("apiversions") else devs
            self._send(200, _value(value))
            return
        route = self._routed()
        if route is None:
            return
        device, method = route
        if device == "camera" and method == "imagearray":
            body = self.fake.image_bytes()
            if body is None:
                self._send(200, _error(0x40B, "no image"))
            else:
                self._send(200, body, "application/imagebytes")
            return
        try:
            self._send(200, _value(self.fake.get(device, method)))
        except KeyError:
            self._send(200, _error(0x400, f"{method} not implemented"))

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        route = self._routed()
        if route is None:
            return
        device, method = route
        params = {k: v[0] for k, v in parse_qs(body).items()}
        err, msg = self.fake.put(device, method, params)
        self._send(200, _error(err, msg))
