"""0.1.0 import path of the report-row functions; they live in :mod:`starnode.aavso`.

``Measurement`` here was the report's view of a measurement; it is now
:class:`starnode.aavso.entries.ReportEntry` (the name ``Measurement`` belongs to
:class:`starnode.records.Measurement`).
"""

from starnode.aavso.entries import (
    FieldError,
    clean_name,
    clean_note,
    gate,
    measurement_from_result,
    slug,
)
from starnode.aavso.entries import ReportEntry as Measurement
from starnode.aavso.rows import DELIM, bin_of, combine, format_row, header_lines, measurement_key
from starnode.observing import night_of

__all__ = ["DELIM", "FieldError", "Measurement", "bin_of", "clean_name", "clean_note",
           "combine", "format_row", "gate", "header_lines", "measurement_from_result",
           "measurement_key", "night_of", "slug"]
