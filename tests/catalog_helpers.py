"""Shared pieces of the catalogue tests: answers shaped as the AAVSO services give them."""

from __future__ import annotations

from typing import Any


def vsp_chart(entries: list[dict[str, Any]], star: str, chart_id: str) -> dict[str, Any]:
    """A VSP API answer around a bare comparison list (shared/data/vsp/README.md)."""
    return {"chartid": chart_id, "image_uri": f"https://apps.aavso.org/vsp/chart/{chart_id}.png",
            "star": star, "fov": 60.0, "maglimit": 15.0, "title": "", "comment": "",
            "resolution": 150, "dss": False, "special": None, "photometry": entries}
