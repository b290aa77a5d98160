"""starnode.aavso.validator: same verdicts as the shared reference checker, plus in-memory cases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from starnode.aavso.spec import ERROR, WARNING, Report
from starnode.aavso.validator import validate_bytes, validate_file, validate_text

HEADER = "#TYPE=EXTENDED\n#OBSCODE=ZZA\n#SOFTWARE=test 1\n#DELIM=,\n#DATE=JD\n#OBSTYPE=CCD\n"
ROW = ("T CrB,2460797.51234,10.215,0.012,TG,NO,STD,ENSEMBLE,na,000-BBW-850,11.412,1.123,na,"
       "X38224AB,na\n")
_LINE = re.compile(r"^(?P<path>.*):(?P<line>\d+): (?P<level>ERROR|WARN) (?P<rule>\w+): ")


def shared_findings(checker: Path, path: Path) -> tuple[int, set[tuple[int, str, str]]]:
    """Run the shared reference validator as a subprocess: (exit code, {(line, level, rule)})."""
    proc = subprocess.run([sys.executable, str(checker), str(path)], capture_output=True,
                          text=True, check=False)
    found = set()
    for line in proc.stdout.splitlines():
        m = _LINE.match(line)
        if m:
            level = ERROR if m["level"] == "ERROR" else WARNING
            found.add((int(m["line"]), level, m["rule"]))
    return proc.returncode, found


def examples(shared: Path) -> list[Path]:
    files = sorted((shared / "aavso" / "examples").iterdir())
    assert len(files) >= 10
    return files


def test_every_example_gets_the_shared_verdict(shared: Path) -> None:
    checker = shared / "aavso" / "aavso_validate.py"
    for path in examples(shared):
        code, theirs = shared_findings(checker, path)
        ours = validate_file(path)
        mine = {(f.line, f.severity, f.rule) for f in ours}
        assert code in (0, 1), path
        assert ours.ok == (code == 0), f"{path.name}: verdict differs"
        assert {x for x in mine if x[1] == ERROR} == {x for x in theirs if x[1] == ERROR}, \
            f"{path.name}: error lines/rules differ"
        assert mine == theirs, f"{path.name}: warnings differ"
        assert ours.ok == path.name.startswith(("good_", "warn_")), path.name


def test_examples_errors_are_where_expected(shared: Path) -> None:
    ex = shared / "aavso" / "examples"
    inj = validate_file(ex / "bad_03_fits_text_injection.txt")
    assert {f.rule for f in inj.errors} >= {"D97", "F04", "F03"}
    assert 9 in {f.line for f in inj.errors if f.rule == "D97"}  # 'T CrB, Seestar run 3'
    hdr = validate_file(ex / "bad_05_header_rules.dat")
    assert {"F01", "F02", "H05", "H06", "H07", "D99"} <= {f.rule for f in hdr.errors}


def rules(report: Report, severity: str = ERROR) -> set[str]:
    return {f.rule for f in report if f.severity == severity}


def test_minimal_good_file() -> None:
    report = validate_text(HEADER + ROW)
    assert report.ok and report == [] and report.summary() == "0 error(s), 0 warning(s)"


@pytest.mark.parametrize(("text", "rule"), [
    (HEADER.replace("#DATE=JD", "#DATE=BJD_TDB") + ROW, "H06"),
    (HEADER + ROW.replace("000-BBW-850,11.412", "na,na"), "D09"),
    (HEADER + ROW.replace(",10.215,", ",10,"), "D03"),
    (HEADER, "F06"),
    ((HEADER + ROW).replace("\n", "\r"), "F02"),
    (HEADER + "\n" + ROW, "F04"),
    (HEADER + ROW.replace("T CrB", "T CrB, run 3"), "D97"),
    (HEADER + ROW.replace("T CrB", "T CrB\n"), "D97"),
    (HEADER + ROW.replace("T CrB", "T Cr\u00e9B"), "F03"),
    (HEADER + ROW.replace("1.123", "1.12345678"), "D00"),
    (HEADER + ROW.replace(",TG,", ",G,"), "D05"),
    (HEADER + "NAME,DATE,MAG\n" + ROW, "D98"),
    (HEADER.replace("#DELIM=,", "#DELIM=|") + ROW.replace(",", "|"), "H05"),
    (HEADER.replace("#TYPE=EXTENDED\n", "") + ROW, "H01"),
])
def test_errors(text: str, rule: str) -> None:
    report = validate_text(text)
    assert not report.ok
    assert rule in rules(report)


def test_crlf_only_warns_and_tab_delimiter() -> None:
    report = validate_text((HEADER + ROW).replace("\n", "\r\n"))
    assert report.ok and "F02" in rules(report, WARNING)
    tab = HEADER.replace("#DELIM=,", "#DELIM=tab") + ROW.replace(",", "\t")
    assert validate_text(tab).ok


def test_date_may_change_mid_file_and_duplicates_warn() -> None:
    report = validate_text(HEADER + ROW + "#DATE=HJD\n" + ROW.replace("51234", "52234"))
    assert report.ok and "H08" not in rules(report, WARNING)
    dup = validate_text(HEADER + ROW + ROW)
    assert dup.ok and "X04" in rules(dup, WARNING)
    assert dup.warnings[0].line == 8


def test_extension_checked_only_with_a_name(tmp_path: Path) -> None:
    data = (HEADER + ROW).encode()
    assert validate_bytes(data).ok
    assert "F01" in rules(validate_bytes(data, "report.dat"))
    p = tmp_path / "r.txt"
    p.write_bytes(data)
    assert validate_file(p).ok
    assert validate_file(str(p)).as_dict()["ok"] is True
