"""starnode: an unattended variable-star photometry station for smart telescopes.

The public face is small; everything else is an implementation detail of the subpackage that
owns it (docs/architecture.md has the map)::

    from starnode import ImageWatcher, measure, submit, load_config

    cfg = load_config("config.yaml")
    m = measure("Light_SS Cyg_10.0s_IRCUT_20250914-203500.fit", cfg)   # a Measurement
    answer = submit(m, cfg)                                            # AAVSO outbox row

- :class:`ImageWatcher` - notices complete new FITS frames (:mod:`starnode.watcher`)
- :func:`measure` / :func:`run_pipeline` - the measurement (:mod:`starnode.photometry`)
- :class:`Measurement` - the typed record every later step consumes (:mod:`starnode.records`)
- :func:`submit` - AAVSO Extended File Format reports, exactly once (:mod:`starnode.aavso`)
- :class:`Node` - ``starnode run``: the unattended service (:mod:`starnode.node`)
- :class:`Config` / :func:`load_config` - the validated configuration (:mod:`starnode.config`)
- :class:`StarnodeError`, :class:`FrameRejected`, :class:`ConfigError` - what can go wrong
  (:mod:`starnode.errors`)

Names are imported lazily (PEP 562) so that ``import starnode`` stays cheap: a pool worker or
the CLI's ``--help`` does not pay for astropy, photutils and the watcher it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import SOFTWARE, __version__

#: public name -> the module that owns it
_EXPORTS = {
    "ImageWatcher": "starnode.watcher",
    "measure": "starnode.photometry",
    "run_pipeline": "starnode.photometry",
    "Measurement": "starnode.records",
    "submit": "starnode.aavso",
    "Node": "starnode.node",
    "Config": "starnode.config",
    "load_config": "starnode.config",
    "StarnodeError": "starnode.errors",
    "FrameRejected": "starnode.errors",
    "ConfigError": "starnode.errors",
}

__all__ = [
    "SOFTWARE",
    "Config",
    "ConfigError",
    "FrameRejected",
    "ImageWatcher",
    "Measurement",
    "Node",
    "StarnodeError",
    "__version__",
    "load_config",
    "measure",
    "run_pipeline",
    "submit",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from starnode.aavso import submit
    from starnode.config import Config
    from starnode.config import resolve as load_config
    from starnode.errors import ConfigError, FrameRejected, StarnodeError
    from starnode.node import Node
    from starnode.photometry import measure, run_pipeline
    from starnode.records import Measurement
    from starnode.watcher import ImageWatcher


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'starnode' has no attribute {name!r}")
    attr = "resolve" if name == "load_config" else name
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # cached: the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
