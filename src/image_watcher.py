"""Seed-document entry point: ``from image_watcher import ImageWatcher``.

A thin re-export of :class:`starnode.watcher.ImageWatcher`.
"""

from starnode.watcher import ImageWatcher

__all__ = ["ImageWatcher"]
