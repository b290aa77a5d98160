"""``starnode repair``: rebuild the report index from the outbox, its audit and the frames.

The report files are the record, the database their index (docs/aavso.md, "The report file is
the record"). ``repair`` is the "damaged database" advice made a command:

- a database that no longer opens (damaged, not a database) is moved aside
  (``starnode.sqlite3.damaged-<utc>``, never deleted) and a new one is started;
- every report file is compared with the index: rows the index lacks are put back from the
  audit (each measurement under its exactly-once key, bins with their members) or adopted as
  they stand; a deleted report is rebuilt; a truncated, altered or invalid one is restored
  from the index, the damaged file kept beside it (``<name>.damaged-<utc>.txt``);
- frames the ledger has as reported but the index does not know are submitted again (their
  line is found in the file and written once).

Nothing is lost, and every change is printed. Run it while no node runs on the data folder.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from typing import Any

from ..config import Config
from ..errors import StoreError

__all__ = ["add_parser", "cmd_repair"]


def add_parser(add: Any) -> None:
    """Register ``repair`` (``add(name, help, description)`` gives the sub-parser)."""
    sp = add("repair", "rebuild the report index from the outbox, audit and frames; restore "
             "damaged reports (loses nothing, says what it did)", __doc__.split("\n\n", 1)[1])
    sp.set_defaults(func=cmd_repair)


def _move_aside(cfg: Config) -> str | None:
    """A database that cannot be opened is moved aside (with its journal files)."""
    from ..store import Store

    db = cfg.db_path
    if not db.exists():
        return None
    try:
        with Store.open(cfg):
            return None
    except StoreError as exc:
        if "newer" in str(exc) or "not writable" in str(exc):
            raise
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = db.with_name(db.name + suffix)
            if p.exists():
                os.replace(p, db.with_name(f"{db.name}.damaged-{stamp}{suffix}"))
        return (f"the database {db} could not be opened ({str(exc)[:120]}...): moved aside "
                f"as {db.name}.damaged-{stamp}; a new one was started")


def cmd_repair(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode repair``: exit 1 when a problem is left."""
    from ..aavso.recovery import reconcile
    from ..node.lock import DataDirLock

    lock = DataDirLock(cfg.data_dir)
    try:
        lock.acquire()
    except Exception as exc:  # NodeBusy: a node serves this data folder
        print(f"starnode repair: {exc}; stop it first", file=sys.stderr)
        return 1
    try:
        moved = _move_aside(cfg)
        summary = reconcile(cfg, repair=True)
    finally:
        lock.release()
    done = ([moved] if moved else []) + list(summary["done"])
    for line in done:
        print(f"repaired: {line}")
    for line in summary["problems"]:
        print(f"left as it is: {line}", file=sys.stderr)
    if not done and not summary["problems"]:
        print("nothing to repair: every report file matches its index")
    if moved:
        print("frames still in the telescope folder are queued again by 'starnode run' or "
              "'starnode process FOLDER'; those already reported are recognised, not repeated")
    return 1 if summary["problems"] else 0
