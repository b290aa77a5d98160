"""The starlist's ECSV text is astropy's, byte for byte, without astropy's YAML dump of the
column block for every frame (issue 18, item 8)."""

from __future__ import annotations

import gzip
import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.table import Table

from starnode.photometry.starlist import (
    COLUMNS,
    Starlist,
    ecsv_text,
    table_from_columns,
    write_starlist,
)

ODD_META: dict[str, Any] = {
    "file": "/data/Light_SS Cyg_10.0s: #1 'x'.fit", "zero_point": 20.2189, "zp_error": None,
    "illumination": "constant", "big": 1e17, "tiny": 1.5e-7, "negative": -0.25, "flag": True,
    "yes_word": "yes", "number_text": "1.5", "nan": float("nan"), "inf": float("inf"),
    "count": 3, "numpy": np.float64(1.25), "long": "/" + "a" * 150, "empty": "",
    "nested": OrderedDict([("a", 1)]), "reference": "gaia-dr3",
}


def _astropy(table: Table) -> str:
    buf = io.StringIO()
    table.write(buf, format="ascii.ecsv")
    return buf.getvalue()


NAMES = ["SS Cyg", "field", 'q"uote', "", "000-BBC-123", "a b  c", "#hash", "Zoë α Cyg",
         "\tpadded ", "tab\tinside", "V1500_Cyg!~"]


