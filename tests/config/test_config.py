"""The configuration (issue 10): paths expanded, duplicate keys refused, observer codes checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from starnode.config import Config, health, observer_code_problem
from starnode.doctor import Level
from starnode.errors import ConfigError


def test_home_and_variables_expanded_in_every_path_key(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHARE", "/mnt/seestar")
    cfg = Config({"data_dir": "~/data", "watch": {"path": "~/MyWorks"},
                  "catalogs": {"sequence_file": "$SHARE/chart.json"},
                  "aavso": {"credentials_file": "~/.aavso"},
                  "astrometry": {"astap_path": "${SHARE}/astap"}})
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.watch.path == str(tmp_path / "MyWorks")
    assert cfg.catalogs.sequence_file == "/mnt/seestar/chart.json"
    assert cfg.aavso.credentials_file == str(tmp_path / ".aavso")
    assert cfg.astrometry.astap_path == "/mnt/seestar/astap"


def test_duplicate_yaml_keys_are_refused_with_their_lines(tmp_path: Path) -> None:
    p = tmp_path / "config.yaml"
    p.write_text("aavso:\n  observer_code: ABC\n  mode: outbox\n  observer_code: XYZ\n")
    with pytest.raises(ConfigError) as exc:
        Config.load(p)
    msg = str(exc.value)
    assert "aavso.observer_code" in msg and "line 2" in msg and "line 4" in msg
    p.write_text("watch:\n  path: /a\nwatch:\n  mode: poll\n")
    with pytest.raises(ConfigError, match=r"'watch'.*line 1.*line 3"):
        Config.load(p)
    p.write_text("watch:\n  path: /a\naavso:\n  mode: outbox\n")  # no duplicate: fine
    assert Config.load(p).watch.path == "/a"


@pytest.mark.parametrize("code", ["my code", "", "ABCDEFGH", "AB-C", "ab c", " ABC"])
def test_bad_observer_codes_are_named(code: str) -> None:
    assert observer_code_problem(code) is not None


@pytest.mark.parametrize("code", ["FPIA", "A", "XYZ12", "fpia"])
def test_good_observer_codes_pass(code: str) -> None:
    assert observer_code_problem(code) is None


def test_doctor_fails_an_observer_code_with_a_blank(tmp_path: Path) -> None:
    cfg = Config({"data_dir": str(tmp_path), "aavso": {"observer_code": "my code"}})
    lines = [c for c in health(cfg) if c.topic == "observer code"]
    assert lines and lines[0].level == Level.FAIL and "my code" in lines[0].message


#: (code, has the form of an AAVSO observer code)
_CODES = [("FPIA", True), ("fpia", True), ("A", True), ("XYZ123", True), ("ABCDEFG", False),
          ("ABCDEFGHIJKLMNOP", False), ("AB-C", False), ("my code", False), ("ABC\u00c9", False)]


@pytest.mark.parametrize(("code", "good"), _CODES)
def test_one_observer_code_rule_for_config_reports_validator_and_hub(
        tmp_path: Path, code: str, good: bool) -> None:
    """The config, the report writer, the report validator and the hub agree (issue 18: four
    copies had four rules; the hub took 16 characters, the writer any Unicode letter)."""
    from starnode.aavso import submit
    from starnode.aavso.validator import validate_text

    assert (observer_code_problem(code) is None) is good
    answer = submit({"target_name": "SS Cyg"}, {"data_dir": str(tmp_path / "data"),
                                                "aavso": {"observer_code": code}})
    assert ("not an AAVSO observer code" in answer["message"]) is (not good)
    report = validate_text(f"#TYPE=EXTENDED\n#OBSCODE={code}\n#SOFTWARE=x\n#DELIM=,\n#DATE=JD\n")
    assert any(f.rule == "H03" for f in report) is (not good)
    hub = pytest.importorskip("starnode.hub.store", reason="the hub extra is not installed")
    store = hub.HubStore({"data_dir": str(tmp_path / "hub"),
                          "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.sqlite3'}"}})
    if good:
        assert store.add_node("scope", code).startswith("snn_")
    else:
        with pytest.raises(hub.HubError, match="not an AAVSO observer code"):
            store.add_node("scope", code)


def test_the_observer_code_examples() -> None:
    import doctest

    import starnode.config

    result = doctest.testmod(starnode.config, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0
