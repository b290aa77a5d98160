"""0.1.0 import path of the AAVSO file validator; it lives in :mod:`starnode.aavso.validator`."""

from starnode.aavso.spec import ERROR, FIELD_LIMITS, FIELDS, FILTER_CODES, WARNING, Finding, Report
from starnode.aavso.validator import validate_bytes, validate_file, validate_text

__all__ = ["ERROR", "FIELDS", "FIELD_LIMITS", "FILTER_CODES", "WARNING", "Finding", "Report",
           "validate_bytes", "validate_file", "validate_text"]
