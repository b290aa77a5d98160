"""The weather as a fact: an ASCOM Alpaca SafetyMonitor or ObservingConditions device says
whether it is safe to observe (``telescope.weather``), never a score.

A veto stops new items and parks the telescope (the runner's rule W1, docs/telescope.md); it
reaches the hub in the heartbeat's ``weather`` field, so the allocation moves this node's wishes
to another node. **Fail closed**: a weather device that does not answer, or answers nonsense,
is a veto ("the weather source does not answer"), since a rain sensor that is down cannot say
it is dry.
"""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["AlpacaWeather", "weather_from_config"]


class AlpacaWeather:
    """A SafetyMonitor (``IsSafe``) or ObservingConditions (``RainRate``, ``CloudCover``)
    device on an Alpaca server.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` of the Alpaca server.
    device : int
        Alpaca device number.
    kind : str
        ``safetymonitor`` or ``observingconditions``.
    max_cloud : float
        ObservingConditions: a cloud cover above this (percent) is a veto.
    http_timeout_s : float
        Longest wait for an answer (a longer one is a veto).
    """

    def __init__(self, address: str, device: int = 0, kind: str = "safetymonitor", *,
                 max_cloud: float = 50.0, http_timeout_s: float = 5.0) -> None:
        if kind not in ("safetymonitor", "observingconditions"):
            raise ValueError(f"telescope.weather_kind {kind!r}: safetymonitor or "
                             "observingconditions")
        self.address, self.device, self.kind = address, int(device), kind
        self.max_cloud = float(max_cloud)
        self.http_timeout_s = float(http_timeout_s)
        self._dev: Any = None

    def _device(self) -> Any:
        if self._dev is None:
            from alpaca.observingconditions import ObservingConditions
            from alpaca.safetymonitor import SafetyMonitor

            from .alpaca import _TimeoutSession

            cls = SafetyMonitor if self.kind == "safetymonitor" else ObservingConditions
            dev = cls(self.address, self.device)
            dev.rqs = _TimeoutSession(self.http_timeout_s)
            dev.Connected = True
            self._dev = dev
        return self._dev

    def veto(self) -> tuple[bool, str | None]:
        """``(True, why)`` when it is not safe (or the device cannot say), else
        ``(False, None)``."""
        try:
            dev = self._device()
            if self.kind == "safetymonitor":
                if bool(dev.IsSafe) is True:
                    return False, None
                return True, "the safety monitor says unsafe (IsSafe false)"
            rain = float(dev.RainRate)
            if not math.isfinite(rain) or rain > 0.0:
                return True, f"rain ({rain:g} mm/h)"
            cloud = float(dev.CloudCover)
            if not math.isfinite(cloud) or cloud > self.max_cloud:
                return True, f"cloud cover {cloud:.0f}% (the limit is {self.max_cloud:g}%)"
            return False, None
        except Exception as exc:  # fail closed: a sensor that is down cannot say it is dry
            self._dev = None
            log.warning("weather: %s %d does not answer: %s", self.kind, self.device, exc)
            return True, f"the weather source does not answer ({type(exc).__name__})"


def weather_from_config(cfg: Any) -> AlpacaWeather | None:
    """The configured weather source (``telescope.weather``), or None (``none``)."""
    tel = cfg.telescope
    kind = str(tel.get("weather", "none") or "none")
    if kind == "none":
        return None
    address = str(tel.get("weather_address") or tel.get("address"))
    return AlpacaWeather(address, int(tel.get("weather_device", 0)),
                         str(tel.get("weather_kind", "safetymonitor")),
                         max_cloud=float(tel.get("weather_max_cloud", 50.0)))
