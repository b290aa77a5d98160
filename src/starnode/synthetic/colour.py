"""A comparison sequence with a known spread of colours, for the colour-transformation tests.

Why: the bundled SS Cyg chart's comps carry catalogue errors of 0.03-0.08 mag, which (honestly)
keeps a per-frame colour-term fit above a 0.02 error; a test of the transformation needs comps
whose B-V spans a wide range with small errors, as a good VSP sequence from APASS offers. This
keeps the chart's stars and positions (so the astrometry still solves the frame) and gives its
comps new B magnitudes, spread evenly over ``bv_range`` in a seeded order, and small errors.

The scene renders each star per CFA colour from its V and B-V with known coefficients
(:func:`starnode.synthetic.scene._channel_mags`): ``g = V + colour_term ((B-V) - 0.6)``,
``b = V + 0.75 (B-V) + 0.30``, ``r = V - 0.55 (B-V) + 0.35``. So the true AAVSO coefficient
of the green plane is ``Tv_bv = -colour_term`` (``V - g = ZP + Tv_bv (B-V)``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..util.fsio import atomic_write
from .scene import DEMO_SEQUENCE_FILE

__all__ = ["colour_chart", "true_tv_bv", "write_colour_chart"]


def true_tv_bv(colour_term: float) -> float:
    """The green plane's true Tv_bv for the generator's ``colour_term`` option.

    Parameters
    ----------
    colour_term : float

    Returns
    -------
    float
    """
    return -float(colour_term)


def _set_band(bands: list[dict[str, Any]], band: str, mag: float, err: float) -> None:
    for b in bands:
        if b.get("band") == band:
            b["mag"], b["error"] = round(mag, 3), err
            return
    bands.append({"band": band, "mag": round(mag, 3), "error": err})


def colour_chart(base: str | os.PathLike[str] = DEMO_SEQUENCE_FILE, *,
                 bv_range: tuple[float, float] = (0.2, 1.6), cat_err: float = 0.01,
                 seed: int = 0, chart_id: str = "SYNTH-BV") -> dict[str, Any]:
    """A chart (the bundled file's JSON shape) whose comps have B-V spread over ``bv_range``.

    Parameters
    ----------
    base : path
        The chart to start from (stars, positions, V).
    bv_range : (float, float)
        Lowest and highest B-V given to the comps (evenly spaced, seeded order).
    cat_err : float
        Catalogue error written for V and B.
    seed : int
        The order in which the colours are dealt.
    chart_id : str
        The new chart's id (a synthetic chart must never pass for a real one).

    Returns
    -------
    dict
    """
    data = json.loads(Path(base).read_text(encoding="utf-8"))
    comps = [c for c in data["comparison_stars"]
             if any(b.get("band") == "V" for b in c.get("bands", []))]
    colours = np.linspace(bv_range[0], bv_range[1], len(comps))
    np.random.default_rng(seed).shuffle(colours)
    for c, bv in zip(comps, colours, strict=True):
        v = next(b["mag"] for b in c["bands"] if b.get("band") == "V")
        _set_band(c["bands"], "V", float(v), cat_err)
        _set_band(c["bands"], "B", float(v) + float(bv), cat_err)
    data.setdefault("chart", {})["chart_id"] = chart_id
    return dict(data)


def write_colour_chart(path: str | os.PathLike[str], **options: Any) -> Path:
    """Write :func:`colour_chart` to ``path`` (atomically).

    Parameters
    ----------
    path : path
    **options
        As for :func:`colour_chart`.

    Returns
    -------
    pathlib.Path
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, json.dumps(colour_chart(**options), indent=1).encode())
    return p
