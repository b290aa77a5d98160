"""Is the telescope share there? Told apart from a frame that was really deleted.

A share unmounted with frames directly in ``watch.path`` leaves the mount point as an empty
folder, so "the frame's folder still exists" does not mean the frame is gone for good. The
share counts as down when the frame's folder is missing, or when it is the watch folder (or
below it) and that is now empty, or is another folder than the one the node started watching
(a folder moved away and replaced, a share remounted). Frames then wait in the queue.
"""

from __future__ import annotations

import os

from ..watcher.rootguard import identity

__all__ = ["identity", "share_gone"]


def share_gone(folder: str, root: str | None, root_id: tuple[int, int] | None) -> bool:
    """Whether the share holding ``folder`` is down (see the module docstring).

    Parameters
    ----------
    folder : str
        The folder of a frame that cannot be stat'ed.
    root : str or None
        ``watch.path``.
    root_id : tuple of (int, int) or None
        :func:`identity` of ``root`` when the share was last seen up.

    Returns
    -------
    bool
    """
    if not os.path.isdir(folder):
        return True
    if not root:
        return False
    top = os.path.abspath(root)
    if folder != top and not folder.startswith(top.rstrip("/") + "/"):
        return False
    if root_id is not None and identity(top) != root_id:
        return True
    try:
        with os.scandir(top) as it:
            return next(it, None) is None
    except OSError:
        return True
