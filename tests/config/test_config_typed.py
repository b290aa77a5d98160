"""Typed configuration (issue 18 item 4): one typed class per section, generated from SCHEMA and
checked against it; the catalogue keys in their own section, the old place still read."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest

import starnode.config as config_module
from starnode.config import MOVED_KEYS, SCHEMA, Config, ConfigError, TypedConfig, resolve
from starnode.config import sections as sections_module
from starnode.config.generate import annotation, class_name, sections_source


def test_sections_module_is_generated_from_the_schema() -> None:
    text = Path(sections_module.__file__).read_text(encoding="utf-8")
    assert text == sections_source(), (
        "config/sections.py differs from SCHEMA: run "
        "'python -m starnode.config.generate src/starnode/config/sections.py'")


@pytest.mark.parametrize("section", [s for s in SCHEMA if s])
def test_every_schema_key_has_a_typed_attribute_and_no_more(section: str) -> None:
    cls = getattr(sections_module, class_name(section))
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore
    hints = typing.get_type_hints(cls, vars(sections_module))
    assert set(hints) == set(SCHEMA[section]), f"{section}: keys and typed attributes differ"
    for key, field in SCHEMA[section].items():
        expected = typing.get_type_hints(
            type("T", (), {"__annotations__": {key: annotation(section, key, field)}}),
            vars(sections_module))[key]
        assert hints[key] == expected, f"{section}.{key}"


def test_config_has_a_typed_attribute_per_section_and_top_level_key() -> None:
    hints = typing.get_type_hints(TypedConfig, vars(sections_module))
    assert set(hints) == set(SCHEMA[""]) | {s for s in SCHEMA if s}
    cfg = Config({})
    for section in (s for s in SCHEMA if s):
        assert type(getattr(cfg, section)) is hints[section]


def test_no_key_shadows_a_mapping_method() -> None:
    mapping = set(dir(Mapping))
    clashes = [f"{s}.{k}" for s, keys in SCHEMA.items() for k in keys if k in mapping]
    assert not clashes


def _conforms(value: object, hint: object) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is typing.Any:
        return True
    if hint is float:
        return isinstance(value, float)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)  # type: ignore[arg-type]


def test_validated_values_have_their_declared_types(tmp_path: Path) -> None:
    cfg = Config({"data_dir": str(tmp_path), "camera": {"read_noise_e": 2},
                  "site": {"latitude": 45}, "telescope": {"horizon": [[0, 10], [180, 20.5]]}})
    for section in (s for s in SCHEMA if s):
        value = getattr(cfg, section)
        hints = typing.get_type_hints(type(value), vars(sections_module))
        for key, hint in hints.items():
            assert _conforms(getattr(value, key), hint), f"{section}.{key}"
    assert cfg.camera.read_noise_e == 2.0 and isinstance(cfg.camera.read_noise_e, float)


def test_sections_are_frozen_and_still_read_as_mappings() -> None:
    cfg = Config({"camera": {"gain_e_per_adu": 0.1}})
    assert cfg["camera"]["gain_e_per_adu"] == cfg.camera.gain_e_per_adu == 0.1
    assert dict(cfg.camera)["gain_e_per_adu"] == 0.1 and len(cfg.camera) == len(SCHEMA["camera"])
    with pytest.raises(KeyError):
        cfg.camera["nope"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.camera.gain_e_per_adu = 1.0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(cfg)).camera == cfg.camera


# ------------------------------------------------------------------ the catalogs section
@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: no moved key named yet."""
    monkeypatch.setattr(config_module, "_warned_moved", set())


def _deprecations(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "deprecated" in r.getMessage()]


def test_catalogue_keys_have_their_own_section() -> None:
    assert {key for (_, key) in MOVED_KEYS} == set(SCHEMA["catalogs"])
    assert not set(SCHEMA["catalogs"]) & set(SCHEMA["photometry"])
    cfg = Config({"catalogs": {"offline": True, "vsp_url": "http://localhost:1/vsp"}})
    assert cfg.catalogs.offline is True and cfg.catalogs.vsp_url == "http://localhost:1/vsp"


