"""The validator's findings on a table of files, pinned byte for byte (message included).

Why: the checker's file, record and comparison/check-star rules were split into small methods
(issue 18, radon complexity); the findings (their order and words too) must not change. The
table reaches the rules the shared examples do not: every CNAME/CMAG/KNAME/KMAG/MTYPE
combination, empty and padded fields, and the file-level rules. The pinned findings in
``data/validator_findings_pinned.json`` were written by the checker before the split.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from starnode.aavso.validator import validate_bytes

PINNED = Path(__file__).parent.parent / "data" / "validator_findings_pinned.json"

HEADER = "#TYPE=EXTENDED\n#OBSCODE=ZZA\n#SOFTWARE=test 1\n#DELIM=,\n#DATE=JD\n#OBSTYPE=CCD\n"
FIELDS = ["T CrB", "2460797.51234", "10.215", "0.012", "TG", "NO", "STD", "ENSEMBLE", "na",
          "000-BBW-850", "11.412", "1.123", "na", "X38224AB", "na"]


def row(**change: str) -> str:
    """A data line with some fields changed (by their index, as ``f7="..."``)."""
    values = list(FIELDS)
    for key, value in change.items():
        values[int(key[1:])] = value
    return ",".join(values)


def cases() -> dict[str, tuple[str | None, bytes]]:
    """case -> (file name, file bytes)."""
    out: dict[str, tuple[str | None, bytes]] = {}
    comps = ["ENSEMBLE", "na", "000-BBW-851", "000-BBW-850"]
    cmags = ["na", "12.001", "x"]
    checks = ["na", "000-BBW-850", "ENSEMBLE"]
    kmags = ["na", "11.412"]
    for mtype, cname, cmag, kname, kmag in itertools.product(("STD", "DIF"), comps, cmags,
                                                              checks, kmags):
        text = HEADER + row(f6=mtype, f7=cname, f8=cmag, f9=kname, f10=kmag) + "\n"
        out[f"{mtype} {cname} {cmag} {kname} {kmag}"] = ("r.txt", text.encode())
    good = HEADER + row() + "\n"
    out["good"] = ("r.txt", good.encode())
    out["no name"] = (None, good.encode())
    out["bad extension"] = ("r.dat", good.encode())
    out["no extension"] = ("report", good.encode())
    out["byte-order mark"] = ("r.txt", b"\xef\xbb\xbf" + good.encode())
    out["bare CR"] = ("r.txt", good.replace("\n", "\r").encode())
    out["CRLF"] = ("r.txt", good.replace("\n", "\r\n").encode())
    out["empty file"] = ("r.txt", b"")
    out["header only"] = ("r.txt", HEADER.encode())
    out["no OBSTYPE, no DATE"] = ("r.txt", good.replace("#OBSTYPE=CCD\n", "").replace(
        "#DATE=JD\n", "").encode())
    out["no DELIM"] = ("r.txt", (good + row() + "\n").replace("#DELIM=,\n", "").encode())
    out["empty and padded fields"] = ("r.txt", (HEADER + row(f3="", f4=" TG", f13=" ")
                                                + "\n" + row(f12="na ") + "\n").encode())
    out["column header line"] = ("r.txt", (HEADER + "STARID,DATE,x\n" + row() + "\n").encode())
    out["split record"] = ("r.txt", (HEADER + "T CrB,2460797.5\n,10.2,rest\n" + row()
                                     + "\n").encode())
    out["too many fields"] = ("r.txt", (HEADER + row() + ",extra\n").encode())
    out["synthetic rows"] = ("r.txt", (HEADER + row(f14="SYNTHETIC DATA - not an observation")
                                       + "\n").encode())
    return out


def findings(name: str | None, raw: bytes) -> list[list[Any]]:
    return [[f.line, f.severity, f.rule, f.message] for f in validate_bytes(raw, name)]


def test_the_findings_of_every_case_are_unchanged() -> None:
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    got = {case: findings(name, raw) for case, (name, raw) in cases().items()}
    assert got.keys() == pinned.keys()
    for case in got:
        assert got[case] == pinned[case], case


def test_the_comparison_and_check_star_rules_are_reached() -> None:
    rules = {(f[1], f[2]) for case, (name, raw) in cases().items() for f in findings(name, raw)}
    assert {("ERROR", "D08"), ("ERROR", "D09"), ("ERROR", "D10"), ("WARNING", "D10"),
            ("WARNING", "D09"), ("ERROR", "D96"), ("WARNING", "D95"), ("ERROR", "F01"),
            ("ERROR", "F02"), ("WARNING", "F02"), ("ERROR", "H01"), ("WARNING", "H01"),
            ("ERROR", "F06"), ("ERROR", "D98"), ("ERROR", "D97"), ("ERROR", "D99")} <= rules
