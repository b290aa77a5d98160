"""The node: intake, the worker pool and the service that joins them.

- :mod:`starnode.node.intake` - frames into the ledger (watcher events, catch-up scan, paths)
- :mod:`starnode.node.pool` - the worker processes (crash and time-out kept to their frame)
- :mod:`starnode.node.service` - :class:`Node`: ``starnode run`` and ``starnode process``
- :mod:`starnode.node.outcomes` - an outcome into the ledger, the sinks and the log
- :mod:`starnode.node.keep` - what the worker may not write: the night's check star, starlists
- :mod:`starnode.node.sinks` - where measurements go: the AAVSO outbox, the hub queue
- :mod:`starnode.node.lock` - one node per data directory
- :mod:`starnode.node.lines` - the one line per frame; :mod:`starnode.node.status` - status
- :mod:`starnode.node.health` - the node's checks for ``starnode doctor``
- :mod:`starnode.node.forwarder` - the hub forwarder (store and forward)
"""

from __future__ import annotations

from ..errors import NodeBusy
from .intake import Intake, matches_include, walk
from .lines import frame_line, short_reason
from .lock import DataDirLock
from .pool import Task, WorkerPool, work
from .service import Node

__all__ = ["DataDirLock", "Intake", "Node", "NodeBusy", "Task", "WorkerPool", "frame_line",
           "matches_include", "short_reason", "walk", "work"]
