"""Seed-document entry point: ``from photometry import run_pipeline``.

A thin re-export of :func:`starnode.photometry.run_pipeline`.
"""

from starnode.photometry import run_pipeline

__all__ = ["run_pipeline"]