def _columns(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    names = NAMES
    cols: dict[str, Any] = {}
    for k in COLUMNS:
        if k in ("name", "reference"):
            cols[k] = [names[i % len(names)] for i in range(n)]
        elif k in ("saturated", "edge", "blended", "comp", "check", "target"):
            cols[k] = list(rng.random(n) > 0.5)
        else:
            v = rng.normal(0, 10.0 ** rng.integers(-8, 12), n)
            v[rng.random(n) < 0.1] = math.nan
            v[rng.random(n) < 0.05] = -math.inf
            cols[k] = list(v)
    return cols


def _table(n: int, seed: int, meta: dict[str, Any]) -> Table:
    table = table_from_columns(_columns(n, seed))
    table.meta.update(meta)
    return table


@pytest.mark.parametrize("n", [0, 1, 37])
@pytest.mark.parametrize("meta", [{}, {"file": "/tmp/x.fit", "zero_point": 20.1, "cfa_t1": None,
                                       "reference": "vsp", "fwhm_px": 2.144}, ODD_META],
                         ids=["no-meta", "frame-meta", "odd-meta"])
def test_ecsv_text_is_astropys(n: int, meta: dict[str, Any]) -> None:
    for seed in range(3):
        table = _table(n, seed, meta)
        assert ecsv_text(table) == _astropy(table)


def test_a_table_astropy_must_write_itself_is_still_written(tmp_path: Path) -> None:
    table = _table(5, 1, {"file": "x"})
    masked = Table(table, masked=True)
    masked["mag"].mask[2] = True
    assert ecsv_text(masked) == _astropy(masked)
    path = write_starlist(masked, tmp_path / "n" / "f.ecsv.gz")
    back = Table.read(gzip.decompress(path.read_bytes()).decode(), format="ascii.ecsv")
    assert back["mag"].mask.tolist() == masked["mag"].mask.tolist()


def test_written_starlist_reads_back_identical(tmp_path: Path) -> None:
    table = _table(20, 7, ODD_META)
    path = write_starlist(table, tmp_path / "night" / "frame.ecsv.gz")
    assert gzip.decompress(path.read_bytes()).decode() == _astropy(table)
    back = Table.read(path, format="ascii.ecsv")
    # astropy reads '' back masked and a row starting with '#' as a comment: as its own text
    theirs = Table.read(_astropy(table), format="ascii.ecsv")
    assert back.colnames == table.colnames
    for col in table.colnames:
        assert back[col].unit == table[col].unit and back[col].format == table[col].format
        assert back[col].description == table[col].description
        if table[col].dtype.kind == "f":
            np.testing.assert_array_equal(back[col], theirs[col])
        else:
            assert back[col].tolist() == theirs[col].tolist()
    assert back.meta["file"] == ODD_META["file"] and back.meta["count"] == 3
    assert math.isnan(back.meta["nan"]) and back.meta["zp_error"] is None


@pytest.mark.parametrize("n", [0, 37])
def test_table_columns_are_as_the_public_setters_make_them(n: int) -> None:
    """table_from_columns sets units and formats without astropy's per-column parsing and
    format test (issue 18): every column is what ``col.unit = ...; col.format = ...`` makes,
    and every format formats its column."""
    table = _table(n, 3, {})
    for k, (unit, desc) in COLUMNS.items():
        col = table[k]
        ref = col.copy()
        ref.unit = unit
        ref.format = col.format  # the public setter formats the column, or raises
        assert col.unit == ref.unit and type(col.unit) is type(ref.unit)
        assert col.description == desc and col.format == ref.format
        assert col.pformat() == ref.pformat()


def test_other_column_types_are_written_as_astropy_writes_them() -> None:
    """float32 (whose Python value prints more digits), integers, extreme floats: the rows are
    astropy's text, byte for byte."""
    rng = np.random.default_rng(11)
    f64 = rng.normal(0, 1, 40) * 10.0 ** rng.integers(-320, 300, 40)
    f64[:6] = [0.0, -0.0, math.nan, math.inf, 1e16, 1e-5]
    table = Table({"f32": rng.normal(0, 100, 40).astype(np.float32), "f64": f64,
                   "i8": rng.integers(-(2**62), 2**62, 40), "u1": rng.integers(0, 255, 40,
                                                                               dtype=np.uint8),
                   "b": rng.random(40) > 0.5, "s": [f"s {i}" if i % 3 else "" for i in range(40)]})
    assert ecsv_text(table) == _astropy(table)


@pytest.mark.parametrize("n", [0, 1, 37])
@pytest.mark.parametrize("meta", [{}, {"file": "/tmp/x.fit", "zero_point": 20.1, "cfa_t1": None,
                                       "reference": "vsp", "fwhm_px": 2.144}, ODD_META],
                         ids=["no-meta", "frame-meta", "odd-meta"])
def test_a_starlist_is_written_as_its_table(n: int, meta: dict[str, Any], tmp_path: Path
                                            ) -> None:
    """A :class:`Starlist` (what the worker builds, no astropy table) gives the text and the
    file astropy's writer gives of the table ``table_from_columns`` makes of the same columns
    (empty, NaN and infinite values, quotes, spaces, tabs, non-ASCII names)."""
    for seed in range(3):
        cols = _columns(n, seed)
        starlist = Starlist.from_columns(cols, meta)
        table = table_from_columns(cols)
        table.meta.update(meta)
        assert len(starlist) == n
        assert ecsv_text(starlist) == _astropy(table) == _astropy(starlist.table())
        a = write_starlist(starlist, tmp_path / "light" / f"{seed}.ecsv.gz")
        b = write_starlist(table, tmp_path / "table" / f"{seed}.ecsv.gz")
        assert a.read_bytes() == b.read_bytes()
        assert gzip.decompress(a.read_bytes()).decode() == _astropy(table)


def test_a_starlist_of_other_columns_is_written_by_astropy() -> None:
    """Columns that are not the plain ones (an object column, a column left out) are written
    through the astropy table, as astropy writes it."""
    cols = _columns(4, 2)
    odd = Starlist.from_columns(cols, {"file": "x"})
    odd.columns["name"] = np.array(["a", None, "b", "c"], dtype=object)
    assert ecsv_text(odd) == _astropy(odd.table())
    short = Starlist.from_columns(cols)
    del short.columns["reference"]
    with pytest.raises(KeyError):
        ecsv_text(short)  # table_from_columns needs every column


def test_a_measured_frames_starlist_file_is_astropys(tmp_path: Path) -> None:
    """End to end: the worker's starlist (a :class:`Starlist`, no astropy table) is written by
    the node as astropy writes the table of the same columns and meta, byte for byte."""
    from starnode import synthetic
    from starnode.config import Config
    from starnode.frame.load import load_frame
    from starnode.photometry.night import keep_night
    from starnode.photometry.pipeline import measure_frame, references

    path = synthetic.write_frame(tmp_path / "Light_SS Cyg_10.0s_IRCUT_x.fit",
                                 synthetic.make_sub(seed=5, extra_stars=60)[0])
    cfg = Config({"data_dir": str(tmp_path / "data"),
                  "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE)}})
    frame = load_frame(path, cfg)
    done = measure_frame(frame, references(frame, cfg), cfg)
    assert isinstance(done.starlist, Starlist) and len(done.starlist) > 20
    table = done.starlist.table()
    assert list(table.colnames) == list(COLUMNS) and table.meta["file"] == str(frame.path)
    written = keep_night(cfg, None, done.starlist, done.measurement.night, frame.path)
    assert written is not None
    assert gzip.decompress(Path(written).read_bytes()).decode() == _astropy(table)


def test_text_columns_of_any_width_share_one_header() -> None:
    """The header of a starlist does not depend on the width of its text columns (ECSV writes
    ``datatype: string``): one cached header serves every width, and each text is astropy's."""
    from starnode.photometry import starlist

    texts = []
    for width in (1, 6, 11, 40):
        cols = _columns(3, 4)
        cols["name"] = ["x" * width, "field", "a"]
        sl = Starlist.from_columns(cols, {"file": "f"})
        texts.append(ecsv_text(sl))
        assert texts[-1] == _astropy(sl.table())
    light = [k for k in starlist._ECSV_HEADS if k and k[0] == "starlist"]
    names = [dict(k[1:])["name"] for k in light]
    assert names.count("U") == 1
