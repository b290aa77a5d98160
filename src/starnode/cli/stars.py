"""``starnode stars FILE...``: measure frames on demand and print their starlists.

The starlist itself (its columns, how it is built and written) is
:mod:`starnode.photometry.starlist`; this is the command over it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from astropy.table import Table

from ..config import Config

log = logging.getLogger("starnode.starlist")

__all__ = ["frame_starlist", "stars_command"]


#: why ``measure()`` may refuse a frame whose stars can still be listed
_LISTABLE = ("catalog", "too_few_comps", "no_target", "low_snr", "saturated", "edge")


def frame_starlist(path: str | os.PathLike[str], config: Config) -> Table:
    """Measure one frame (as the pipeline does, writing its starlist) and return the list;
    when the variable cannot be measured (no chart offline, target outside, faint, saturated)
    every star the solver can place is listed anyway
    (:func:`starnode.photometry.fieldlist.field_starlist`: instrumental always, calibrated
    from the best reference there is, named in ``reference``).

    Parameters
    ----------
    path : str or os.PathLike
        The FITS frame.
    config : Config
        The resolved configuration.

    Returns
    -------
    astropy.table.Table

    Raises
    ------
    starnode.errors.FrameRejected
        The frame cannot be measured (the reason says why).
    """
    from ..errors import FrameRejected
    from ..photometry import measure

    cfg = config
    if not cfg.photometry.starlists:
        raise OSError("photometry.starlists is off in the configuration: no starlist is made")
    try:
        m = measure(path, cfg)
    except FrameRejected as exc:
        if str(exc.category) not in _LISTABLE:
            raise
        from ..photometry.fieldlist import field_starlist

        log.info("%s: %s; listing its stars without a measurement", Path(path).name,
                 exc.reason)
        table = field_starlist(path, cfg)
        table.meta["not_measured"] = exc.reason
        return table
    if m.starlist is None:
        raise OSError(f"{Path(path).name}: the starlist could not be written (see the log)")
    return Table.read(m.starlist, format="ascii.ecsv")


def stars_command(files: list[str], config: Config, fmt: str, out: str | None) -> int:
    """``starnode stars FILE...``: the starlists of frames, as ECSV, CSV or JSON.

    Parameters
    ----------
    files : list of str
    config : Config
    fmt : str
        ``ecsv``, ``csv`` or ``json``.
    out : str or None
        Output file (default: stdout).

    Returns
    -------
    int
        0, or 1 when a frame could not be measured (its reason on stderr).
    """
    import io
    import json
    import sys

    from astropy.table import vstack

    from ..errors import FrameRejected
    from .paths import input_problem, output_problem, shown, write_output

    if out:
        problem = output_problem(out, files)
        if problem:
            sys.stderr.write(f"error: {problem}\n")
            return 2
    tables, status = [], 0
    for f in files:
        problem = input_problem(f)
        if problem:
            sys.stderr.write(f"{problem}\n")
            status = 1
            continue
        try:
            t = frame_starlist(f, config)
        except (FrameRejected, OSError) as exc:
            sys.stderr.write(f"{shown(f)}: {exc}\n")
            status = 1
            continue
        t.add_column([shown(f)] * len(t), name="file", index=0)
        tables.append(t)
    if not tables:
        return status
    table = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    if len(tables) > 1:  # one header for several frames: each frame's values, not the last's
        table.meta.clear()
        table.meta["frames"] = [dict(t.meta) for t in tables]
    buf = io.StringIO()
    if fmt == "json":
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in zip(
            table.colnames, row, strict=True)} for row in table]
        buf.write(json.dumps(rows, indent=1, allow_nan=True) + "\n")
    else:
        table.write(buf, format="ascii.ecsv" if fmt == "ecsv" else "ascii.csv")
    if out:
        problem = write_output(out, buf.getvalue())
        if problem:
            sys.stderr.write(f"error: {problem}\n")
            return 1
    else:
        sys.stdout.write(buf.getvalue())
    return status
