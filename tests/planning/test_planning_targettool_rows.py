"""Target Tool rows, one rule at a time: names, positions, sections, magnitude range, cadence.

Why: ``parse_targets`` was split into one helper per part of a row (issue 18, radon
complexity); each rule is checked on its own here, beside the real answers of
``test_planning_targettool.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from starnode.errors import CatalogError
from starnode.planning.targettool import parse_targets

ROW = {"star_name": " RR Lyr ", "ra": "291.366", "dec": 42.784}


def one(row: dict[str, Any], section: str = "all") -> Any:
    got = parse_targets([row], section)
    return got[0] if got else None


@pytest.mark.parametrize("row", [
    {**ROW, "star_name": ""}, {**ROW, "star_name": None, "name": "  "},
    {**ROW, "ra": None}, {**ROW, "dec": "x"}, {**ROW, "ra": 360.0}, {**ROW, "ra": -0.1},
    {**ROW, "dec": 90.5}, {**ROW, "dec": -91}, {**ROW, "ra": float("nan")},
])
def test_rows_without_a_name_or_a_valid_position_are_skipped(row: dict[str, Any]) -> None:
    assert one(row) is None


def test_a_row_and_its_fallback_keys() -> None:
    c = one(ROW)
    assert (c.name, c.ra_deg, c.dec_deg, c.brightest, c.faintest, c.alert, c.priority,
            c.cadence_days, c.source) == ("RR Lyr", 291.366, 42.784, None, None, False, False,
                                          None, "target-tool:all")
    c = one({"name": "X", "ra_deg": 0.0, "DEC": -90, "maxmag": "7.1", "minmag": 8,
             "cadence": "3", "priority": "Yes"})
    assert (c.name, c.ra_deg, c.dec_deg, c.brightest, c.faintest, c.cadence_days,
            c.priority) == ("X", 0.0, -90.0, 7.1, 8.0, 3.0, True)


def test_the_magnitude_range_is_put_in_order() -> None:
    c = one({**ROW, "max_mag": 12.0, "min_mag": 9.5})
    assert (c.brightest, c.faintest) == (9.5, 12.0)
    c = one({**ROW, "max_mag": 12.0})
    assert (c.brightest, c.faintest) == (12.0, None)
    c = one({**ROW, "faintest": 12.0, "priority": 0})
    assert (c.brightest, c.faintest, c.priority) == (None, 12.0, False)


@pytest.mark.parametrize(("sections", "section", "alert"), [
    (None, "ac", True), ("Alerts", "all", True), (["x", "Campaign 3"], "all", True),
    ("general", "all", False), ([], "all", False), (["alert"], "all", True),
])
def test_alert_or_campaign_from_the_section_or_the_row(sections: Any, section: str,
                                                       alert: bool) -> None:
    c = one({**ROW, "obs_section": sections}, section)
    assert c.alert is alert and c.source == f"target-tool:{section}"


def test_answers_that_are_not_lists_of_targets() -> None:
    assert [c.name for c in parse_targets({"targets": [ROW, "junk", 3, ROW]}, "all")] == \
        ["RR Lyr", "RR Lyr"]
    for bad in ({"targets": {}}, {"stars": []}, "targets", None, 3):
        with pytest.raises(CatalogError, match="no list of targets"):
            parse_targets(bad, "all")
