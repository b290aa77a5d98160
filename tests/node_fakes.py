"""A stand-in measuring function for node tests that must provoke crashes, hangs and errors
(importable by name from spawned worker processes). The frame says what to do, in its FITS
header card FAKE (or as plain text): ``mag=11.2``, ``reject=category:reason``, ``crash``,
``sleep=SECONDS``, ``error``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starnode.errors import FrameRejected


def measure(path: str, config: Mapping[str, Any]) -> dict[str, Any]:
    raw = Path(path).read_bytes()
    if raw.startswith(b"SIMPLE"):
        from astropy.io import fits

        text = str(fits.getheader(path).get("FAKE", ""))
    else:
        text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if text.startswith("sleep="):
        time.sleep(float(text.split("=", 1)[1]))
        text = "mag=12.0"
    if text.startswith("error"):
        raise ValueError("something broke inside the pipeline")
    if text.startswith("reject="):
        category, _, reason = text.split("=", 1)[1].partition(":")
        raise FrameRejected(reason, category)
    mag = float(text.split("=", 1)[1]) if text.startswith("mag=") else 12.0
    jd = 2460000.5 + (os.stat(path).st_mtime % 1000) / 86400.0
    return {"magnitude": mag, "uncertainty": 0.02, "quality_flag": "good",
            "quality_reasons": [], "target_name": "SS Cyg", "filter": "TG", "jd": jd,
            "hjd": jd, "comparison_stars": 5, "file": path,
            "check_star": {"label": "117", "mag": 11.7, "catalog_mag": 11.71, "error": 0.02},
            "comps": [{"catalog_mag": 10.5, "used": True}, {"catalog_mag": 12.9,
                                                            "used": True}]}


def write_fake(path: Path, text: str) -> Path:
    """A small complete FITS file whose FAKE card is ``text`` (complete for the watcher)."""
    import numpy as np
    from astropy.io import fits

    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(np.zeros((4, 4), dtype=np.uint8))
    hdu.header["FAKE"] = text
    hdu.header["IMAGETYP"] = "Light"
    hdu.writeto(path, overwrite=True)
    return path