def test_old_keys_are_read_with_one_deprecation_line_per_process(
        fresh_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    old = {"photometry": {"offline": True, "maglimit": 13, "aperture_fwhm": 2.0}}
    with caplog.at_level(logging.WARNING, logger="starnode.config"):
        cfg = Config(old)
        Config(old)
        resolve(dict(old))
    assert cfg.catalogs.offline is True and cfg.catalogs.maglimit == 13.0
    assert cfg.photometry.aperture_fwhm == 2.0
    lines = _deprecations(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    msg = lines[0].getMessage()
    assert "photometry.offline -> catalogs.offline" in msg
    assert "photometry.maglimit -> catalogs.maglimit" in msg
    # The raw dict handed to workers has the keys at their new place: no warning there either.
    assert "offline" not in cfg.raw["photometry"] and cfg.raw["catalogs"]["offline"] is True
    assert pickle.loads(pickle.dumps(cfg)).catalogs.offline is True


def test_an_old_config_file_loads(fresh_warnings: None, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "config.yaml"
    p.write_text("photometry:\n  sequence_file: ~/chart.json\n  offline: true\n"
                 "  aperture_fwhm: 1.8\ncatalogs:\n  cache_days: 7\n")
    with caplog.at_level(logging.WARNING, logger="starnode.config"):
        cfg = Config.load(p)
    assert cfg.catalogs.offline and cfg.catalogs.cache_days == 7.0
    assert cfg.catalogs.sequence_file == str(Path("~/chart.json").expanduser())
    assert len(_deprecations(caplog)) == 1


def test_giving_both_the_old_and_the_new_key_is_refused(fresh_warnings: None) -> None:
    with pytest.raises(ConfigError, match=r"photometry\.offline and catalogs\.offline are both "
                                          r"given.*keep catalogs\.offline only"):
        Config({"photometry": {"offline": True}, "catalogs": {"offline": False}})


def test_old_keys_are_validated_under_their_new_name(fresh_warnings: None) -> None:
    with pytest.raises(ConfigError, match=r"catalogs\.http_retries: must be <= 10"):
        Config({"photometry": {"http_retries": 99}})


def test_a_misspelt_moved_key_suggests_its_new_place() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'photometry\.vsp_ulr' \(did you mean "
                                          r"'catalogs\.vsp_url'\?\)"):
        Config({"photometry": {"vsp_ulr": "x"}})
    with pytest.raises(ConfigError, match=r"did you mean 'catalogs'"):
        Config({"catalog": {"offline": True}})


def test_the_cli_reads_an_old_config_and_says_so_once(tmp_path: Path) -> None:
    """A real ``starnode`` process: an old configuration works, one deprecation line on
    stderr, the effective configuration shows the keys in ``catalogs``."""
    import json
    import subprocess
    import sys

    import yaml

    p = tmp_path / "config.yaml"
    p.write_text(f"data_dir: {tmp_path / 'data'}\nphotometry:\n  offline: true\n"
                 "  maglimit: 13.5\n  aperture_fwhm: 1.8\n")
    done = subprocess.run([sys.executable, "-m", "starnode", "--config", str(p), "config"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "deprecated" in ln]
    assert len(lines) == 1 and "photometry.offline -> catalogs.offline" in lines[0]
    shown = yaml.safe_load(done.stdout)
    assert shown["catalogs"]["offline"] is True and shown["catalogs"]["maglimit"] == 13.5
    assert "offline" not in shown["photometry"] and shown["photometry"]["aperture_fwhm"] == 1.8
    p.write_text(json.dumps({"photometry": {"offline": True}, "catalogs": {"offline": True}}))
    done = subprocess.run([sys.executable, "-m", "starnode", "--config", str(p), "config"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "both given" in done.stderr
    assert "Traceback" not in done.stderr
