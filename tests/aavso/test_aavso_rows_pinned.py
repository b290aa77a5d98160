"""The AAVSO data line of single measurements and bins, pinned byte for byte.

Why: ``format_row`` was split into its NOTES parts (issue 18, radon complexity); every line a
node or the hub writes goes through it, so each optional note (TG plane, transform, comps
note, synthetic, VMAGINS/CMAGINS/KMAGINS/KREFMAG/KREFERR, the bin's notes, mixed quality) is
exercised here and the lines compared with ``data/report_rows_pinned.json``, written by the
formatter before the split.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from starnode.aavso.entries import ReportEntry
from starnode.aavso.rows import format_row
from starnode.errors import FieldError

PINNED = Path(__file__).parent.parent / "data" / "report_rows_pinned.json"

BASE = ReportEntry(starid="T CrB", band="TG", jd=2460797.51234, hjd=2460797.51301, mag=10.2154,
                   err=0.0121, airmass=1.1234, cname="ENSEMBLE", cmag=None,
                   kname="000-BBW-850", kmag=11.4121, kmagins=-3.2101, krefmag=11.402,
                   kreferr=0.021, kdev=0.0101, vmagins=-4.4012, chart="X38224AB",
                   comps_note=None, ncomp=5, frame="Light_T CrB_10.0s_IRCUT_1.fit",
                   exptime=10.0, quality="good", synthetic=False)


def cases() -> dict[str, tuple[list[ReportEntry], str]]:
    """case -> (members, date type)."""
    two = replace(BASE, jd=BASE.jd + 0.003, hjd=BASE.hjd + 0.003, mag=10.231, err=0.015,
                  airmass=1.13, kmag=11.42, kmagins=-3.2, vmagins=-4.39, ncomp=4,
                  frame="Light_T CrB_10.0s_IRCUT_2.fit", quality="acceptable")
    return {
        "single": ([BASE], "JD"),
        "single HJD": ([BASE], "HJD"),
        "tiny error": ([replace(BASE, err=0.0001)], "JD"),
        "bare V, nothing optional": ([replace(BASE, band="V", kname=None, kmag=None,
                                              kmagins=None, krefmag=None, kreferr=None,
                                              vmagins=None, airmass=None)], "JD"),
        "single comp": ([replace(BASE, cname="000-BBW-851", cmag=-2.5012)], "JD"),
        "transformed": ([replace(BASE, band="V", transformed=True, tv_bv=0.081,
                                 tv_bv_err=0.012, colour_index=0.61)], "JD"),
        "comps note and synthetic": ([replace(BASE, comps_note="APASS comps", synthetic=True,
                                              band="TB")], "JD"),
        "bin of two": ([BASE, two], "JD"),
        "bin of two HJD": ([BASE, two], "HJD"),
        "bin of three, one poor": ([BASE, two, replace(two, jd=BASE.jd + 0.006, mag=10.3,
                                                       frame="3.fit", quality="poor")], "JD"),
    }


def test_the_lines_are_unchanged() -> None:
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    got = {case: format_row(members, date_type) for case, (members, date_type) in cases().items()}
    assert got == pinned


def test_notes_too_long_and_a_delimiter_are_refused() -> None:
    with pytest.raises(FieldError, match="NOTES would have"):
        format_row([replace(BASE, comps_note="x" * 5000)], "JD")
    with pytest.raises(FieldError, match="would split the row"):
        format_row([replace(BASE, chart="A,B")], "JD")
