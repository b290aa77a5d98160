"""starnode: an unattended variable-star photometry station for smart telescopes.

Modules, one concept each:

- :mod:`starnode.watcher` - :class:`ImageWatcher`, notices complete new FITS frames
- :mod:`starnode.fitsheader` - cheap FITS header reading and expected-size checks
- :mod:`starnode.frames` - reading a frame: raw Bayer sub, RGB stack or mono; its time and site
- :mod:`starnode.catalogs` - targets (VSX), comparison sequences (VSP, Gaia), their cache
- :mod:`starnode.astrometry` - a verified WCS for every frame
- :mod:`starnode.photometry` - :func:`run_pipeline`, the measurement
- :mod:`starnode.synthetic` - realistic synthetic Seestar frames (tests, benchmarks, demo)
- :mod:`starnode.aavso` - :func:`submit`, AAVSO Extended File Format reports and the outbox
- :mod:`starnode.validator` - the AAVSO Extended File Format validator
- :mod:`starnode.ledger` - the durable SQLite record of every frame
- :mod:`starnode.node` - ``starnode run``: the unattended service
- :mod:`starnode.cli` - the command line
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("starnode")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

SOFTWARE = f"starnode {__version__}"

__all__ = ["SOFTWARE", "__version__"]
