"""AAVSO VSP: the comparison sequence of a field (``chart`` API, JSON), through the cache."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.util.values import normalize_name

from .fetch import CLIENT, cached
from .sequences import parse_vsp_chart
from .types import Sequence, Target, at, field_request, snippet

__all__ = ["vsp_sequence"]


def _vsp_parse(data: Any, origin: str) -> Sequence:
    if isinstance(data, Mapping) and "photometry" not in data:
        for key in ("errors", "error", "detail", "message"):
            if key in data:
                raise CatalogError(f"VSP says: {snippet(json.dumps(data[key]))}{at(origin)}")
    seq = parse_vsp_chart(data, origin=origin)
    if seq.comps and not seq.chart_id:
        raise CatalogError(f"VSP answer has comparison stars but no chartid{at(origin)}")
    return seq


def vsp_sequence(config: Config, target: Target, *, fov_arcmin: float,
                 maglimit: float | None = None) -> Sequence:
    """The VSP chart of the target's field (cache first); may have no comps (no sequence).

    Asks by name (``star=``) for a target AAVSO named (source vsx/sequence), else by position
    (``ra=``/``dec=`` in degrees). ``fov_arcmin`` is rounded up to whole arcminutes.
    """
    ph = config.catalogs
    fov, mlim = field_request(fov_arcmin, maglimit, ph.maglimit)
    url = ph.vsp_url
    params: dict[str, Any] = {"fov": f"{fov:g}", "maglimit": f"{mlim:g}", "format": "json"}
    if target.source in ("vsx", "sequence"):
        params["star"] = target.name
        key = f"star={normalize_name(target.name)}|fov={fov:g}|maglimit={mlim:g}"
    else:
        params["ra"] = f"{target.ra_deg:.5f}"
        params["dec"] = f"{target.dec_deg:.5f}"
        key = f"ra={target.ra_deg:.3f}|dec={target.dec_deg:.3f}|fov={fov:g}|maglimit={mlim:g}"

    def fetch() -> tuple[Any, str]:
        return CLIENT.get_json(config, url, params, what="VSP"), url

    got = cached(config, "vsp", key, what="VSP chart", fetch=fetch,
                  parse=lambda d: _vsp_parse(d, url))
    seq: Sequence = got.value
    extra = dict(seq.extra)
    extra.update({"fetched_at": got.fetched_at, "cache": got.origin, "request": key})
    return Sequence(source="vsp", comps=seq.comps, chart_id=seq.chart_id,
                    star=seq.star or target.name, star_auid=seq.star_auid or target.auid,
                    star_ra_deg=seq.star_ra_deg, star_dec_deg=seq.star_dec_deg,
                    fov_arcmin=seq.fov_arcmin or fov, maglimit=seq.maglimit or mlim,
                    origin=url if got.origin == "network" else f"{got.origin}: {got.url or url}",
                    extra=extra)
