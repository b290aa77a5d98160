"""Configuration: one YAML file, validated on load, with defaults for every key.

The seed's usage example loads ``config.yaml`` with ``yaml.safe_load`` and passes the plain dict to
``run_pipeline`` and ``submit``; both call :func:`resolve` on it, so a plain dict, a path or an
already resolved :class:`Config` are all accepted everywhere.

Every key is declared once in :data:`SCHEMA` with its type, default, allowed range and a one-line
description (``starnode doctor`` and ``config.example.yaml`` show them). Unknown keys are errors
with a did-you-mean; bad values are errors naming the key, e.g.
``camera.gain_e_per_adu: must be > 0, got -1``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import ConfigError
from . import sections as _sections
from .generate import class_name
from .schema import MOVED_KEYS, SCHEMA, Field, folder_problem
from .sections import Section, TypedConfig

if TYPE_CHECKING:
    from ..diagnostics import Check

__all__ = ["MOVED_KEYS", "OBSERVER_CODE_RULE", "SCHEMA", "Config", "ConfigError", "ConfigLike",
           "Field", "Section", "TypedConfig", "default_data_dir", "health", "is_observer_code",
           "observer_code_problem", "redact_url", "redacted", "resolve"]


def default_data_dir() -> Path:
    """``$STARNODE_DATA_DIR``, else ``$XDG_DATA_HOME/starnode`` or ``~/.local/share/starnode``."""
    env = os.environ.get("STARNODE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "starnode"


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _unknown(name: str, known: list[str], where: str) -> ConfigError:
    moved = {key: new for (old, key), new in MOVED_KEYS.items() if old == where}
    near = difflib.get_close_matches(name, known + list(moved), n=1, cutoff=0.6)
    hint = ""
    if near:
        hint = f" (did you mean '{_dotted(moved.get(near[0], where), near[0])}'?)"
    choices = ", ".join(sorted(known))
    return ConfigError(f"unknown key '{_dotted(where, name)}'{hint}; known keys: {choices}")


def _check_type(name: str, field: Field, value: Any) -> Any:
    """``value`` if of the field's type (an int widened to float for a number field)."""
    types = field.type if isinstance(field.type, tuple) else (field.type,)
    # bool is an int subclass: never accept True for a number, nor 1 for a bool.
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise ConfigError(f"{name}: must be {_type_name(types)}, got {value!r}")
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _check_choice(name: str, field: Field, value: str) -> str:
    """The canonical spelling of a case-insensitive choice."""
    assert field.choices is not None
    upper = {str(c).upper(): c for c in field.choices}
    if value.upper() not in upper:
        raise ConfigError(f"{name}: must be one of {', '.join(map(str, field.choices))}, "
                          f"got {value!r}")
    return str(upper[value.upper()])


def _check_range(name: str, field: Field, value: float) -> None:
    if value != value:  # NaN
        raise ConfigError(f"{name}: must be a number, got NaN")
    if field.min is not None:
        below = value <= field.min if field.min_exclusive else value < field.min
        if below:
            op = ">" if field.min_exclusive else ">="
            raise ConfigError(f"{name}: must be {op} {field.min}, got {value}")
    if field.max is not None and value > field.max:
        raise ConfigError(f"{name}: must be <= {field.max}, got {value}")


def _check(section: str, key: str, field: Field, value: Any) -> Any:
    """The validated value of one key (raises :class:`ConfigError` naming it; a secret's value
    is never in the message)."""
    if field.secret and value is not None and not isinstance(value, str):
        raise ConfigError(f"{_dotted(section, key)}: must be a string (value not shown: it is "
                          "a secret)")
    name = _dotted(section, key)
    if value is None:
        if field.optional:
            return None
        raise ConfigError(f"{name}: a value is required")
    value = _check_type(name, field, value)
    if isinstance(value, str) and field.choices is not None:
        value = _check_choice(name, field, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(name, field, value)
    if field.check is not None:
        problem = field.check(value)
        if problem:
            shown = "(not shown: it may hold a secret)" if field.secret else repr(value)
            raise ConfigError(f"{name}: {problem}, got {shown}")
    if field.path and isinstance(value, str):
        value = os.path.expanduser(os.path.expandvars(value))
    return value


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a mapping"}
    if set(types) == {int, float}:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in types)


