"""catalogs.sequences and catalogs.types: chart files read once per version, angle parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from starnode import catalogs
from starnode.catalogs import CatalogError, SequenceFiles, Target, parse_dec, parse_ra
from starnode.catalogs.sequences import sequence_matches

BUNDLED = Path(catalogs.__file__).parent.parent / "data" / "ss_cyg_vsp.json"


def test_a_file_is_parsed_once_per_version(tmp_path):
    files = SequenceFiles()
    p = tmp_path / "chart.json"
    p.write_text(BUNDLED.read_text(encoding="utf-8"), encoding="utf-8")
    first = files.load(p)
    assert files.load(p) is first  # unchanged: the same parse
    data = json.loads(p.read_text(encoding="utf-8"))
    data["comparison_stars"] = data["comparison_stars"][:3]
    p.write_text(json.dumps(data), encoding="utf-8")
    st = p.stat()
    os.utime(p, (st.st_atime, st.st_mtime + 5))
    edited = files.load(p)
    assert edited is not first and len(edited.comps) == 3


def test_bad_files_are_clear_errors(tmp_path):
    files = SequenceFiles()
    with pytest.raises(CatalogError, match="cannot read sequence file"):
        files.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid JSON"):
        files.load(bad)
    bad.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(CatalogError, match="not a VSP chart"):
        files.load(bad)


def test_the_bounded_cache_forgets_the_oldest(tmp_path):
    files = SequenceFiles(max_entries=2)
    paths = []
    for k in range(3):
        p = tmp_path / f"c{k}.json"
        p.write_text(BUNDLED.read_text(encoding="utf-8"), encoding="utf-8")
        paths.append(p)
    first = files.load(paths[0])
    files.load(paths[1])
    files.load(paths[2])
    assert files.load(paths[0]) is not first


@pytest.mark.parametrize(("text", "deg"), [
    ("21:42:42.80", 325.67833), ("21 42 42.8", 325.67833), ("325.5", 325.5), (12.5, 12.5),
    ("00:00:60.0", 0.25)])  # a real VSP chart writes ss = 60.0
def test_parse_ra(text, deg):
    assert parse_ra(text) == pytest.approx(deg, abs=1e-5)


@pytest.mark.parametrize(("text", "deg"), [
    ("+43:35:09.9", 43.58608), ("-00:30:00", -0.5), ("-12 30 00", -12.5), ("-7.25", -7.25)])
def test_parse_dec(text, deg):
    assert parse_dec(text) == pytest.approx(deg, abs=1e-5)


@pytest.mark.parametrize("bad", ["24:00:01", "ab:cd:ef"])
def test_parse_ra_refuses(bad):
    with pytest.raises(ValueError):
        parse_ra(bad)


def test_sequence_matches_by_name_or_position():
    seq = catalogs.load_sequence_file(BUNDLED)
    assert sequence_matches(seq, Target("ss  CYG", 0.0, 0.0))
    assert sequence_matches(seq, Target("other", 325.6784, 43.5861))
    assert not sequence_matches(seq, Target("other", 325.7, 43.6))
