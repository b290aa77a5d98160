"""Noticing complete new FITS frames: :class:`ImageWatcher` and the pieces it is made of.

- :mod:`.core` - :class:`ImageWatcher`, the seed document's contract
  (``shared/seed/image-watcher.md``), also importable as ``from image_watcher import
  ImageWatcher``
- :mod:`.debounce` - :class:`Debouncer`, the debounce timers as one deadline table (the public
  seam for testing debounce behaviour without threads)
- :mod:`.scan` - folder listings: the startup scan, rescans, poll mode, the completeness test
- :mod:`.mounts` - which filesystem a folder is on, so whether OS events can be trusted
- :mod:`.observer` - the watchdog observer, made to report inotify queue overflows

See docs/watcher.md.
"""

from __future__ import annotations

from .core import MODES, ImageWatcher
from .debounce import Debouncer
from .mounts import (
           MOUNTINFO,
           REMOTE_FSTYPES,
           Mount,
           choose_mode,
           find_mount,
           is_remote,
           read_mounts,
)

__all__ = ["MODES", "MOUNTINFO", "REMOTE_FSTYPES", "Debouncer", "ImageWatcher", "Mount",
           "choose_mode", "find_mount", "is_remote", "read_mounts"]