def _refuse_duplicate_keys(node: yaml.Node | None, where: str = "") -> None:
    """Raise :class:`ConfigError` for a key given twice in one mapping of a composed YAML
    document (PyYAML silently keeps the last, so a second ``observer_code:`` further down
    would win unnoticed)."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, where)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        name = f"{where}.{key}" if where else key
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(f"'{name}' is given twice (line {seen[key]} and line {line}); "
                              "keep one")
        seen[key] = line
        _refuse_duplicate_keys(value_node, name)


log = logging.getLogger(__name__)

#: Type of every section, by name (the generated dataclasses of :mod:`.sections`).
_SECTION_TYPES: dict[str, type[Section]] = {
    name: getattr(_sections, class_name(name)) for name in SCHEMA if name}
#: The moved keys already named in a deprecation line by this process.
_warned_moved: set[str] = set()


def _move_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the keys of :data:`MOVED_KEYS` given at their old place moved to the new
    one, and one deprecation WARNING per process naming the new keys. Both places given is a
    :class:`ConfigError`."""
    moved: list[tuple[str, str, str]] = []
    for (old, key), new in MOVED_KEYS.items():
        given, there = raw.get(old), raw.get(new)
        if not isinstance(given, Mapping) or key not in given:
            continue
        if isinstance(there, Mapping) and key in there:
            raise ConfigError(f"{old}.{key} and {new}.{key} are both given: {old}.{key} is the "
                              f"old name of {new}.{key}; keep {new}.{key} only")
        if there is None or isinstance(there, Mapping):  # else: refused as not a mapping
            moved.append((old, key, new))
    if not moved:
        return raw
    raw = dict(raw)
    for old, key, new in moved:
        section = dict(raw[old])
        raw[new] = {**(raw.get(new) or {}), key: section.pop(key)}
        raw[old] = section
    fresh = [f"{old}.{key} -> {new}.{key}" for old, key, new in moved
             if f"{new}.{key}" not in _warned_moved]
    if fresh:
        _warned_moved.update(f"{new}.{key}" for _, key, new in moved)
        log.warning("configuration: deprecated key(s) %s; the catalogue settings have their "
                    "own 'catalogs:' section (the old keys are still read, for now)",
                    ", ".join(fresh))
    return raw


def _cross_checks(sections: dict[str, Any]) -> None:
    """The rules between keys (one key's bounds are in the schema)."""
    quality = sections["quality"]
    if quality.acceptable_snr > quality.good_snr:
        raise ConfigError("quality.acceptable_snr: must not exceed quality.good_snr")
    if quality.acceptable_max_error < quality.good_max_error:
        raise ConfigError("quality.acceptable_max_error: must not be below "
                          "quality.good_max_error")
    tel, plan = sections["telescope"], sections["planning"]
    if tel.min_altitude >= tel.max_altitude:
        raise ConfigError(f"telescope.min_altitude ({tel.min_altitude:g}) must be below "
                          f"telescope.max_altitude ({tel.max_altitude:g})")
    if plan.min_slot_minutes > plan.slot_minutes:
        raise ConfigError("planning.min_slot_minutes: must not exceed planning.slot_minutes")


