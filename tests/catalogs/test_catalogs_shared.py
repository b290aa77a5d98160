"""Catalogue parsing and clients on the recorded AAVSO answers in ../shared/data.

``aavso-api/`` holds verbatim VSX/VSP API answers; ``vsp/`` holds full VSP sequences saved without
the chart-level keys, re-wrapped here into a chart answer as VSP sends it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_helpers import vsp_chart
from loopback import LoopbackServer
from starnode.catalogs import (
    CatalogError,
    Target,
    comment_flag,
    get_sequence,
    parse_vsp_chart,
    parse_vsx_list,
    parse_vsx_mag,
    parse_vsx_object,
    resolve_target,
)
from starnode.config import Config

VSP = "/vsp/api/chart/"
VSX = "/vsx/index.php"

#: stars per file and the chart ids used when re-wrapping (the saved files keep none).
SEQUENCES = {"xz_cyg.json": 34, "ss_cyg.json": 31, "rr_lyr.json": 70, "CH_CYG_comps.json": 27}


def load(shared: Path, *parts: str) -> Any:
    return json.loads(shared.joinpath("data", *parts).read_text(encoding="utf-8"))


def comparison_list(data: Any) -> list[dict[str, Any]]:
    return data if isinstance(data, list) else data["comparison_stars"]


@pytest.fixture(scope="module")
def srv():
    with LoopbackServer() as s:
        yield s


@pytest.fixture
def server(srv):
    return srv.reset()


def cfg_for(tmp_path: Path, srv: LoopbackServer, **ph: Any) -> Config:
    return Config({"data_dir": str(tmp_path), "photometry": {
        "vsp_url": srv.url(VSP), "vsx_url": srv.url(VSX), "gaia_tap_url": srv.url("/tap"),
        "http_backoff": 0, "http_retries": 2, "http_timeout": 5, "http_quiet_minutes": 0,
        **ph}})


# --- comments in every real sequence --------------------------------------------------------------

def all_real_comps(shared: Path) -> list[dict[str, Any]]:
    out = []
    for name in SEQUENCES:
        out += comparison_list(load(shared, "vsp", name))
    for name in ("vsp_chart_XZ_Cyg_X37313LN.json", "vsp_chart_M42_X42585ESI_trimmed.json"):
        out += load(shared, "aavso-api", name)["photometry"]
    return out


def test_comment_rule_on_every_real_comment(shared):
    comments = {c.get("comments") for c in all_real_comps(shared)}
    flagged = sorted(str(c) for c in comments if comment_flag(c))
    assert flagged == ["This star is a micro-variable. DSCT, 12.285 - 12.303V. Do not use as a "
                       "CCD comparison star."]
    assert "BINO_COMP" in comments and "BINO_COMP      " in comments  # present, not flags
    assert "Suspected variable NSV 2386. Acceptable to use." in comments


@pytest.mark.parametrize("name,count", sorted(SEQUENCES.items()))
def test_real_sequences_parse(shared, name, count):
    seq = parse_vsp_chart(vsp_chart(comparison_list(load(shared, "vsp", name)), "X", "X1"))
    assert len(seq.comps) == count
    assert all(0 <= c.ra_deg < 360 and -90 <= c.dec_deg <= 90 for c in seq.comps)
    assert all(set(c.mags) <= {"V", "B", "U", "R", "I", "J", "H", "K", "SG", "SR", "SI"}
               for c in seq.comps)
    # B and R magnitudes stay B and R: a V list never borrows them
    for c in seq.comps:
        if "V" not in c.mags:
            assert c not in seq.usable("V")


# --- VSX answers ----------------------------------------------------------------------------------

def test_vsx_object_phi_per(shared):
    t = parse_vsx_object(load(shared, "aavso-api", "vsx_api_object_phi_Per.json"))
    assert t == Target(name="phi Per", ra_deg=25.91517, dec_deg=50.68872, auid="000-BBD-264",
                       var_type="GCAS", max_mag="3.96 V", min_mag="4.11 V", source="vsx",
                       period_days=19.5)
    assert parse_vsx_mag(t.max_mag).value == 3.96 and parse_vsx_mag(t.max_mag).band == "V"


def test_vsx_lists(shared):
    (one,) = parse_vsx_list(load(shared, "aavso-api", "vsx_api_list_1row_with_epoch.json"))
    assert (one.name, one.ra_deg, one.dec_deg, one.var_type, one.auid) == (
        "ASASSN-V J185256.94+581259.1", 283.23724, 58.21641, "EA", None)
    assert one.period_days == pytest.approx(5.09843)
    (amp,) = parse_vsx_list(load(shared, "aavso-api",
                                 "vsx_api_list_1row_no_epoch_amplitude_minmag.json"))
    m = parse_vsx_mag(amp.min_mag)
    assert (m.value, m.band, m.amplitude) == (0.20, "V", True)
    assert parse_vsx_list(load(shared, "aavso-api", "vsx_api_list_empty.json")) == []


def test_resolve_phi_per_through_the_server(shared, server, tmp_path):
    server.route("GET", VSX, json_body=load(shared, "aavso-api", "vsx_api_object_phi_Per.json"))
    t = resolve_target(cfg_for(tmp_path, server), "phi Per", 25.9, 50.7)
    assert (t.name, t.auid, t.source) == ("phi Per", "000-BBD-264", "vsx")


def test_cone_search_with_recorded_list(shared, server, tmp_path):
    lst = load(shared, "aavso-api", "vsx_api_list_1row_with_epoch.json")

    def vsx(req):
        if req.query["view"] == ["api.list"]:
            return 200, {"Content-Type": "application/json"}, json.dumps(lst).encode()
        return 200, {"Content-Type": "application/json"}, b"{}"  # api.object: not known

    server.route("GET", VSX, handler=vsx)
    t = resolve_target(cfg_for(tmp_path, server), "Unknown", 283.2372404664148,
                       58.21640948105657)
    assert t.name == "ASASSN-V J185256.94+581259.1" and t.source == "vsx"
    # its max 14.21 V is fainter than maglimit 14: not a target we can measure
    server.requests.clear()
    with pytest.raises(CatalogError, match="no variable brighter than V 14"):
        resolve_target(cfg_for(tmp_path / "b", server, maglimit=14), "Unknown", 283.2372,
                       58.2164)


def test_cone_search_empty_answer(shared, server, tmp_path):
    server.route("GET", VSX, json_body=load(shared, "aavso-api", "vsx_api_list_empty.json"))
    with pytest.raises(CatalogError, match="VSX lists no variable"):
        resolve_target(cfg_for(tmp_path, server), "Unknown", 283.2, 58.2)


# --- VSP answers ----------------------------------------------------------------------------------

def test_recorded_xz_cyg_chart(shared, server, tmp_path):
    server.route("GET", VSP, json_body=load(shared, "aavso-api",
                                            "vsp_chart_XZ_Cyg_X37313LN.json"))
    target = Target(name="XZ Cyg", ra_deg=293.12212, dec_deg=56.38819, source="vsx")
    seq = get_sequence(cfg_for(tmp_path, server), target, fov_arcmin=60)
    assert (seq.chart_id, seq.star, seq.star_auid, seq.fov_arcmin, seq.maglimit) == (
        "X37313LN", "XZ Cyg", "000-BCH-041", 60.0, 16.0)
    assert [c.label for c in seq.usable("V")] == ["82", "87", "109", "114", "116", "118"]
    c87 = seq.comps[1]
    assert c87.mag("V") == (8.685, 0.043) and c87.mag("R") is None  # no Rc for 87
    assert c87.mag("I") == (7.488, 0.083)


def test_recorded_m42_chart_by_position(shared, server, tmp_path):
    server.route("GET", VSP, json_body=load(shared, "aavso-api",
                                            "vsp_chart_M42_X42585ESI_trimmed.json"))
    target = Target(name="M 42", ra_deg=83.82, dec_deg=-5.39, source="header")
    seq = get_sequence(cfg_for(tmp_path, server), target, fov_arcmin=40)
    assert seq.chart_id == "X42585ESI"
    assert [c.label for c in seq.usable("V")] == ["90", "114"]  # "Acceptable to use."
    q = server.requests[0].query
    assert (q["ra"], q["dec"], q["fov"]) == (["83.82000"], ["-5.39000"], ["40"])


def test_rewrapped_rr_lyr_through_the_server(shared, server, tmp_path):
    entries = comparison_list(load(shared, "vsp", "rr_lyr.json"))
    server.route("GET", VSP, json_body=vsp_chart(entries, "RR Lyr", "X00000RR"))
    target = Target(name="RR Lyr", ra_deg=291.36606, dec_deg=42.78436, source="vsx")
    seq = get_sequence(cfg_for(tmp_path, server), target, fov_arcmin=60)
    assert seq.chart_id == "X00000RR" and len(seq.comps) == 70
    assert len(seq.usable("V")) == sum(1 for e in entries
                                       if any(b["band"] == "V" for b in e["bands"]))
