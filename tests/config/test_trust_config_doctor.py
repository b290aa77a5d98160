"""Issue 16: secrets never printed by ``starnode config`` (F8), a hub URL without a scheme and an
unsupported database refused when the configuration is loaded (section 4/5), the validator
refuses a negative error (F4), and ``doctor`` checks the hub (section 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from starnode.aavso.validator import validate_text
from starnode.cli import main
from starnode.config import Config, ConfigError

HEADER = "#TYPE=EXTENDED\n#OBSCODE=ZZA\n#SOFTWARE=test 1\n#DELIM=,\n#DATE=JD\n#OBSTYPE=CCD\n"


def _row(notes: str) -> str:
    return ("T CrB,2460797.51234,10.215,0.012,TG,NO,STD,ENSEMBLE,na,000-BBW-850,11.412,1.123,"
            f"na,X38224AB,{notes}\n")


def test_starnode_config_redacts_secrets(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """F8: ``starnode config`` shows neither ``hub.token`` nor a database password."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path),
        "hub": {"url": "https://hub.example.org", "token": "snn_TOPSECRETTOKEN",
                "database_url": "postgresql://hub:DBPASSWORD@db.example.org/starnode_hub"}}))
    assert main(["--config", str(cfg), "config"]) == 0
    out = capsys.readouterr().out
    assert "TOPSECRETTOKEN" not in out and "DBPASSWORD" not in out
    shown = yaml.safe_load(out)
    assert shown["hub"]["token"] == "***"
    assert shown["hub"]["database_url"] == "postgresql://hub:***@db.example.org/starnode_hub"
    assert shown["hub"]["url"] == "https://hub.example.org"


@pytest.mark.parametrize("url", ["hub.example.org", "ftp://hub.example.org", "https://",
                                 "localhost:8750"])
def test_hub_url_without_a_scheme_is_refused_on_load(url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Section 4: ``hub.url`` without http:// or https:// is a configuration error at once
    (it only showed as "N queued" before), one line, exit 2."""
    with pytest.raises(ConfigError, match=r"hub\.url: must be an http"):
        Config({"hub": {"url": url}})
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "hub": {"url": url}}))
    assert main(["--config", str(cfg), "status"]) == 2
    err = capsys.readouterr().err
    assert "hub.url" in err and len(err.strip().splitlines()) == 1
    Config({"hub": {"url": "http://127.0.0.1:8750"}})  # fine


def test_unsupported_database_is_refused_naming_the_engines() -> None:
    """Section 5: a mysql:// URL is refused on load, naming what is supported, without
    repeating the URL (it may hold a password)."""
    with pytest.raises(ConfigError) as exc:
        Config({"hub": {"database_url": "mysql://u:SECRETPW@localhost/db"}})
    text = str(exc.value)
    assert "postgresql" in text and "sqlite" in text and "SECRETPW" not in text
    Config({"hub": {"database_url": "sqlite:////tmp/x.sqlite3"}})
    Config({"hub": {"database_url": "postgresql:///hub?host=/var/run/postgresql"}})


def test_validator_refuses_a_negative_error_in_notes() -> None:
    """F4: ``KREFERR=-5.000`` passed validation; a negative error in NOTES is an error."""
    good = validate_text(HEADER + _row("KREFMAG=11.4|KREFERR=0.050|NCOMP=3"))
    assert good.ok, [str(f) for f in good.errors]
    for notes in ("KREFMAG=11.4|KREFERR=-5.000", "CREFERR=-0.01", "X|FORMALERR=-0.0010|Y"):
        report = validate_text(HEADER + _row(notes))
        assert not report.ok and any(f.rule == "D16" for f in report.errors), notes


def test_doctor_checks_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Section 4: doctor says whether the hub is reachable, the token valid and the schema
    version accepted."""
    pytest.importorskip("httpx", reason="the hub extra is not installed")
    pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")
    from hub_helpers import free_port, hub_config, serve
    from starnode.doctor import Level
    from starnode.hub.store import HubStore
    from starnode.node.hublink import health

    store = HubStore(hub_config(tmp_path, f"sqlite:///{tmp_path / 'hub.sqlite3'}"))
    token = store.add_node("scope-a", "ABC")
    port = free_port()
    node = {"data_dir": str(tmp_path / "node"), "hub": {"url": f"http://127.0.0.1:{port}"}}
    down = health(Config(node))
    assert [c.level for c in down] == [Level.FAIL] and "not reachable" in down[0].message
    with serve(store, port):
        monkeypatch.setenv("STARNODE_HUB_TOKEN", token)
        checks = {c.topic: c for c in health(Config(node))}
        assert all(c.level == Level.OK for c in checks.values()), checks
        assert "scope-a" in checks["hub token"].message
        assert "schema" in " ".join(checks)
        monkeypatch.setenv("STARNODE_HUB_TOKEN", "snn_wrong")
        checks = {c.topic: c for c in health(Config(node))}
        assert checks["hub token"].level == Level.FAIL
        assert "refuses the token" in checks["hub token"].message
        cfg = tmp_path / "node.yaml"
        cfg.write_text(yaml.safe_dump(node))
        capsys.readouterr()
        assert main(["--config", str(cfg), "doctor"]) == 1
        assert "hub token: the hub refuses the token" in capsys.readouterr().out
    store.close()
