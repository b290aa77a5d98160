"""The measuring functions the report-scenario tests give the node (importable by name from spawned
worker processes): a full measurement whose JD follows the frame's mtime, and one that reports
its address-space ceiling."""

from __future__ import annotations

import os
from typing import Any


def measure(path: str, config: Any) -> dict[str, Any]:
    """The worker's measuring function: a full measurement (chart, check star...) whose JD
    follows the frame's mtime and whose magnitude / target the frame's FAKE card gives
    (``mag=12.0;target=SS Cyg``)."""
    from astropy.io import fits

    from aavso_helpers import make_result

    card = str(fits.getheader(path).get("FAKE", ""))
    opts = dict(kv.split("=", 1) for kv in card.split(";") if "=" in kv)
    jd = 2460000.5 + (os.stat(path).st_mtime % 1000) / 86400.0
    target = opts.get("target", "SS Cyg")
    return make_result(jd=jd, hjd=jd + 0.003333, magnitude=float(opts.get("mag", 12.0)),
                       file=path, target_name=target, object=target)


def rlimit_measure(path: str, config: Any) -> dict[str, Any]:
    """A worker's measuring function that reports its address-space ceiling (as a skip)."""
    import resource

    from starnode.errors import FrameRejected

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    raise FrameRejected(f"rlimit_as={soft}", "config")
