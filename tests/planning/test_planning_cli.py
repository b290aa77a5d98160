"""``starnode plan``: the JSON contract, the words, the chart and its text, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from planning_helpers import SS_CYG, no_internet  # noqa: F401 (fixture)
from starnode.cli import main

pytestmark = pytest.mark.usefixtures("no_internet")

RS_OPH = {"name": "RS Oph", "ra": 267.555, "dec": -6.708, "brightest": 9.5, "faintest": 12.5}
ISO_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _config(tmp_path: Path, **extra: object) -> Path:
    raw = {"data_dir": str(tmp_path / "data"), "site": {"latitude": 48.85, "longitude": 2.35},
           "photometry": {"offline": True}, "targets": [SS_CYG, RS_OPH], **extra}
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_plan_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, telescope={"min_altitude": 35})
    assert main(["plan", "--config", str(cfg), "--night", "2025-09-14", "--format",
                 "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"night", "hash", "expires", "items", "excluded"} <= set(d)
    assert d["night"] == "2025-09-14" and ISO_Z.fullmatch(d["expires"])
    [item] = d["items"]
    assert {"target", "start", "end", "exposure_s", "frames"} <= set(item)
    assert item["target"] == "SS Cyg" and ISO_Z.fullmatch(item["start"])
    assert ISO_Z.fullmatch(item["end"]) and item["frames"] > 0
    assert d["excluded"] == [{"target": "RS Oph", "reason": "below 35° all night (at most 32°)",
                              "code": "altitude"}]


def test_plan_in_words_with_a_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, telescope={"min_altitude": 35})
    chart = tmp_path / "out" / "plan.png"
    assert main(["plan", "--config", str(cfg), "--night", "2025-09-14", "--chart",
                 str(chart)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^Tonight \(2025-09-14, dark from \d\d:\d\d to \d\d:\d\d UTC\): SS Cyg "
                     r"from \d\d:\d\d to \d\d:\d\d UTC, 10-second frames", text, re.M), text
    assert "RS Oph left out: below 35° all night" in text
    assert "Chart (" in text and "SS Cyg: observed" in text  # the chart's text alternative
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_html_has_the_chart_and_its_alt_text(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    out = tmp_path / "plan.html"
    assert main(["plan", "--config", str(cfg), "--night", "2025-09-14", "--format", "html",
                 "--out", str(out)]) == 0
    page = out.read_text()
    assert '<img src="data:image/png;base64,' in page
    assert re.search(r'alt="Altitude chart for the night of 2025-09-14[^"]+SS Cyg', page)
    assert "<th scope=\"col\">Target</th>" in page and "RS Oph" in page


def test_plan_without_a_site_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "d"), "targets": [SS_CYG]}))
    assert main(["plan", "--config", str(p), "--night", "2025-09-14"]) == 2
    err = capsys.readouterr().err
    assert "site.latitude and site.longitude are not set" in err
    assert "Traceback" not in err


def test_bad_night_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--config", str(_config(tmp_path)), "--night", "14/09/2025"])
    assert exc.value.code == 2


def test_doctor_has_planning_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARNODE_TARGET_TOOL_KEY", "doctor-secret-77")
    cfg = _config(tmp_path)
    main(["doctor", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "2 target(s) in the config, and the AAVSO Target Tool" in out
    assert "key set ($STARNODE_TARGET_TOOL_KEY); cached answers: ac: never fetched" in out
    assert re.search(r"night \d{4}-\d\d-\d\d: (dark|the sun never)", out)
    assert "doctor-secret-77" not in out
    p = tmp_path / "nosite.yaml"
    p.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "d"),
                                 "telescope": {"driver": "alpaca"}}))
    main(["doctor", "--config", str(p)])
    out = capsys.readouterr().out
    assert re.search(r"FAIL.*site.*site\.latitude and site\.longitude are not set", out), out
