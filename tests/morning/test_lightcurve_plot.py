"""What the light-curve plot draws: points, limits, titles, the check-star panel and caption.

Why: ``morning.lightcurve`` was split into one helper per panel (issue 18, radon complexity);
these tests pin what each panel shows, read from the real matplotlib figure just before it is
closed, and the plot points read from real measurement records.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from starnode.morning import lightcurve
from starnode.records import CheckStar, CompResult, Measurement

RESULT = Path(__file__).parent.parent / "data" / "result-0.1.0.json"
T = 2460933.40  # 2025-09-14 21:36 UTC


def _pt(t: float, mag: float, quality: str, *, check: float | None = None,
        name: str | None = "119", cat: float | None = 11.866, chart: str | None = "X41941HP",
        reported: bool = True) -> dict[str, Any]:
    return {"t": t, "mag": mag, "err": 0.02, "quality": quality, "filter": "TG",
            "chart": chart, "check_mag": check, "check_cat": cat if check is not None else None,
            "check_err": 0.03, "check_name": name if check is not None else None,
            "comp_min": 10.5, "comp_max": 12.5, "reported": reported, "time_kind": "HJD"}


def _figure(monkeypatch: pytest.MonkeyPatch, points: list[dict[str, Any]],
            tmp_path: Path) -> Figure:
    """Draw, keeping the figure the plot closes."""
    seen: list[Figure] = []
    close = plt.close

    def keep(fig: Any = None) -> None:
        seen.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    out = tmp_path / "lc.png"
    lightcurve._draw(points, "SS Cyg", out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert len(seen) == 1
    return seen[0]


def test_one_panel_without_a_check_star(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    pts = [_pt(T, 11.0, "good"), _pt(T + 0.01, 11.2, "good", reported=False),
           _pt(T + 0.02, 11.4, "poor", chart=None)]
    fig = _figure(monkeypatch, pts, tmp_path)
    (ax,) = fig.axes
    assert ax.get_title() == "SS Cyg: 3 measurement(s), 2 in AAVSO reports  ·  chart X41941HP"
    assert ax.get_ylabel() == "magnitude (TG)"
    assert ax.get_xlabel() == "hours since HJD 2460932.5 (2025-09-14 0h UTC)"
    assert ax.get_ylim() == pytest.approx((11.42 + 0.28, 10.98 - 0.28))  # bright up, 1 mag
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["comparison stars 10.50-12.50", "SS Cyg (good, 2)", "SS Cyg (poor, 1)"]
    assert tuple(fig.get_size_inches()) == (9, 5)


def test_the_check_panel_and_its_caption(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    pts = [_pt(T, 11.0, "good", check=11.9), _pt(T + 0.01, 13.5, "acceptable", check=11.8),
           _pt(T + 0.02, 11.1, "good")]
    fig = _figure(monkeypatch, pts, tmp_path)
    ax, axk = fig.axes
    assert ax.get_xlabel() == "" and axk.get_xlabel().startswith("hours since HJD")
    assert ax.get_ylim() == pytest.approx((13.52 + 0.15, 10.98 - 0.15))  # the data fill it
    assert [t.get_text() for t in axk.texts] == ["check star 119 (V 11.866)"]
    assert axk.get_ylabel() == "check − catalogue\n(mag)"
    assert axk.yaxis_inverted()
    (bars,) = axk.containers
    assert list(bars.lines[0].get_ydata()) == pytest.approx([11.9 - 11.866, 11.8 - 11.866])
    assert list(bars.lines[0].get_xdata()) == pytest.approx([(T - 2460932.5) * 24,
                                                             (T + 0.01 - 2460932.5) * 24])
    assert tuple(fig.get_size_inches()) == (9, 6.5)
    two = [_pt(T, 11.0, "good", check=11.9), _pt(T + 0.01, 11.0, "good", check=12.0,
                                                  name="121", cat=None)]
    fig = _figure(monkeypatch, two, tmp_path)
    assert [t.get_text() for t in fig.axes[1].texts] == ["check stars 119, 121"]
    assert fig.axes[0].get_title() == "SS Cyg: 2 measurement(s), 2 in AAVSO reports  ·  " \
        "chart X41941HP"


def test_points_from_a_real_result() -> None:
    m = Measurement.from_dict(json.loads(RESULT.read_text()))
    p = lightcurve._point(m, True)
    assert p is not None
    assert (p["comp_min"], p["comp_max"]) == (None, None)  # its comps are none of them used
    m = replace(m, comps=[CompResult(catalog_mag=12.0, used=True),
                          CompResult(catalog_mag=9.0, used=False),
                          CompResult(catalog_mag=None, used=True),
                          CompResult(catalog_mag=10.5, used=True)])
    p = lightcurve._point(m, True)
    assert p is not None and (p["comp_min"], p["comp_max"]) == (10.5, 12.0)
    assert (p["check_mag"], p["check_cat"], p["check_err"], p["check_name"]) == \
        (11.8975, 11.866, 0.0403, "119")
    assert (p["mag"], p["time_kind"], p["chart"], p["reported"]) == \
        (m.magnitude, "HJD" if m.hjd else "JD", "X41941HP", True)
    bare = replace(m, check_star=None, comps=[CompResult(catalog_mag=None, used=True)],
                   uncertainty=None, quality_flag=None, filter="")
    q = lightcurve._point(bare, False)
    assert q is not None
    assert (q["check_mag"], q["check_cat"], q["check_err"], q["check_name"]) == \
        (None, None, 0.0, None)
    assert (q["comp_min"], q["comp_max"], q["err"], q["quality"], q["filter"]) == \
        (None, None, 0.0, "poor", None)
    unnamed = replace(m, check_star=CheckStar(name="000-X", mag=None, error=None))
    r = lightcurve._point(unnamed, False)
    assert r is not None and (r["check_name"], r["check_mag"], r["check_err"]) == \
        ("000-X", None, 0.0)
    assert lightcurve._point(replace(m, magnitude=float("nan")), True) is None
