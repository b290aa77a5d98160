"""A simulated network for the allocation's tests and benchmark: 50 nodes at real-world sites
(both hemispheres, all longitudes), a reproducible sky of candidate targets, three alerts on
real variable stars; registered in a hub with the heartbeats the nodes would send.
"""

from __future__ import annotations

import math
import random
from typing import Any

from ..instruments import profile

__all__ = ["ALERTS", "SITES", "candidate_targets", "register_network"]

#: (name, latitude, longitude, height m): observatories and cities, 50 of them.
SITES: tuple[tuple[str, float, float, float], ...] = (
    ("paris", 48.85, 2.35, 35), ("london", 51.50, -0.13, 11), ("madrid", 40.42, -3.70, 650),
    ("rome", 41.90, 12.50, 21), ("berlin", 52.52, 13.40, 34), ("athens", 37.98, 23.73, 70),
    ("helsinki", 60.17, 24.94, 17), ("lisbon", 38.72, -9.14, 50), ("vienna", 48.21, 16.37, 190),
    ("warsaw", 52.23, 21.01, 100), ("la-palma", 28.76, -17.89, 2396),
    ("reykjavik", 64.15, -21.94, 20), ("new-york", 40.71, -74.01, 10),
    ("tucson", 32.22, -110.97, 728), ("denver", 39.74, -104.99, 1609),
    ("toronto", 43.65, -79.38, 76), ("mexico-city", 19.43, -99.13, 2240),
    ("vancouver", 49.28, -123.12, 70), ("miami", 25.76, -80.19, 2), ("honolulu", 21.31, -157.86, 5),
    ("anchorage", 61.22, -149.90, 31), ("bogota", 4.71, -74.07, 2640),
    ("lima", -12.05, -77.04, 154), ("santiago", -33.45, -70.67, 570),
    ("la-serena", -29.90, -71.25, 28), ("buenos-aires", -34.60, -58.38, 25),
    ("sao-paulo", -23.55, -46.63, 760), ("montevideo", -34.90, -56.16, 43),
    ("cape-town", -33.92, 18.42, 15), ("sutherland", -32.38, 20.81, 1798),
    ("nairobi", -1.29, 36.82, 1795), ("cairo", 30.04, 31.24, 23), ("windhoek", -22.56, 17.08, 1655),
    ("lagos", 6.52, 3.38, 41), ("tokyo", 35.68, 139.69, 40), ("beijing", 39.90, 116.40, 44),
    ("mumbai", 19.08, 72.88, 14), ("delhi", 28.61, 77.21, 216), ("tel-aviv", 32.08, 34.78, 5),
    ("almaty", 43.24, 76.95, 800), ("singapore", 1.35, 103.82, 15),
    ("bangkok", 13.75, 100.50, 2), ("seoul", 37.57, 126.98, 38), ("sydney", -33.87, 151.21, 58),
    ("perth", -31.95, 115.86, 31), ("auckland", -36.85, 174.76, 196),
    ("siding-spring", -31.27, 149.07, 1165), ("hobart", -42.88, 147.33, 51),
    ("alice-springs", -23.70, 133.88, 545), ("kathmandu", 27.72, 85.32, 1400),
)

#: (name, ra, dec) ICRS degrees: three alerts on real variable stars.
ALERTS: tuple[tuple[str, float, float], ...] = (
    ("SS Cyg", 325.6785, 43.5862), ("T CrB", 239.8757, 25.9203), ("RS Oph", 267.5549, -6.7079),
)


def candidate_targets(n: int = 497, seed: int = 21) -> list[dict[str, Any]]:
    """``n`` reproducible targets spread evenly over the sky, with ranges.

    Parameters
    ----------
    n : int
        How many.
    seed : int
        The random seed.

    Returns
    -------
    list of dict
        ``name``, ``ra``, ``dec``, ``brightest``, ``faintest``, ``cadence_days``.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        bright = round(rng.uniform(6.0, 13.0), 1)
        out.append({"name": f"SIM V{i:03d}", "ra": round(rng.uniform(0.0, 360.0), 4),
                    "dec": round(math.degrees(math.asin(rng.uniform(-1.0, 1.0))), 4),
                    "brightest": bright, "faintest": round(bright + rng.uniform(0.5, 4.0), 1),
                    "cadence_days": rng.choice([1.0, 2.0, 5.0, None])})
    return out


def heartbeat(name: str, lat: float, lon: float, height: float, i: int) -> dict[str, Any]:
    """The heartbeat node ``i`` of the simulated network sends: every fifth node has a horizon
    mask (trees to the south-east), every seventh a lower floor, all a Seestar's limits."""
    horizon = [[90.0, 35.0], [135.0, 50.0], [180.0, 40.0], [225.0, 20.0]] if i % 5 == 0 else []
    return {"schema_version": 2, "node": name, "version": "sim", "queue_length": 0,
            "site": {"latitude": lat, "longitude": lon, "height": height},
            "limits": {"sun_limit": -12.0, "min_altitude": 25.0 if i % 7 == 0 else 30.0,
                       "max_altitude": 80.0, "horizon": horizon},
            "instrument": {"model": profile("s50").name, "bright_limit": 7.0,
                           "faint_limit": 15.5}}


def register_network(store: Any, sites: tuple[tuple[str, float, float, float], ...] = SITES
                     ) -> dict[str, str]:
    """Register every site as a node of ``store`` and record its heartbeat.

    Parameters
    ----------
    store : HubStore
        The hub.
    sites : tuple
        ``(name, lat, lon, height)`` per node.

    Returns
    -------
    dict
        node name -> token.
    """
    from .wire import Heartbeat

    tokens = {}
    for i, (name, lat, lon, height) in enumerate(sites):
        tokens[name] = store.add_node(name, f"SIM{i:02d}")
        who = store.authenticate(tokens[name])
        store.heartbeat(who, Heartbeat.model_validate(heartbeat(name, lat, lon, height, i)))
    return tokens
