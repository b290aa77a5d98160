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
                  "photometry": {"sequence_file": "$SHARE/chart.json"},
                  "aavso": {"credentials_file": "~/.aavso"},
                  "astrometry": {"astap_path": "${SHARE}/astap"}})
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.watch.path == str(tmp_path / "MyWorks")
    assert cfg.photometry.sequence_file == "/mnt/seestar/chart.json"
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
