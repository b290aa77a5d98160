"""starnode.records: the Measurement type, its dict form (0.1.0 compatible) and the key table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from starnode.errors import QualityFlag
from starnode.records import (
    SCHEMA_VERSION,
    TABLE_END,
    TABLE_START,
    Aperture,
    CheckStar,
    CompResult,
    Measurement,
    key_table,
    render_key_table_into,
)

ROOT = Path(__file__).resolve().parents[2]
#: a result dict written by starnode 0.1.0's run_pipeline (the demo night; 3 of its comps)
OLD = ROOT / "tests" / "data" / "result-0.1.0.json"
NEW_KEYS = ("schema_version", "site_longitude", "site_latitude", "site_height", "night")
#: optional keys added after schema version 2 (None / absent in older dicts)
LATER_KEYS = ("transformation", "excess_noise_mag", "excess_noise_stars", "illumination",
              "check_star_note", "starlist")


def _old() -> dict:
    return json.loads(OLD.read_text(encoding="utf-8"))


def test_a_0_1_0_dict_reads_into_typed_records() -> None:
    d = _old()
    m = Measurement.from_dict(d)
    assert m.schema_version == 1
    assert m.quality_flag is QualityFlag.ACCEPTABLE
    assert isinstance(m.comps[0], CompResult) and m.comps[0].excluded == "saturated"
    assert isinstance(m.check_star, CheckStar) and m.check_star.deviation == d["check_star"][
        "deviation"]
    assert isinstance(m.aperture, Aperture) and m.aperture.radius_px == d["aperture"]["radius_px"]
    assert m.quality_reasons == tuple(d["quality_reasons"])
    assert m.site_longitude is None and m.night is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.magnitude = 1.0  # type: ignore[misc]


def test_to_dict_gives_back_every_0_1_0_key_and_value_plus_the_new_keys() -> None:
    d = _old()
    out = Measurement.from_dict(d).to_dict()
    assert {k: out[k] for k in d} == d
    assert set(out) - set(d) == set(NEW_KEYS) | set(LATER_KEYS)
    assert out["schema_version"] == 1
    # plain JSON types only: the dict survives a JSON round trip unchanged
    assert json.loads(json.dumps(out)) == out
    assert type(out["quality_flag"]) is str and isinstance(out["comps"], list)


def test_a_current_dict_round_trips() -> None:
    m = Measurement.from_dict(_old()).replace(schema_version=SCHEMA_VERSION,
                                              site_longitude=-71.5, site_latitude=42.3,
                                              site_height=120.0, night="2025-09-14")
    d = m.to_dict()
    assert d["night"] == "2025-09-14" and d["schema_version"] == SCHEMA_VERSION
    again = Measurement.from_dict(json.loads(json.dumps(d)))
    assert again == m
    assert list(again.to_dict()) == list(d)  # key order kept


def test_from_dict_refuses_what_is_not_a_measurement() -> None:
    with pytest.raises(TypeError, match="magnitude"):
        Measurement.from_dict({"uncertainty": 0.1})
    with pytest.raises(TypeError, match="dict"):
        Measurement.from_dict([1, 2])  # type: ignore[arg-type]


def test_key_order_of_the_0_1_0_dict_is_the_field_order() -> None:
    # the 0.1.0 writer emitted keys in this order (JSON consumers may show them so)
    names = [f.name for f in dataclasses.fields(Measurement)]
    assert names[:3] == ["magnitude", "uncertainty", "quality_flag"]
    assert names[-len(NEW_KEYS):] == list(NEW_KEYS)
    assert set(_old()) <= set(names)


def test_documented_key_table_is_the_generated_one() -> None:
    doc = (ROOT / "docs" / "photometry.md").read_text(encoding="utf-8")
    start = doc.index(TABLE_START) + len(TABLE_START) + 1
    end = doc.index(TABLE_END)
    assert doc[start:end] == key_table(), (
        "docs/photometry.md is stale: run python -m starnode.records docs/photometry.md")
    # every key of the dict has its row, and nothing else does
    rows = [line.split("|")[1].strip().strip("`") for line in key_table().splitlines()[2:]]
    assert rows == [f.name for f in dataclasses.fields(Measurement)]


def test_render_key_table_into_replaces_only_the_marked_part() -> None:
    text = f"intro\n{TABLE_START}\nold table\n{TABLE_END}\noutro\n"
    out = render_key_table_into(text)
    assert out.startswith("intro\n") and out.endswith(f"{TABLE_END}\noutro\n")
    assert "old table" not in out and key_table() in out
    with pytest.raises(ValueError, match="markers"):
        render_key_table_into("no table here")
