"""Seed-document entry point: ``from aavso_submission import submit``.

A thin re-export of :func:`starnode.aavso.submit`.
"""

from starnode.aavso import submit

__all__ = ["submit"]
