"""Shared by the AAVSO tests and the node tests that write reports: a photometry result with
every binding key (docs/INTERFACES.md), a configuration, and the data lines of a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

JD0 = 2460797.512345  # 2025-05-02 00:17:46 UTC


def make_result(**overrides: Any) -> dict[str, Any]:
    """A photometry result with every binding key (docs/INTERFACES.md)."""
    result: dict[str, Any] = {
        "magnitude": 11.234, "uncertainty": 0.021, "quality_flag": "good",
        "quality_reasons": [], "target_name": "SS Cyg", "auid": "000-BCP-220",
        "target_ra": 325.6792, "target_dec": 43.5861, "filter": "TG", "band": "V",
        "transformed": False, "jd": JD0, "hjd": JD0 + 0.003333, "time_uncertainty_s": 0.0,
        "exptime": 10.0, "airmass": 1.234, "fwhm": 3.1, "fwhm_arcsec": 7.4, "snr": 120.0,
        "instrumental_mag": -8.765, "comparison_stars": 4,
        "comps": [
            {"name": f"C{i}", "auid": f"000-BCP-{100 + i}", "label": str(110 + i),
             "catalog_mag": 11.0 + i / 10, "catalog_err": 0.02, "instrumental_mag": -9.0 + i / 10,
             "residual": 0.01, "used": True} for i in range(4)
        ],
        "zero_point": 20.0, "zp_error": 0.01, "zp_scatter": 0.02,
        "check_star": {"name": "K", "label": "114", "auid": "000-BCP-221", "mag": 11.42,
                       "catalog_mag": 11.40, "instrumental_mag": -8.58, "deviation": 0.02,
                       "error": 0.02},
        "chart_id": "X41941HP", "sequence_source": "vsp", "frame_kind": "sub",
        "file": "/data/MyWorks/SS Cyg_sub/Light_SS Cyg_10.0s_IRCUT_20250501-001741.fit",
        "object": "SS Cyg", "telescope": "Seestar S50",
        "astrometry": {"method": "header", "n_matched": 20, "rms_px": 0.3, "scale_arcsec": 2.4},
        "aperture": {"radius_px": 4.5, "annulus_in_px": 9.0, "annulus_out_px": 15.0},
    }
    result.update(overrides)
    return result


def make_config(tmp_path: Path, **aavso: Any) -> dict[str, Any]:
    section = {"observer_code": "ZZA"}
    section.update(aavso)
    return {"data_dir": str(tmp_path / "data"), "site": {"longitude": 10.0}, "aavso": section}


def data_lines(path: str | Path) -> list[str]:
    return [ln for ln in Path(path).read_text().splitlines() if not ln.startswith("#")]


def at(minutes: float, **overrides: Any) -> dict[str, Any]:
    """A result ``minutes`` after JD0."""
    jd = JD0 + minutes / 1440.0
    return make_result(jd=jd, hjd=jd + 0.003333, **overrides)


