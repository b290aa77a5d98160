"""The telescope, targets, target_tool and planning sections: defaults, clear errors."""

from __future__ import annotations

import pytest

from starnode.config import Config
from starnode.config.schema import secret_keys
from starnode.errors import ConfigError


def test_defaults_are_the_issues_interface() -> None:
    cfg = Config({})
    tel = cfg.telescope
    assert (tel.driver, tel.address, tel.telescope_device, tel.camera_device, tel.motion) == (
        "none", "127.0.0.1:32323", 0, 0, False)
    assert (tel.sun_limit, tel.min_altitude, tel.max_altitude, tel.horizon, tel.model) == (
        -12.0, 30.0, 80.0, [], None)
    assert cfg.targets == [] and cfg.target_tool.key == ""
    assert ("target_tool", "key") in secret_keys() and ("hub", "token") in secret_keys()


def test_a_valid_station() -> None:
    cfg = Config({"telescope": {"driver": "alpaca", "address": "192.168.1.20:32323",
                                "motion": True, "horizon": [[0, 20], [180, 35.5]],
                                "model": "s30pro"},
                  "targets": ["SS Cyg", {"name": "RS Oph", "ra": 267.555, "dec": -6.708},
                              {"name": "T CrB", "brightest": 2.0, "faintest": 10.8,
                               "cadence_days": 0.5}],
                  "target_tool": {"key": "abc"}})
    assert cfg.telescope.model == "s30pro" and len(cfg.targets) == 3


@pytest.mark.parametrize(("raw", "message"), [
    ({"telescope": {"driver": "ascom"}}, "telescope.driver: must be one of none, alpaca"),
    ({"telescope": {"address": "seestar.local"}}, "telescope.address: must be HOST:PORT"),
    ({"telescope": {"address": "1.2.3.4:99999"}}, "telescope.address: must be HOST:PORT"),
    ({"telescope": {"motion": "yes"}}, "telescope.motion: must be true or false"),
    ({"telescope": {"sun_limit": 5}}, "telescope.sun_limit: must be <= 0"),
    ({"telescope": {"min_altitude": -5}}, "telescope.min_altitude: must be >= 0"),
    ({"telescope": {"horizon": [[0, 20], [400, 10]]}}, "entry 2: azimuth must be 0-360"),
    ({"telescope": {"horizon": [[0, 20, 3]]}}, "entry 1 must be [azimuth, altitude]"),
    ({"telescope": {"model": "s100"}}, "telescope.model: must be one of s50, s30, s30pro"),
    ({"telescope": {"park": True}}, "unknown key 'telescope.park'"),
    ({"targets": {"name": "SS Cyg"}}, "targets: must be a list"),
    ({"targets": [{"ra": 1.0, "dec": 2.0}]}, "entry 1 needs a name"),
    ({"targets": [{"name": "X", "ra": 1.0}]}, "give both ra and dec"),
    ({"targets": [{"name": "X", "dec": 95.0, "ra": 1.0}]}, "dec must be in -90..90"),
    ({"targets": [{"name": "X", "brightest": 12, "faintest": 9}]}, "brightest (12) must be"),
    ({"targets": [{"name": "X", "mag": 12}]}, "unknown key(s) mag"),
    ({"target_tool": {"token": "x"}}, "unknown key 'target_tool.token'"),
    ({"telescope": {"min_altitude": 60, "max_altitude": 50}},
     "telescope.min_altitude (60) must be below telescope.max_altitude (50)"),
    ({"planning": {"slot_minutes": 5}}, "planning.min_slot_minutes: must not exceed"),
])
def test_bad_values_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Config(raw)
    assert message in str(exc.value)


def test_a_bad_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as exc:
        Config({"target_tool": {"key": 987654321}})
    assert "987654321" not in str(exc.value) and "target_tool.key" in str(exc.value)