class Config(TypedConfig, Mapping[str, Any]):
    """A validated configuration with every default filled in.

    Sections are typed attributes (``cfg.watch`` is a :class:`~.sections.WatchSettings`,
    ``cfg.watch.poll_interval`` a float), so mypy checks every read; top-level keys too
    (``cfg.data_dir`` is always a :class:`~pathlib.Path`). ``cfg.raw`` is the dict as given,
    with moved keys at their new place (for re-serialising to workers).

    Examples
    --------
    >>> cfg = Config({"aavso": {"observer_code": "ZZA"}})
    >>> cfg.aavso.observer_code, cfg.aavso.bin_minutes, cfg.watch.poll_interval
    ('ZZA', 0.0, 2.0)

    A mistyped key is refused with the nearest known one:

    >>> try:  # doctest: +NORMALIZE_WHITESPACE, +ELLIPSIS
    ...     Config({"aavso": {"observr_code": "ZZA"}})
    ... except ConfigError as exc:
    ...     print(exc)
    unknown key 'aavso.observr_code' (did you mean 'aavso.observer_code'?); known keys:
    bin_minutes, credentials_file, date_type, ...
    >>> Config({"aavso": {"bin_minutes": -1}})
    Traceback (most recent call last):
    ...
    starnode.errors.ConfigError: aavso.bin_minutes: must be >= 0, got -1.0
    """

    def __init__(self, raw: Mapping[str, Any] | None = None, *, source: str | None = None) -> None:
        raw = dict(raw or {})
        top_known = list(SCHEMA[""]) + [s for s in SCHEMA if s]
        for key in raw:
            if not isinstance(key, str) or key not in top_known:
                raise _unknown(str(key), top_known, "")
        raw = _move_keys(raw)
        self.raw: dict[str, Any] = raw
        self.source = source
        sections: dict[str, Any] = {}
        for key, field in SCHEMA[""].items():
            sections[key] = _check("", key, field, raw.get(key, field.default))
        for section, fields in SCHEMA.items():
            if not section:
                continue
            given = raw.get(section) or {}
            if not isinstance(given, Mapping):
                raise ConfigError(f"{section}: must be a mapping of keys, got {given!r}")
            for key in given:
                if key not in fields:
                    raise _unknown(str(key), list(fields), section)
            values = {}
            for key, field in fields.items():
                default = field.default
                if isinstance(default, (list, dict)):
                    default = type(default)(default)
                values[key] = _check(section, key, field, given.get(key, default))
            sections[section] = _SECTION_TYPES[section](**values)
        data_dir = sections["data_dir"]
        sections["data_dir"] = Path(data_dir) if data_dir else default_data_dir()
        problem = None if data_dir else folder_problem(sections["data_dir"])
        if problem:  # the default: $STARNODE_DATA_DIR, $XDG_DATA_HOME or ~/.local/share
            raise ConfigError(f"data_dir (default {sections['data_dir']}, from "
                              f"$STARNODE_DATA_DIR or $XDG_DATA_HOME): {problem}")
        _cross_checks(sections)
        self._sections = sections
        for key, value in sections.items():
            setattr(self, key, value)

    # Mapping protocol, so a Config can stand where the seed passes a dict.
    def __getitem__(self, key: str) -> Any:
        return self._sections[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sections)

    def __len__(self) -> int:
        return len(self._sections)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for process pools
        return (Config, (self.raw,), {"source": self.source})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.source = state.get("source")

    @property
    def db_path(self) -> Path:
        """The node's SQLite database (ledger, submissions, catalogue cache)."""
        return self.data_dir / "starnode.sqlite3"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Config:
        """Read and validate a YAML file. Relative paths inside stay relative to the CWD.

        Parameters
        ----------
        path : path-like
            The YAML file.

        Returns
        -------
        Config
            The validated configuration (``source`` is the path).

        Raises
        ------
        ConfigError
            The file cannot be read, is not YAML, or holds invalid values (the message names
            the file and the key).
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {p}: {exc.strerror}") from exc
        try:
            _refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        try:
            return cls(raw, source=str(p))
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None


#: What the public entry points accept as a configuration (:func:`resolve` makes it a Config).
ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def resolve(config: ConfigLike) -> Config:
    """Whatever the caller holds, as a :class:`Config`.

    Parameters
    ----------
    config : Config, mapping, path-like or None
        A Config (returned as is), the seed's plain dict, a YAML file, or None (defaults).

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    ConfigError
        Invalid values, unknown keys, an unreadable file or an unsupported type.

    Examples
    --------
    >>> cfg = Config({})
    >>> resolve(cfg) is cfg, resolve({"aavso": {"observer_code": "ZZA"}}).aavso.observer_code
    (True, 'ZZA')
    >>> resolve(3)
    Traceback (most recent call last):
    ...
    starnode.errors.ConfigError: configuration must be a mapping or a path, got int
    """
    if isinstance(config, Config):
        return config
    if config is None:
        return Config({})
    if isinstance(config, (str, os.PathLike)):
        return Config.load(config)
    if isinstance(config, Mapping):
        return Config(config)
    raise ConfigError(f"configuration must be a mapping or a path, got {type(config).__name__}")


#: ``scheme://user:password@host``: the password part of a URL.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):(?P<pw>[^@/\s]*)@")
#: ``?password=...`` and the like in a URL's query.
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][A-Za-z_]*(?:password|passwd|pwd|token|secret|key)=)[^&\s]*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """``text`` with the password of any URL in it (and secret query values) as ``***``.

    Parameters
    ----------
    text : str
        A URL or any text holding URLs.

    Returns
    -------
    str

    Examples
    --------
    >>> redact_url("postgresql://starnode:s3cret@db.example.org/hub")
    'postgresql://starnode:***@db.example.org/hub'
    >>> redact_url("https://hub.example.org/api?token=abc&page=2")
    'https://hub.example.org/api?token=***&page=2'
    """
    return _QUERY_SECRET.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>:***@", text))


def _redact_value(field: Field | None, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return "***" if field is not None and field.secret and "://" not in value \
            else redact_url(value)
    if isinstance(value, list):
        return [_redact_value(None, v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(None, v) for k, v in value.items()}
    return value


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain values, every secret replaced by ``***``.

    What ``starnode config`` prints: a token is never shown, a database URL keeps its engine,
    host and database but not its password.

    Parameters
    ----------
    config : Config
        The configuration.

    Returns
    -------
    dict
        Section -> key -> value (paths as strings).
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Section):
            fields = SCHEMA.get(key, {})
            out[key] = {k: _redact_value(fields.get(k), v) for k, v in value.items()}
        else:
            shown = str(value) if isinstance(value, Path) else value
            out[key] = _redact_value(SCHEMA[""].get(key), shown)
    return out


def example_yaml() -> str:
    """A commented YAML document listing every key with its default (``config.example.yaml``)."""
    lines = ["# starnode configuration: every key, its default and what it does.",
             "# Only the keys you change need to be present."]
    for section, fields in SCHEMA.items():
        indent = ""
        if section:
            lines.append("")
            lines.append(f"{section}:")
            indent = "  "
        for key, field in fields.items():
            lines.append(f"{indent}# {field.doc}")
            dumped = yaml.safe_dump({key: field.default}, default_flow_style=True,
                                    sort_keys=False).strip()
            if dumped.startswith("{") and dumped.endswith("}"):
                dumped = dumped[1:-1]
            lines.append(f"{indent}{dumped}")
    return "\n".join(lines) + "\n"


#: What an AAVSO observer code may be (the one rule: the config, the report writer, the report
#: validator and the hub all ask :func:`is_observer_code`). The AAVSO assigns codes of one to six
#: letters and digits (e.g. FPIA); case does not matter, reports carry them upper case.
OBSERVER_CODE_RULE = "1 to 6 letters and digits, no blanks, e.g. FPIA"
_OBSCODE = re.compile(r"[A-Za-z0-9]{1,6}")


def is_observer_code(code: str | None) -> bool:
    """Whether ``code`` has the form of an AAVSO observer code (:data:`OBSERVER_CODE_RULE`).

    Whether the AAVSO really assigned it cannot be known offline; placeholders such as ``XXX``
    are :data:`starnode.aavso.spec.PLACEHOLDERS`.

    Examples
    --------
    >>> is_observer_code("FPIA"), is_observer_code("fpia"), is_observer_code("my code")
    (True, True, False)
    >>> is_observer_code("ABCDEFG"), is_observer_code(" ABC"), is_observer_code(None)
    (False, False, False)
    """
    return code is not None and _OBSCODE.fullmatch(code) is not None


def observer_code_problem(code: str | None) -> str | None:
    """Why ``aavso.observer_code`` cannot head a report, with the fix; None when it can.

    Parameters
    ----------
    code : str or None
        The configured observer code.

    Returns
    -------
    str or None
        The problem (names the key), or None for a well-formed code.

    Examples
    --------
    >>> observer_code_problem("ZZA") is None
    True
    >>> print(observer_code_problem("my code"))  # doctest: +NORMALIZE_WHITESPACE
    aavso.observer_code 'my code' is not an AAVSO observer code (1 to 6 letters and digits,
    no blanks, e.g. FPIA): put the code the AAVSO gave you
    """
    if not code:
        return ("aavso.observer_code is not set: frames are measured but no report can be "
                "written. Put your AAVSO observer code in the config file (aavso: "
                "observer_code: ABC)")
    if not is_observer_code(code):
        return (f"aavso.observer_code {code!r} is not an AAVSO observer code "
                f"({OBSERVER_CODE_RULE}): put the code the AAVSO gave you")
    return None


def health(config: Config) -> list[Check]:
    """The configuration's checks for ``starnode doctor``.

    Parameters
    ----------
    config : Config
        The configuration in use.

    Returns
    -------
    list of starnode.diagnostics.Check
        Where the configuration came from, and the observer code.
    """
    from ..diagnostics import Check, Level

    out = []
    if config.source:
        out.append(Check(Level.OK, "config", f"{config.source} is valid"))
    else:
        out.append(Check(Level.WARN, "config", "no config.yaml here and no --config: built-in "
                         "defaults. Start one with 'starnode config --example > config.yaml'"))
    code = config.aavso.observer_code
    problem = observer_code_problem(code)
    if problem:
        out.append(Check(Level.FAIL, "observer code", problem))
    elif code is not None and code.upper() == "DEMO":
        out.append(Check(Level.WARN, "observer code", "aavso.observer_code is the demo code "
                         "DEMO; use your own AAVSO observer code for real data"))
    else:
        out.append(Check(Level.OK, "observer code", str(code)))
    return out
