"""AAVSO reports: :func:`submit` turns a measurement into AAVSO Extended File Format rows.

    from starnode.aavso import submit
    answer = submit(measurement, config)   # {"status", "message", "report_path", "rows", ...}

- :mod:`.submission` - :func:`submit` (exactly once), :func:`flush`, :func:`report_text`,
  :func:`resolve_uncertain`
- :mod:`.entries` - a measurement made fit for a report (sanitising, checks, gates)
- :mod:`.rows` - keys, time bins, data lines and file text (pure)
- :mod:`.outbox` - report files and the audit trail under ``data_dir/outbox``
- :mod:`.webobs` - the opt-in WebObs uploader
- :mod:`.validator` / :mod:`.spec` - the format's rules and the checker every file passes
- :mod:`.health` - its lines of ``starnode doctor``

The tables live in :class:`starnode.store.ReportRows`. See docs/aavso.md.
"""

from __future__ import annotations

from starnode.errors import AavsoError, CredentialsError, FieldError, SubmitStatus

from .entries import ReportEntry, entry_from_measurement, gate, measurement_from_result
from .health import health
from .outbox import outbox_dir, outbox_files
from .rows import bin_of, file_text, format_row, measurement_key
from .submission import STATUSES, flush, report_text, resolve_uncertain, submit
from .validator import Finding, Report, validate_bytes, validate_file, validate_text

__all__ = [
    "STATUSES",
    "AavsoError",
    "CredentialsError",
    "FieldError",
    "Finding",
    "Report",
    "ReportEntry",
    "SubmitStatus",
    "bin_of",
    "entry_from_measurement",
    "file_text",
    "flush",
    "format_row",
    "gate",
    "health",
    "measurement_from_result",
    "measurement_key",
    "outbox_dir",
    "outbox_files",
    "report_text",
    "resolve_uncertain",
    "submit",
    "validate_bytes",
    "validate_file",
    "validate_text",
]
